import LSMCommon

/// How the tree merges its sorted runs (`LSMOptions.compactionStyle`).
public enum CompactionStyle: Sendable, Equatable {
    /// Partitioned leveling (LevelDB, RocksDB's default): one sorted run per level ≥ 1, each
    /// level `levelSizeMultiplier` times the one above; a compaction merges one table into the
    /// overlapping tables of the next level. Best for reads and space.
    case leveled
    /// Tiering (the stepped-merge policy; RocksDB's "universal" style is a variant): each level
    /// ≥ 1 holds up to `sizeRatio` sorted runs that may overlap; when a level holds that many,
    /// all of them are merged into one new run of the next level (the last level merges into
    /// itself). Each entry is rewritten about once per level instead of about `sizeRatio`
    /// times, at the cost of up to `sizeRatio` runs to probe per level and more space.
    /// L0 is merged whole once it holds `l0CompactionTrigger` tables.
    case tiered(sizeRatio: Int)
}

/// The compaction policy the options choose: the one entry point the background uses.
package enum CompactionPicker {
    package static func needsCompaction(_ v: Version, _ o: LSMOptions) -> Bool {
        switch o.compactionStyle {
        case .leveled: return LeveledPolicy.needsCompaction(v, o)
        case .tiered: return TieringPolicy.needsCompaction(v, o)
        }
    }

    package static func pick(_ v: Version, _ o: LSMOptions, pointers: [[UInt8]?]) -> CompactionSpec? {
        switch o.compactionStyle {
        case .leveled: return LeveledPolicy.pick(v, o, pointers: pointers)
        case .tiered: return TieringPolicy.pick(v, o)
        }
    }
}

/// Tiering as pure decisions over a version (mini-lsm's "tiered policy").
///
/// A level's sorted runs are not recorded anywhere: they are recovered from the files' key
/// ranges (`LevelShape`, the fewest chains of non-overlapping tables). Runs that do not
/// overlap at all (sequential inserts) therefore count as one run and are never merged —
/// there is nothing to gain from rewriting them. Reads take the newest version among all the
/// runs of a level (`Engine.newestHolder`), and every level still holds only data newer than
/// the levels below it, because a level is always merged whole into the next.
package enum TieringPolicy {
    static func sizeRatio(_ o: LSMOptions) -> Int {
        if case .tiered(let t) = o.compactionStyle { return max(2, t) }
        return max(2, o.levelSizeMultiplier)
    }

    /// How full each level is (≥ 1 = needs a merge): L0 tables / trigger, deeper levels
    /// runs / size ratio.
    package static func scores(_ v: Version, _ o: LSMOptions) -> [Double] {
        var s = [Double](repeating: 0, count: v.levels.count)
        guard v.levels.count >= 2 else { return s }
        s[0] = Double(v.levels[0].count) / Double(max(1, o.l0CompactionTrigger))
        let t = Double(sizeRatio(o))
        for l in 1..<v.levels.count { s[l] = Double(v.runs(l).count) / t }
        return s
    }

    package static func needsCompaction(_ v: Version, _ o: LSMOptions) -> Bool {
        scores(v, o).contains { $0 >= 1 }
    }

    /// The fullest level's merge (the shallower level on a tie, so data moves down in order):
    /// all of its tables become one new run of the next level, or of itself at the last level.
    package static func pick(_ v: Version, _ o: LSMOptions) -> CompactionSpec? {
        let s = scores(v, o)
        var best = -1
        for l in s.indices where s[l] >= 1 && (best < 0 || s[l] > s[best]) { best = l }
        guard best >= 0, !v.levels[best].isEmpty else { return nil }
        let last = v.levels.count - 1
        let output = min(best + 1, last)
        var c = CompactionSpec(level: best, inputs: v.levels[best], next: [], outputLevel: output)
        // The runs of the output level stay as they are: all their data is older.
        c.olderDataFrom = output == best ? output + 1 : output
        // Tables that do not overlap one another just move down (sequential inserts).
        c.isTrivialMove = output != best && LevelShape.chains(c.inputs).count == 1
        return c
    }
}
