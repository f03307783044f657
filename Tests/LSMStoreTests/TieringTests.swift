import LSMStore
import Testing

/// The tiering merge policy (`LSMOptions.compactionStyle = .tiered`): several overlapping runs
/// per level, reads always the newest version, fewer bytes rewritten than leveling.
@Suite struct TieringTests {
    static func tiered(_ t: Int) -> LSMOptions {
        var o = smallOptions()
        o.compactionStyle = .tiered(sizeRatio: t)
        o.valueLogThreshold = .max
        return o
    }

    /// Random overwrites and deletes: levels come to hold several overlapping runs (never
    /// `sizeRatio` of them once the background is idle); every get, scan and snapshot answers
    /// from the newest version; reopening with leveled compaction merges the runs back into
    /// one per level and still reads the same.
    @Test func severalRunsPerLevelReadNewest() throws {
        let dev = try freshDevice(tracks: 800)
        let o = Self.tiered(3)
        let s = try openStore(dev, o)
        var rng = RNG(seed: 11)
        var model: [[UInt8]: [UInt8]] = [:]
        var maxRuns = 0
        var snap: (LSMSnapshot, [([UInt8], [UInt8])])? = nil
        for step in 0..<6000 {
            let i = rng.int(0...1500)
            if rng.bool(85) {
                let v = value(i, version: step, size: rng.int(10...120))
                try s.put(key(i), v); model[key(i)] = v
            } else if rng.bool(90) {
                try s.delete(key(i)); model[key(i)] = nil
            } else {
                try s.deleteRange(key(i), key(i + 20))
                for j in i..<(i + 20) { model[key(j)] = nil }
            }
            if step % 500 == 499 {
                maxRuns = max(maxRuns, s.sortedRunsPerLevel().dropFirst().max() ?? 0)
                for _ in 0..<50 { let j = rng.int(0...1520); #expect(try s.get(key(j)) == model[key(j)], "step \(step) key \(j)") }
                #expect(s.versionInvariantViolation() == nil)
            }
            if step == 2000 { let sn = try s.snapshot(); snap = (sn, try dump(sn)) }
        }
        #expect(maxRuns >= 2, "levels held \(maxRuns) runs at most")
        if let (sn, before) = snap { #expect(same(try dump(sn), before), "snapshot taken mid-run still reads the same") }
        snap = nil
        s.waitForBackgroundWork()
        let runs = s.sortedRunsPerLevel()
        #expect(runs.dropFirst().allSatisfy { $0 < 3 }, "runs per level when idle: \(runs)")
        #expect(same(try dump(s), sortedModel(model)))
        for i in 0..<1520 where i % 3 == 0 { #expect(try s.get(key(i)) == model[key(i)]) }
        #expect(s.verify().isClean)
        try s.close()

        var leveled = o
        leveled.compactionStyle = .leveled
        let r = try openStore(dev.reopened(), leveled)
        #expect(same(try dump(r), sortedModel(model)))
        r.waitForBackgroundWork()
        #expect(r.sortedRunsPerLevel().dropFirst().allSatisfy { $0 <= 1 }, "\(r.sortedRunsPerLevel())")
        #expect(r.versionInvariantViolation() == nil)
        #expect(same(try dump(r), sortedModel(model)))
        try r.close()
    }

    /// The same random overwrites rewrite fewer table bytes under tiering than under leveling
    /// with the same size ratio (each entry is merged about once per level instead of about
    /// `T` times).
    @Test func tieringWritesLessThanLeveling() throws {
        func tableBytes(_ o: LSMOptions) throws -> UInt64 {
            let s = try openStore(try freshDevice(tracks: 1200), o)
            var rng = RNG(seed: 5)
            for step in 0..<12_000 {
                let i = rng.int(0...4000)
                try s.put(key(i), value(i, version: step, size: 60))
            }
            s.waitForBackgroundWork()
            let st = s.stats()
            try s.close()
            return st.tableBytesWritten
        }
        var leveled = Self.tiered(4)
        leveled.compactionStyle = .leveled
        leveled.levelSizeMultiplier = 4
        let l = try tableBytes(leveled), t = try tableBytes(Self.tiered(4))
        #expect(t < l, "table bytes written: tiered \(t), leveled \(l)")
    }
}
