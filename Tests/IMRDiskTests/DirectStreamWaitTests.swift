import Foundation
import Glibc
import IMRDisk
import Synchronization
import Testing

/// A streaming read of bytes whose prefetch is queued or still loading waits for the load (and
/// reads across the 1 MiB pieces a prefetch is loaded in); it never returns stale or torn bytes:
/// not right after `prefetch` (no `waitForPrefetches`), not after a write that overlaps a load
/// in flight, not with many threads reading at once.

/// `count` bytes from `seed`, filled a word at a time (the byte-wise `pattern` is slow in debug
/// for the megabytes these tests write).
func wordPattern(_ seed: Int, count: Int) -> [UInt8] {
    var out = [UInt8](repeating: 0, count: count)
    var x = UInt64(truncatingIfNeeded: seed) &* 0x9E37_79B9_7F4A_7C15 &+ 1
    out.withUnsafeMutableBytes { p in
        for i in 0..<(count / 8) {
            x = x &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            p.storeBytes(of: x ^ (x >> 29), toByteOffset: i * 8, as: UInt64.self)
        }
    }
    return out
}

/// Byte equality by memcmp (element-wise comparison of megabytes is slow in debug).
func sameBytes(_ a: [UInt8], _ b: ArraySlice<UInt8>) -> Bool {
    a.count == b.count && a.withUnsafeBytes { pa in b.withUnsafeBytes { pb in memcmp(pa.baseAddress!, pb.baseAddress!, a.count) == 0 } }
}

@Suite struct DirectStreamWaitTests {
    func streamRead(_ d: ImageTrackDevice, _ track: Int, at byte: Int, count: Int) throws(DeviceError) -> [UInt8] {
        let ss = d.geometry.sectorSize
        var buf = [UInt8](repeating: 0xEE, count: count)
        try buf.withUnsafeMutableBytes { (p) -> Result<Void, DeviceError> in
            Result { () throws(DeviceError) in
                try d.readTrackBytes(track, sector: byte / ss, skip: byte % ss, into: p, streaming: true)
            }
        }.get()
        return buf
    }

    /// An image with tracks 0-3 written whole (two bottoms of ~2.2 MiB, two tops): the bytes of
    /// each track, by track.
    func scene(_ tmp: TempDir, seed: Int) throws -> (ImageTrackDevice, [[UInt8]]) {
        let d = try ImageTrackDevice.create(path: tmp.file("w.img"), size: 64 << 20, policy: "kvimr")
        var tracks: [[UInt8]] = []
        for t in 0..<4 {
            let bytes = wordPattern(seed + t, count: d.geometry.capacity(of: t))
            try write(d, t, 0, bytes)
            tracks.append(bytes)
        }
        return (d, tracks)
    }

    /// Ranges a reader asks for: odd offsets and lengths, many crossing the 1 MiB pieces.
    func ranges(_ capacity: Int, _ rng: inout SystemRandomNumberGenerator) -> [(at: Int, count: Int)] {
        var out: [(Int, Int)] = [(0, capacity), (1 << 20 - 3, 10), ((1 << 20) - 70_000, 300_000), (capacity - 5, 5)]
        for _ in 0..<6 {
            let at = Int.random(in: 0..<capacity, using: &rng)
            out.append((at, Int.random(in: 1...min(capacity - at, 1_500_000), using: &rng)))
        }
        return out
    }

    @Test func readRightAfterPrefetchWithoutWaiting() throws {
        let tmp = TempDir()
        var (d, tracks) = try scene(tmp, seed: 10)
        defer { try? d.close() }
        var rng = SystemRandomNumberGenerator()
        for round in 0..<4 {
            if round > 0 {   // fresh bytes each round: a stale window would show
                for t in 0..<4 {
                    tracks[t] = wordPattern(100 * round + t, count: d.geometry.capacity(of: t))
                    try write(d, t, 0, tracks[t])
                }
            }
            for t in 0..<4 { d.prefetch(t, sector: 0, count: d.geometry.sectors(of: t)) }
            // No wait: the first reads meet queued or running loads.
            for t in [0, 2, 1, 3] {
                for r in ranges(tracks[t].count, &rng) {
                    let got = try streamRead(d, t, at: r.at, count: r.count)
                    #expect(sameBytes(got, tracks[t][r.at..<(r.at + r.count)]), "round \(round) track \(t) \(r)")
                }
            }
        }
        d.waitForPrefetches()
    }

    /// A write overlapping a prefetch (queued, loading, or loaded) is what a later read sees:
    /// inside one piece, across two pieces, and the whole track.
    @Test func writeAfterPrefetchIsSeen() throws {
        let tmp = TempDir()
        var (d, tracks) = try scene(tmp, seed: 20)
        defer { try? d.close() }
        let ss = d.geometry.sectorSize
        let perPiece = (1 << 20) / ss
        let cases: [(sector: Int, count: Int)] = [(3, 1), (perPiece - 2, 4), (perPiece * 2 - 1, 2), (0, d.geometry.bottomSectors)]
        for (round, c) in (cases + cases).enumerated() {
            let t = round % 2 == 0 ? 0 : 2
            d.prefetch(t, sector: 0, count: d.geometry.sectors(of: t))
            if round >= cases.count { d.waitForPrefetches() }    // second pass: windows loaded first
            let fresh = wordPattern(500 + round, count: c.count * ss)
            try write(d, t, c.sector, fresh)
            tracks[t].replaceSubrange((c.sector * ss)..<((c.sector + c.count) * ss), with: fresh)
            // Right after the write, then after the loads are done: the new bytes both times.
            for pass in 0..<2 {
                if pass == 1 { d.waitForPrefetches() }
                let lo = max(0, c.sector * ss - 5000), hi = min(tracks[t].count, (c.sector + c.count) * ss + 5000)
                #expect(sameBytes(try streamRead(d, t, at: lo, count: hi - lo), tracks[t][lo..<hi]), "round \(round) pass \(pass)")
                #expect(sameBytes(try streamRead(d, t, at: 0, count: tracks[t].count), tracks[t][...]), "round \(round) pass \(pass) whole")
            }
        }
    }

    /// Eight threads read random ranges of prefetched tracks while one prefetches them again
    /// and again: every read returns the tracks' bytes.
    @Test func concurrentReadersOfPrefetchedRanges() throws {
        let tmp = TempDir()
        let (d, tracks) = try scene(tmp, seed: 30)
        defer { try? d.close() }
        let failures = Mutex<[String]>([])
        let done = Atomic<Int>(0)
        for t in 0..<4 { d.prefetch(t, sector: 0, count: d.geometry.sectors(of: t)) }
        let group = DispatchGroup()
        for worker in 0..<9 {
            group.enter()
            Thread.detachNewThread {
            defer { group.leave() }
            if worker == 8 {
                while done.load(ordering: .acquiring) < 8 {
                    for t in 0..<4 { d.prefetch(t, sector: 0, count: d.geometry.sectors(of: t)) }
                    usleep(2000)
                }
                return
            }
            defer { done.add(1, ordering: .releasing) }
            var rng = SystemRandomNumberGenerator()
            for i in 0..<25 {
                let t = (worker + i) % 4
                let cap = tracks[t].count
                let at = Int.random(in: 0..<cap, using: &rng)
                let count = Int.random(in: 1...min(cap - at, 1_200_000), using: &rng)
                do {
                    let got = try streamRead(d, t, at: at, count: count)
                    if !sameBytes(got, tracks[t][at..<(at + count)]) {
                        failures.withLock { $0.append("worker \(worker): track \(t) at \(at)+\(count) wrong") }
                    }
                } catch {
                    failures.withLock { $0.append("worker \(worker): \(error)") }
                }
            }
            }
        }
        group.wait()
        d.waitForPrefetches()
        #expect(failures.withLock { $0 }.isEmpty, "\(failures.withLock { $0 }.prefix(5))")
    }

    /// Closing the device with prefetches queued: reads after it fail cleanly (`.closed`).
    @Test func closeWithPrefetchesQueued() throws {
        let tmp = TempDir()
        let (d, _) = try scene(tmp, seed: 40)
        for t in 0..<4 { d.prefetch(t, sector: 0, count: d.geometry.sectors(of: t)) }
        try d.close()
        d.waitForPrefetches()
        #expect(deviceError { () throws(DeviceError) in _ = try streamRead(d, 0, at: 0, count: 100) }?.kind == .closed)
    }
}
