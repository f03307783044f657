import Foundation
import Synchronization
import IMRDisk
import KVIMR
import LSMStore
import Testing

@Suite struct CrashTests {
    /// Random writes with periodic sync(); crash the drive at a random point (keeping some
    /// unsynced writes, maybe tearing the last); the reopened store must hold exactly the state
    /// after some operation at or after the last completed sync — all synced writes, batches
    /// all-or-nothing, nothing corrupt.
    @Test(arguments: Array(1...6) as [UInt64])
    func crashKeepsSyncedPrefix(seed: UInt64) throws {
        var rng = RNG(seed: seed &* 77)
        let dev = try freshDevice()
        let s = try openStore(dev)
        var model: [[UInt8]: [UInt8]] = [:]
        var sinceSync: [[[UInt8]: [UInt8]]] = [model] // states reachable after the last sync
        let ops = rng.int(200...1500)
        for step in 0..<ops {
            let i = rng.int(0...300)
            switch rng.int(0...99) {
            case 0..<60:
                let v = value(i, version: step, size: rng.int(0...400))
                try s.put(key(i), v); model[key(i)] = v
            case 60..<75:
                try s.delete(key(i)); model[key(i)] = nil
            case 75..<78:
                let j = i + rng.int(1...20)
                try s.deleteRange(key(i), key(j))
                for k in model.keys where !lexLess(k, key(i)) && lexLess(k, key(j)) { model[k] = nil }
            default:
                var b = WriteBatch()
                for x in 0..<rng.int(2...6) {
                    let v = value(i + x, version: step, size: 50)
                    b.put(key(i + x), v); model[key(i + x)] = v
                }
                try s.write(b)
            }
            if rng.bool(5) {
                try s.sync()
                sinceSync = [model]
            } else {
                sinceSync.append(model)
            }
        }
        let after = dev.crashed(keepUnsynced: rng.int(0...dev.unsyncedWriteCount), tearLast: rng.bool())
        let r = try openStore(after)
        let got = try dump(r)
        let match = sinceSync.lastIndex { same(got, sortedModel($0)) }
        #expect(match != nil, "seed \(seed): recovered state (\(got.count) keys) is no state since the last sync")
        // The recovered store keeps working and survives a clean reopen.
        try r.put([0xFF], [1])
        try r.close()
        let again = try openStore(after.reopened())
        #expect(try again.get([0xFF]) == [1])
        #expect(try dump(again).count == got.count + 1)
        try again.close()
        try? s.close()
    }

    /// Power loss after a random number of device writes — possibly inside a flush, a
    /// compaction, a manifest edit or a KVIMR checkpoint. Every operation fails from then on;
    /// the image as the crash left it must recover to a state at or after the last sync.
    @Test(arguments: Array(1...10) as [UInt64])
    func powerLossAnywhere(seed: UInt64) throws {
        var rng = RNG(seed: seed &* 1_000_003)
        try powerLossWorkload(seed: seed, rng: &rng, device: try freshDevice(), options: smallOptions(),
                              maxWrites: 600, steps: 3000, keys: 250) { $0.int(0...500) }
    }

    @Test func syncedWriteSurvivesImmediateCrash() throws {
        let dev = try freshDevice()
        let s = try openStore(dev)
        for i in 0..<2000 { try s.put(key(i), value(i, version: 1, size: 40), sync: i % 100 == 99) }
        let r = try openStore(dev.crashed())
        for i in 0..<2000 { #expect(try r.get(key(i)) == value(i, version: 1, size: 40)) }
        try r.close()
        try? s.close()
    }
}

@Suite struct CorruptionTests {
    /// Flip one byte of an SSTable's first data block on the drive: reads of keys there fail
    /// with `.corrupt`; no read ever returns wrong data.
    @Test func flippedTableByteIsReported() throws {
        let dev = try freshDevice()
        var s = try openStore(dev)
        for i in 0..<3000 { try s.put(key(i), value(i, version: 0, size: 80)) }
        try s.close()
        let k = try KVIMR(device: dev.reopened())
        let tables = k.files().filter { $0.kind == .sstable }
        #expect(!tables.isEmpty)
        let victim = try #require(k.extents(tables[0].number)?.first)
        try k.close()
        let damaged = dev.reopened()
        let sector = damaged.geometry.sectorSize
        var buf = [UInt8](repeating: 0, count: sector)
        try buf.withUnsafeMutableBytes { p in try damaged.readTrack(victim.track, sector: victim.firstSector, into: p) }
        buf[100] ^= 0x08
        try buf.withUnsafeBytes { p in try damaged.writeTrack(victim.track, sector: victim.firstSector, from: p, mode: .deviceManaged) }
        try damaged.sync()

        s = try openStore(damaged)
        var corrupt = 0
        for i in 0..<3000 {
            do {
                let v = try s.get(key(i))
                #expect(v == value(i, version: 0, size: 80), "key \(i): wrong data")
            } catch {
                #expect(error.kind == .corrupt)
                corrupt += 1
            }
        }
        #expect(corrupt > 0)
        #expect(lsmError { _ = try dump(s) }?.kind == .corrupt)
        let report = s.verify()
        #expect(report.problems.count == 1)
        #expect(report.problems.first?.contains("table \(tables[0].number)") == true, "\(report.problems)")
        try? s.close()
    }
}

@Suite struct ConcurrencyTests {
    /// Writers on disjoint keys and readers checking self-describing values, while flushes and
    /// compactions run underneath.
    @Test func concurrentReadersAndWriters() throws {
        let dev = try freshDevice()
        let s = try openStore(dev)
        let writers = 3, perWriter = 1200
        let group = DispatchGroup()
        let failures = Failures()
        let writersRunning = Box(writers)
        for w in 0..<writers {
            group.enter()
            Thread.detachNewThread {
                defer { writersRunning.value.subtract(1, ordering: .relaxed); group.leave() }
                do {
                    for n in 0..<perWriter {
                        let i = w * 100_000 + n
                        if n % 10 == 9 {
                            var b = WriteBatch()
                            b.put(key(i), value(i, version: 1, size: 70)); b.delete(key(i - 1))
                            try s.write(b)
                        } else {
                            try s.put(key(i), value(i, version: 1, size: 70))
                        }
                    }
                } catch { failures.add("writer \(w): \(error)") }
            }
        }
        for r in 0..<2 {
            group.enter()
            Thread.detachNewThread {
                defer { group.leave() }
                var rng = RNG(seed: UInt64(r + 10))
                do {
                    var rounds = 0
                    while rounds < 300 || writersRunning.value.load(ordering: .relaxed) > 0 {
                        rounds += 1
                        let w = rng.int(0...(writers - 1)), n = rng.int(0...(perWriter - 1))
                        let i = w * 100_000 + n
                        if let v = try s.get(key(i)), v != value(i, version: 1, size: 70) { failures.add("bad value for \(i)") }
                        var prev: [UInt8]? = nil
                        try s.scan(from: key(w * 100_000), to: key(w * 100_000 + 200)) { k, v in
                            if let p = prev, !lexLess(p, k) { failures.add("scan out of order") }
                            prev = k
                            if v.count != 70 { failures.add("bad scan value") }
                            return true
                        }
                    }
                } catch { failures.add("reader \(r): \(error)") }
            }
        }
        group.wait()
        #expect(failures.all.isEmpty, "\(failures.all.prefix(5))")
        for w in 0..<writers {
            for n in 0..<perWriter {
                let i = w * 100_000 + n
                let expected: [UInt8]? = (n % 10 == 8 && n + 1 < perWriter) ? nil : value(i, version: 1, size: 70)
                #expect(try s.get(key(i)) == expected)
            }
        }
        try s.close()
    }
}

@Suite struct GroupCommitTests {
    /// Concurrent synced writes (group commit): every acknowledged write survives a crash that
    /// keeps nothing unsynced.
    @Test func concurrentSyncedWritesSurviveCrash() throws {
        try concurrentSyncedWritesSurviveACrash(device: try freshDevice(), options: smallOptions(), perWriter: 150) { _ in 300 }
    }
}

final class Failures: @unchecked Sendable {
    private let lock = NSLock()
    private var list: [String] = []
    func add(_ s: String) { lock.lock(); list.append(s); lock.unlock() }
    var all: [String] { lock.lock(); defer { lock.unlock() }; return list }
}

final class Box: Sendable {
    let value: Atomic<Int>
    init(_ v: Int) { value = Atomic(v) }
}

@Suite struct FaultTests {
    /// Random read failures of the drive surface as errors (EIO), never as wrong data or a crash;
    /// once the faults stop, every key reads back.
    @Test func readFaultsAreErrorsNotWrongData() throws {
        let mem = try freshDevice()
        var s = try openStore(mem)
        for i in 0..<3000 { try s.put(key(i), value(i, version: 0, size: 120)) }
        try s.close()
        let faulty = FaultyTrackDevice(mem.reopened())
        var o = smallOptions()
        o.blockCacheBytes = 0
        s = try LSMStore(kvimr: try KVIMR(device: faulty), options: o)
        faulty.inject(.failRandomly([.readTrack], oneIn: 7, seed: 3))
        var errors = 0
        for i in 0..<3000 {
            do {
                let v = try s.get(key(i))
                #expect(v == value(i, version: 0, size: 120))
            } catch {
                errors += 1
                #expect(error.kind == .io || error.kind == .corrupt)
            }
        }
        #expect(errors > 0)
        faulty.removeAllRules()
        for i in 0..<3000 { #expect(try s.get(key(i)) == value(i, version: 0, size: 120)) }
        try s.close()
    }
}
