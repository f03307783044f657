import LSMCommon

/// One compaction to run: `inputs` of `level` merged with the `next` files of `outputLevel`
/// (leveled: the overlapping ones of `level + 1`; tiered: none), written to `outputLevel`.
package struct CompactionSpec: Sendable {
    package var level: Int
    package var inputs: [FileMeta]
    package var next: [FileMeta]
    package var outputLevel: Int
    /// The shallowest level that may hold older versions of the inputs' keys besides `next`
    /// (tombstones and shadowed versions are dropped only if nothing there holds the key).
    package var olderDataFrom: Int
    /// The inputs just change level in the manifest (leveled: a lone file with nothing below).
    package var isTrivialMove: Bool

    package init(level: Int, inputs: [FileMeta], next: [FileMeta], outputLevel: Int? = nil) {
        self.level = level; self.inputs = inputs; self.next = next
        self.outputLevel = outputLevel ?? level + 1
        self.olderDataFrom = self.outputLevel + 1
        self.isTrivialMove = inputs.count == 1 && next.isEmpty && self.outputLevel != level
    }
}

/// Leveled compaction as pure decisions over a version (mini-lsm's "leveled policy").
package enum LeveledPolicy {
    /// Target size of level n ≥ 1: baseLevelBytes × multiplier^(n-1).
    package static func targetBytes(_ level: Int, _ o: LSMOptions) -> Double {
        var t = Double(max(1, o.baseLevelBytes))
        for _ in 1..<max(1, level) { t *= Double(max(2, o.levelSizeMultiplier)) }
        return t
    }

    /// How urgently each level needs compaction (≥ 1 = needs it). The last level never does.
    package static func scores(_ v: Version, _ o: LSMOptions) -> [Double] {
        var s = [Double](repeating: 0, count: v.levels.count)
        guard v.levels.count >= 2 else { return s }
        s[0] = Double(v.levels[0].count) / Double(max(1, o.l0CompactionTrigger))
        for l in 1..<(v.levels.count - 1) { s[l] = Double(v.bytes(l)) / targetBytes(l, o) }
        // A level left with overlapping runs by tiering is merged back into one run.
        for l in 1..<v.levels.count where v.shape.overlapped[l] { s[l] = max(s[l], 1) }
        return s
    }

    package static func needsCompaction(_ v: Version, _ o: LSMOptions) -> Bool {
        scores(v, o).contains { $0 >= 1 }
    }

    /// The L0 files to compact: the oldest one and, transitively, every L0 file overlapping
    /// the range chosen so far (LevelDB's L0 expansion). A file left out overlaps none of the
    /// chosen ones, so moving them below it keeps newest-first order for every key; a lone
    /// file (sequential inserts) becomes a trivial move. `l0` is newest first.
    package static func l0Inputs(_ l0: [FileMeta]) -> [FileMeta] {
        guard let oldest = l0.last else { return [] }
        var lo = oldest.smallestUser, hi = oldest.largestUser
        var chosen = Set([oldest.number])
        var changed = true
        while changed {
            changed = false
            for f in l0 where !chosen.contains(f.number)
                && compareBytes(f.smallestUser, hi) <= 0 && compareBytes(f.largestUser, lo) >= 0 {
                chosen.insert(f.number)
                if compareBytes(f.smallestUser, lo) < 0 { lo = f.smallestUser }
                if compareBytes(f.largestUser, hi) > 0 { hi = f.largestUser }
                changed = true
            }
        }
        return l0.filter { chosen.contains($0.number) }
    }

    /// The most urgent compaction, if any. `pointers[level]` is the largest key the previous
    /// compaction of that level consumed (round-robin through the key space).
    package static func pick(_ v: Version, _ o: LSMOptions, pointers: [[UInt8]?]) -> CompactionSpec? {
        let s = scores(v, o)
        guard let best = s.indices.max(by: { s[$0] < s[$1] }), s[best] >= 1 else { return nil }
        var inputs: [FileMeta]
        if best == 0 {
            inputs = l0Inputs(v.levels[0])
        } else if v.shape.overlapped[best] {
            // Runs left by tiering (the store was written with it): merge the whole level,
            // so newer versions never move below older ones.
            inputs = v.levels[best]
        } else {
            let files = v.levels[best]
            let p = best < pointers.count ? pointers[best] : nil
            let i = p.flatMap { ptr in files.firstIndex { InternalKey.compare($0.smallest, ptr) > 0 } } ?? 0
            inputs = [files[i]]
        }
        guard !inputs.isEmpty else { return nil }
        if best == v.levels.count - 1 { // an overlapped last level merges into itself
            return CompactionSpec(level: best, inputs: inputs, next: [], outputLevel: best)
        }
        let lo = inputs.map(\.smallestUser).min { compareBytes($0, $1) < 0 }!
        let hi = inputs.map(\.largestUser).max { compareBytes($0, $1) < 0 }!
        let next = v.overlapping(best + 1, lo, hi)
        var c = CompactionSpec(level: best, inputs: inputs, next: next)
        // Runs left by tiering in the output level: a `next` file can reach past the inputs'
        // range into a file of another run that stays, holding older versions of keys being
        // merged; dropping a tombstone for them would bring those back. Nothing is dropped
        // as if the output level held no older data (it is merged whole soon: its score).
        if v.shape.overlapped[best + 1] { c.olderDataFrom = best + 1 }
        return c
    }
}

