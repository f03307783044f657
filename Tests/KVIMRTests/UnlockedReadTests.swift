import Dispatch
import Foundation
import Glibc
import IMRDisk
import KVIMR
import Synchronization
import Testing

/// A drive that stalls on chosen operations, so a race between KVIMR's unlocked track reads
/// and a writer is reliably met: reads sleep before reading (the writer runs meanwhile), and
/// host-managed bottom writes sleep after writing (the neighbouring tops stay damaged until
/// the merged RMW rewrites them).
final class StallingDevice: ForwardingTrackDevice, @unchecked Sendable {
    let base: MemoryTrackDevice
    private let stalls = Mutex((readMicros: UInt32(0), damageMicros: UInt32(0)))
    /// The thread whose reads never stall (the writer: its merged RMW reads tops too).
    private let exempt = Mutex<pthread_t?>(nil)

    init(_ base: MemoryTrackDevice) { self.base = base }

    func set(readMicros: UInt32 = 0, damageMicros: UInt32 = 0) {
        stalls.withLock { $0 = (readMicros, damageMicros) }
    }

    /// Reads by the calling thread do not stall from now on.
    func exemptCallingThread() { exempt.withLock { $0 = pthread_self() } }

    func readTrack(_ track: Int, sector: Int, into buffer: UnsafeMutableRawBufferPointer) throws(DeviceError) {
        let us = stalls.withLock { $0.readMicros }
        let exempted = exempt.withLock { e in e.map { pthread_equal($0, pthread_self()) != 0 } ?? false }
        if us > 0 && !exempted { usleep(us) }
        try base.readTrack(track, sector: sector, into: buffer)
    }
    func writeTrack(_ track: Int, sector: Int, from buffer: UnsafeRawBufferPointer, mode: WriteMode) throws(DeviceError) {
        try base.writeTrack(track, sector: sector, from: buffer, mode: mode)
        let us = stalls.withLock { $0.damageMicros }
        if us > 0 && mode == .hostManaged && geometry.isBottom(track) { usleep(us) }
    }
}

/// `KVIMR.read` reads tracks without the core lock; these race it against what could change
/// the bytes under it: a merged RMW damaging the tops being read, and a delete whose tracks are
/// reused by another file. Every read must return the file's bytes, or (once it is deleted)
/// `.notFound` — never damage or another file's bytes.
@Suite struct UnlockedReadTests {
    @Test func readersOfTopsRaceMergedRMW() throws {
        let problems = Problems()
        let g = smallGeometry(tracks: 5)
        let (_, dev, k, others, first) = try mergedRMWScene(g) { StallingDevice($0) }
        dev.set(readMicros: 1000, damageMicros: 3000)
        let rounds = 12
        let stop = Atomic<Bool>(false)
        let reads = Atomic<Int>(0)
        let files = others.sorted { $0.key < $1.key }
        onThreads(4) { t in
            guard t > 0 else {
                defer { stop.store(true, ordering: .releasing) }
                dev.exemptCallingThread()
                while reads.load(ordering: .relaxed) < 3 { usleep(200) }   // readers under way
                var w = first
                do {
                    for round in 0..<rounds {
                        if round > 0 { w = try k.create(kind: .sstable, level: 2) }
                        try k.append(w, pattern(g.bottomSectors * g.sectorSize, seed: 50 + UInt64(round)))
                        try k.sync([w])                     // bottom B2 under valid tops: merged RMW
                        try k.delete(w)
                        try k.syncAll()                     // B2 free again for the next round
                    }
                } catch { problems.note("writer: \(error)") }
                return
            }
            while !stop.load(ordering: .acquiring) {
                for (n, bytes) in files {
                    do {
                        let back = try readAll(k, n)
                        if back != bytes { problems.note("reader \(t): file \(n) read wrong bytes"); return }
                        reads.add(1, ordering: .relaxed)
                    } catch { problems.note("reader \(t): \(error)"); return }
                }
            }
        }
        #expect(problems.all.isEmpty, "\(problems.all)")
        #expect(k.stats().mergedRmwOps >= UInt64(rounds))
        #expect(reads.load(ordering: .relaxed) > 0)
    }

    @Test func readersRaceDeleteAndTrackReuse() throws {
        let problems = Problems()
        // B0 T1 B2: a keeper holds B2, so the next bottom file after the victim's delete and
        // checkpoint takes B0 again — the tracks a stalled reader of the victim is about to read.
        let g = smallGeometry(tracks: 3)
        let (_, dev, k) = try makeKVIMR(g) { StallingDevice($0) }
        let bottom = g.bottomSectors * g.sectorSize
        let keeper = try k.create(kind: .sstable, level: 1)
        try k.append(keeper, pattern(bottom, seed: 1))
        try k.seal(keeper)
        try k.sync([keeper])
        for round in 0..<6 {
            let victim = try k.create(kind: .sstable, level: 1)
            let bytes = pattern(bottom, seed: 100 + UInt64(round))
            try k.append(victim, bytes)
            try k.seal(victim)
            try k.sync([victim])
            let victimTracks = try #require(k.extents(victim)).map(\.track)
            dev.set(readMicros: 3000)
            let started = Atomic<Int>(0)
            onThreads(3) { t in
                guard t > 0 else {
                    dev.exemptCallingThread()
                    while started.load(ordering: .acquiring) < 2 { usleep(100) }
                    usleep(500)                              // readers planned, now stalled
                    do {
                        try k.delete(victim)
                        try k.syncAll()
                        let next = try k.create(kind: .sstable, level: 1)
                        try k.append(next, pattern(bottom, seed: 900 + UInt64(round)))
                        try k.seal(next)
                        try k.sync([next])
                        if k.extents(next)?.map(\.track) != victimTracks { problems.note("round \(round): tracks not reused") }
                        try k.delete(next)
                        try k.syncAll()
                    } catch { problems.note("writer: \(error)") }
                    return
                }
                started.add(1, ordering: .releasing)
                do {
                    let back = try readAll(k, victim)
                    if back != bytes { problems.note("reader \(t) round \(round): wrong bytes (\(back.count))") }
                } catch {
                    if (error as? KVIMRError)?.kind != .notFound { problems.note("reader \(t) round \(round): \(error)") }
                }
            }
            dev.set()
        }
        #expect(problems.all.isEmpty, "\(problems.all)")
        #expect(try readAll(k, keeper) == pattern(bottom, seed: 1))
    }

    /// Many threads reading one file at once (as the kernel's parallel read-ahead requests do)
    /// while it grows: every read matches the file's bytes.
    @Test func parallelReadersOfAGrowingFile() throws {
        let problems = Problems()
        let (_, k) = try makeKVIMR(smallGeometry(tracks: 64))
        let n = try k.create(kind: .vlog, level: 0)
        let step = 700
        let size = Atomic<Int>(0)
        try k.append(n, pattern(step, seed: 3))
        size.store(step, ordering: .releasing)
        onThreads(5) { t in
            guard t > 0 else {
                do {
                    for i in 1..<60 {
                        try k.append(n, pattern(step, seed: 3, from: i * step))
                        size.store((i + 1) * step, ordering: .releasing)
                        if i % 7 == 0 { try k.sync([n]) }
                    }
                } catch { problems.note("writer: \(error)") }
                return
            }
            var rng = TestRNG(seed: UInt64(t))
            for _ in 0..<300 {
                let have = size.load(ordering: .acquiring)
                let at = rng.int(0...(have - 1)), count = rng.int(1...min(3000, have - at))
                do {
                    let back = try readRange(k, n, at: at, count: count)
                    if back != pattern(count, seed: 3, from: at) { problems.note("reader \(t): wrong bytes at \(at)+\(count)"); return }
                } catch { problems.note("reader \(t): \(error)"); return }
            }
        }
        #expect(problems.all.isEmpty, "\(problems.all)")
    }

    /// Sequential reads of a file on a real image (the device's read-ahead is off; KVIMR
    /// prefetches the file's extents) return its bytes, also read backwards and after a delete
    /// of another file.
    @Test func sequentialReadsOnAnImage() throws {
        let path = "/tmp/kvimr-readahead-\(getpid())-\(UInt64.random(in: 0...UInt64.max)).img"
        defer { unlink(path) }
        let dev = try ImageTrackDevice.create(path: path, size: 64 << 20, policy: "two-phase")
        try KVIMR.format(device: dev)
        let k = try KVIMR(device: dev)
        let n = try k.create(kind: .vlog, level: 0)
        let size = 9 << 20 + 12345                          // four bottom tracks and some
        let all = pattern(size, seed: 8)
        try k.append(n, all)
        try k.seal(n)
        try k.sync([n])
        let piece = 256 << 10
        var at = 0
        while at < size {
            let count = min(piece, size - at)
            #expect(try readRange(k, n, at: at, count: count)[...] == all[at..<(at + count)])
            at += count
        }
        at = size
        while at > 0 {
            let from = max(0, at - 300_000)
            #expect(try readRange(k, n, at: from, count: at - from)[...] == all[from..<at])
            at = from
        }
        dev.prefetch(0, sector: -5, count: 1 << 30)           // clipped, harmless
        dev.prefetch(dev.geometry.trackCount + 3, sector: 0, count: 1)
        try k.close()
    }

    @Test func readAheadFollowsInOrderReadsOnly() {
        var ra = ReadAhead()
        #expect(ra.note(1, offset: 0, end: 65536) == (nil, false))           // first read: none yet
        let first = ra.note(1, offset: 65536, end: 131072)
        #expect(first.prefetch == 131072..<(131072 + ReadAhead.firstWindow) && first.inOrder)
        #expect(ra.note(1, offset: 131072, end: 196608) == (nil, true))      // window still ahead
        // Out of order within the slack (parallel requests) keeps the stream.
        _ = ra.note(1, offset: 300_000, end: 400_000)
        #expect(ra.note(1, offset: 200_000, end: 300_000) == (nil, true))
        // Far away: starts over, nothing prefetched on the first read there.
        #expect(ra.note(1, offset: 900 << 20, end: (900 << 20) + 4096) == (nil, false))
        // The window doubles up to its maximum while the stream goes on.
        var pos: UInt64 = (900 << 20) + 4096
        var last: Range<UInt64>?
        for _ in 0..<400 {
            if let r = ra.note(1, offset: pos, end: pos + 262_144).prefetch { last = r }
            pos += 262_144
        }
        let r = try! #require(last)
        #expect(r.upperBound - pos <= ReadAhead.maxWindow)
        #expect(r.upperBound > pos)
        // Other files have streams of their own.
        #expect(ra.note(2, offset: 0, end: 10) == (nil, false))
        ra.forget(2)
        #expect(ra.note(2, offset: 10, end: 20) == (nil, false))
    }
}

/// Runs `body(i)` on `n` threads of their own (all at once, whatever the core count) and
/// waits for all of them.
func onThreads(_ n: Int, _ body: @escaping @Sendable (Int) -> Void) {
    let group = DispatchGroup()
    for i in 0..<n {
        group.enter()
        Thread.detachNewThread { body(i); group.leave() }
    }
    group.wait()
}

/// Failures seen on worker threads, checked on the test's own (an issue recorded from a
/// `concurrentPerform` thread is not tied to the running test).
final class Problems: Sendable {
    private let list = Mutex<[String]>([])
    func note(_ s: String) { list.withLock { $0.append(s) } }
    var all: [String] { list.withLock { $0 } }
}
