import IMRDisk
import KVIMR
import LSMStore
import Testing

@Suite struct StoreBasicsTests {
    @Test func putGetDeleteScanReopen() throws {
        let dev = try freshDevice()
        var s = try openStore(dev)
        try s.put([1], [10])
        try s.put([2], [20])
        try s.put([3], [30])
        try s.delete([2])
        #expect(try s.get([1]) == [10])
        #expect(try s.get([2]) == nil)
        #expect(try s.get([9]) == nil)
        #expect(try dump(s).map(\.0) == [[1], [3]])
        try s.put([2], [])                      // empty value is a value
        #expect(try s.get([2]) == [])
        try s.close()
        #expect(lsmError { _ = try s.get([1]) }?.kind == .closed)

        s = try openStore(dev.reopened())
        #expect(try s.get([1]) == [10])
        #expect(try s.get([2]) == [])
        #expect(try dump(s).map(\.0) == [[1], [2], [3]])
        try s.close()
    }

    @Test func batchAndDeleteRange() throws {
        let s = try openStore(try freshDevice())
        for i in 0..<300 { try s.put(key(i), value(i, version: 0, size: 100)) }
        var b = WriteBatch()
        b.put(key(1000), [1])
        b.deleteRange(key(100), key(200))
        b.put(key(150), [2])                    // after the range delete: survives
        b.delete(key(5))
        try s.write(b)
        #expect(try s.get(key(99)) != nil)
        #expect(try s.get(key(100)) == nil)
        #expect(try s.get(key(199)) == nil)
        #expect(try s.get(key(150)) == [2])
        #expect(try s.get(key(200)) != nil)
        #expect(try s.get(key(5)) == nil)
        #expect(try dump(s, from: key(90), to: key(210)).count == 10 + 1 + 10)
        try s.deleteRange(key(0), key(10_000))
        #expect(try dump(s).isEmpty)
        try s.close()
    }

    @Test func flushesAndCompactionsKeepEverything() throws {
        let dev = try freshDevice()
        var s = try openStore(dev)
        for round in 0..<4 {
            for i in 0..<1500 { try s.put(key(i), value(i, version: round, size: 60 + i % 90)) }
        }
        s.waitForBackgroundWork()
        let st = s.stats()
        #expect(st.flushes > 10)
        #expect(st.compactions > 0)
        #expect(st.levels[0].files < 3 * smallOptions().l0CompactionTrigger)
        #expect(st.levels.dropFirst().contains { $0.files > 0 })
        for i in 0..<1500 { #expect(try s.get(key(i)) == value(i, version: 3, size: 60 + i % 90)) }
        #expect(s.stats().bloomChecks > 0)
        let report = s.verify()
        #expect(report.isClean, "\(report.problems)")
        #expect(report.orphanFiles.isEmpty)
        #expect(report.tables == s.stats().levels.reduce(0) { $0 + $1.files })
        #expect(report.entries >= 1500)
        try s.close()
        s = try openStore(dev.reopened())
        let all = try dump(s)
        #expect(all.count == 1500)
        for (n, (k, v)) in all.enumerated() { #expect(k == key(n)); #expect(v == value(n, version: 3, size: 60 + n % 90)) }
        try s.close()
    }

    @Test func largeValues() throws {
        let dev = try freshDevice()
        var s = try openStore(dev)
        var rng = RNG(seed: 5)
        var model: [[UInt8]: [UInt8]] = [:]
        for i in 0..<60 {
            let v = rng.bytes(rng.int(0...130_000))
            model[key(i)] = v
            try s.put(key(i), v)
        }
        for (k, v) in model { #expect(try s.get(k) == v) }
        try s.close()
        s = try openStore(dev.reopened())
        for (k, v) in model { #expect(try s.get(k) == v) }
        try s.close()
    }

    @Test func readOnlySeesWalButRejectsWrites() throws {
        let dev = try freshDevice()
        let s = try openStore(dev)
        try s.put([7], [7], sync: true)
        let ro = try openStore(dev.crashed(), readOnly: true)
        #expect(try ro.get([7]) == [7])
        #expect(lsmError { try ro.put([8], [8]) }?.kind == .readOnly)
        try s.close()
    }
}

@Suite struct ModelTests {
    /// Random operations against a dictionary, with reopens; small memtables force flushes
    /// and compactions through every level.
    @Test(arguments: [1, 2, 3, 4, 5] as [UInt64])
    func randomizedAgainstModel(seed: UInt64) throws {
        var rng = RNG(seed: seed)
        var dev = try freshDevice()
        var o = smallOptions()
        // Memtables are charged the bytes their entries take in the arena (~80 for a value
        // pointer): 8 KiB ones keep a session flushing several times.
        o.memtableBytes = 8 << 10
        if seed >= 4 { o.compactionStyle = .tiered(sizeRatio: Int(seed) - 2) } // tiering, T = 2 and 3
        if seed == 2 { o.maxOpenTables = 8; o.blockCacheBytes = 0 } // exercise table reopening, no block cache
        // A share of the values goes to the value log (threshold by seed: many, some, few).
        o.valueLogThreshold = [1: 150, 2: 1000, 3: 4000][seed] ?? 1000
        o.valueLogSegmentBytes = 128 << 10
        var s = try openStore(dev, o)
        var model: [[UInt8]: [UInt8]] = [:]
        var version = 0
        var flushes: UInt64 = 0, compactions: UInt64 = 0
        for step in 0..<2500 {
            let r = rng.int(0...99)
            let i = rng.int(0...600)
            if r < 50 {
                version += 1
                let v = value(i, version: version, size: rng.bool(3) ? rng.int(2000...9000) : rng.int(0...300))
                try s.put(key(i), v); model[key(i)] = v
            } else if r < 62 {
                try s.delete(key(i)); model[key(i)] = nil
            } else if r < 66 {
                let j = i + (rng.bool(20) ? rng.int(0...400) : rng.int(0...40))
                try s.deleteRange(key(i), key(j))
                for k in model.keys where !lexLess(k, key(i)) && lexLess(k, key(j)) { model[k] = nil }
            } else if r < 70 {
                var b = WriteBatch()
                for _ in 0..<rng.int(1...8) {
                    let x = rng.int(0...600)
                    if rng.bool(10) {
                        let y = x + rng.int(0...30)
                        b.deleteRange(key(x), key(y))
                        for k in model.keys where !lexLess(k, key(x)) && lexLess(k, key(y)) { model[k] = nil }
                    } else if rng.bool(70) {
                        version += 1
                        let v = value(x, version: version, size: rng.int(0...200))
                        b.put(key(x), v); model[key(x)] = v
                    } else {
                        b.delete(key(x)); model[key(x)] = nil
                    }
                }
                try s.write(b)
            } else if r < 90 {
                #expect(try s.get(key(i)) == model[key(i)], "seed \(seed) step \(step) key \(i)")
                if step % 50 == 0 { #expect(s.versionInvariantViolation() == nil) }
            } else if r < 99 {
                let j = i + rng.int(0...80)
                let got = try dump(s, from: key(i), to: key(j))
                #expect(same(got, sortedModel(model, from: key(i), to: key(j))), "seed \(seed) step \(step) scan")
                // The same range descending (sometimes open-ended), sometimes stopped early.
                let end = rng.bool(15) ? nil : key(j)
                let limit = rng.bool(30) ? rng.int(1...5) : Int.max
                var back: [([UInt8], [UInt8])] = []
                try s.scan(from: key(i), to: end, reverse: true) { k, v in back.append((k, v)); return back.count < limit }
                let want = Array(sortedModel(model, from: key(i), to: end).reversed().prefix(limit))
                #expect(same(back, want), "seed \(seed) step \(step) reverse scan")
            } else {
                s.waitForBackgroundWork() // count every flush of this session, not just the finished ones
                flushes += s.stats().flushes; compactions += s.stats().compactions
                try s.close()
                dev = dev.reopened()
                s = try openStore(dev, o)
            }
        }
        s.waitForBackgroundWork()
        #expect(s.versionInvariantViolation() == nil)
        #expect(same(try dump(s), sortedModel(model)))
        flushes += s.stats().flushes; compactions += s.stats().compactions
        #expect(flushes > 5)
        #expect(compactions > 0)
        try s.close()
        s = try openStore(dev.reopened())
        #expect(same(try dump(s), sortedModel(model)))
        try s.close()
    }

    @Test func scanStopsEarlyAndHonoursBounds() throws {
        let s = try openStore(try freshDevice())
        for i in 0..<500 { try s.put(key(i), [UInt8(i & 0xFF)]) }
        var seen = 0
        try s.scan(from: key(10), to: nil) { _, _ in seen += 1; return seen < 5 }
        #expect(seen == 5)
        #expect(try dump(s, from: key(490), to: nil).count == 10)
        #expect(try dump(s, from: key(20), to: key(20)).isEmpty)
        try s.close()
    }
}

@Suite struct NoSpaceTests {
    /// Filling a tiny drive ends in `.noSpace` (ENOSPC), never a crash or corruption; what was
    /// written stays readable.
    @Test func fullDriveReportsNoSpace() throws {
        let dev = try freshDevice(tracks: 40)
        let s = try openStore(dev)
        var written = 0
        var failure: LSMError? = nil
        for i in 0..<100_000 {
            do { try s.put(key(i), value(i, version: 0, size: 900)) } catch { failure = error; break }
            written += 1
        }
        #expect(failure?.kind == .noSpace, "\(String(describing: failure))")
        #expect(written > 100)
        for i in stride(from: 0, to: written, by: 13) {
            #expect(try s.get(key(i)) == value(i, version: 0, size: 900))
        }
        try? s.close()
    }
}

@Suite struct SnapshotTests {
    /// A snapshot keeps seeing its moment through later writes, flushes and compactions; once
    /// released, the tables only it used are deleted.
    @Test func snapshotSurvivesCompaction() throws {
        let dev = try freshDevice()
        let s = try openStore(dev)
        for i in 0..<800 { try s.put(key(i), value(i, version: 0, size: 100)) }
        var snap: LSMSnapshot? = try s.snapshot()
        for round in 1...3 {
            for i in 0..<800 { try s.put(key(i), value(i, version: round, size: 100)) }
        }
        try s.deleteRange(key(0), key(400))
        try s.flush()
        s.waitForBackgroundWork()
        #expect(s.stats().compactions > 0)
        for i in stride(from: 0, to: 800, by: 7) {
            #expect(try snap!.get(key(i)) == value(i, version: 0, size: 100))
            #expect(try s.get(key(i)) == (i < 400 ? nil : value(i, version: 3, size: 100)))
        }
        var n = 0
        try snap!.scan(from: [], to: nil) { k, v in
            if k != key(n) || v != value(n, version: 0, size: 100) { Issue.record("snapshot scan at \(n)") }
            n += 1
            return true
        }
        #expect(n == 800)
        let tablesHeld = s.kvimr.files().filter { $0.kind == .sstable }.count
        snap = nil
        let live = s.stats().levels.reduce(0) { $0 + $1.files }
        let tablesAfter = s.kvimr.files().filter { $0.kind == .sstable }.count
        #expect(tablesAfter == live)
        #expect(tablesAfter < tablesHeld)
        try s.close()
    }
}

@Suite struct RangeDeleteTests {
    /// Range tombstones at every depth: over flushed and compacted data, at table boundaries,
    /// under snapshots, across reopens, and dropped once they reach the bottom.
    @Test func rangeDeletesThroughLevels() throws {
        let dev = try freshDevice()
        var s = try openStore(dev)
        for i in 0..<3000 { try s.put(key(i), value(i, version: 0, size: 60)) }
        try s.flush(); s.waitForBackgroundWork()
        let snap = try s.snapshot()
        try s.deleteRange(key(100), key(2900))
        try s.put(key(1500), [1])                        // newer than the tombstone
        #expect(try s.get(key(99)) == value(99, version: 0, size: 60))
        #expect(try s.get(key(100)) == nil)
        #expect(try s.get(key(1500)) == [1])
        #expect(try s.get(key(2899)) == nil)
        #expect(try s.get(key(2900)) == value(2900, version: 0, size: 60))
        #expect(try dump(s).count == 100 + 1 + 100)
        #expect(try snap.get(key(500)) == value(500, version: 0, size: 60))
        #expect(try dump(snap).count == 3000)
        // Push the tombstone down through the levels with more writes elsewhere.
        for round in 1...3 {
            for i in 3000..<4500 { try s.put(key(i), value(i, version: round, size: 60)) }
        }
        try s.flush(); s.waitForBackgroundWork()
        #expect(s.versionInvariantViolation() == nil)
        #expect(try s.get(key(100)) == nil)
        #expect(try s.get(key(1500)) == [1])
        #expect(try dump(s, to: key(3000)).count == 201)
        #expect(try dump(snap, to: key(3000)).count == 3000)
        try s.close()
        s = try openStore(dev.reopened())
        #expect(try s.get(key(2000)) == nil)
        #expect(try s.get(key(1500)) == [1])
        #expect(try dump(s, to: key(3000)).count == 201)
        try s.deleteRange([], [0xFF])
        #expect(try dump(s).isEmpty)
        try s.close()
    }
}
