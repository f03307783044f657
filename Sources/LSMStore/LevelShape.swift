/// The sorted runs of each level of a version. Leveled compaction keeps every level ≥ 1 one
/// run; tiering lets a level hold several overlapping runs. The runs are not recorded in the
/// manifest: they are recovered from the files' key ranges as the fewest chains of
/// non-overlapping tables, so a level whose runs happen not to overlap (sequential inserts)
/// reads — and counts — as one run.
package struct LevelShape: Sendable {
    /// Per level: whether two of its files overlap (L0: always true).
    package let overlapped: [Bool]
    /// Per level ≥ 1: its chains, each sorted by key. L0: one chain per file (newest first).
    package let runs: [[[FileMeta]]]

    init(_ levels: [[FileMeta]]) {
        var ov: [Bool] = [], runs: [[[FileMeta]]] = []
        for (l, files) in levels.enumerated() {
            if l == 0 {
                ov.append(true); runs.append(files.map { [$0] })
                continue
            }
            // Sorted by smallest key: files overlap iff two neighbours do.
            var overlaps = false
            for i in files.indices.dropFirst() where !LevelShape.before(files[i - 1], files[i]) { overlaps = true; break }
            ov.append(overlaps)
            runs.append(overlaps ? LevelShape.chains(files) : (files.isEmpty ? [] : [files]))
        }
        overlapped = ov
        self.runs = runs
    }

    /// Whether `b` starts after `a` ends (a sentinel largest key does not hold its user key).
    static func before(_ a: FileMeta, _ b: FileMeta) -> Bool {
        let c = InternalKey.compareUser(a.largest, b.smallestUser)
        return c < 0 || (c == 0 && a.largestIsSentinel)
    }

    /// Partitions `files` into the fewest chains of non-overlapping files, each sorted by key
    /// (greedy interval partitioning: in order of smallest key, each file joins the first
    /// chain whose last file ends before it starts).
    package static func chains(_ files: [FileMeta]) -> [[FileMeta]] {
        let sorted = files.sorted { InternalKey.compare($0.smallest, $1.smallest) < 0 }
        var chains: [[FileMeta]] = []
        for f in sorted {
            if let i = chains.firstIndex(where: { before($0[$0.count - 1], f) }) {
                chains[i].append(f)
            } else {
                chains.append([f])
            }
        }
        return chains
    }
}

extension Version {
    /// The sorted runs of `level` (see `LevelShape`).
    package func runs(_ level: Int) -> [[FileMeta]] { shape.runs[level] }
}

extension Engine {
    /// Point lookups in an overlapped level (tiering): of the entries for `key` visible at
    /// `target` in the files holding it, the newest (nil if none holds it); every covering
    /// range tombstone among those files is folded into `tomb`.
    func newestHolder(_ v: Version, _ level: Int, _ key: [UInt8], target: [UInt8], hash: UInt32,
                      snapshot: UInt64, tomb: inout UInt64) throws(LSMError) -> (key: [UInt8], value: [UInt8])? {
        var best: (key: [UInt8], value: [UInt8])? = nil, bestSeq: UInt64 = 0
        for f in v.levels[level] where f.contains(key) {
            let t = try tableCache.table(f)
            tomb = max(tomb, t.maxCoveringSeq(key, snapshot: snapshot))
            guard t.mayContain(hash: hash), let e = try t.get(target, userKey: key) else { continue }
            let seq = InternalKey.sequence(e.key)
            if best == nil || seq > bestSeq { best = e; bestSeq = seq }
        }
        return best
    }
}

extension LSMStore {
    /// Sorted runs per level of the current version (L0: its tables), for tests and stats.
    package func sortedRunsPerLevel() -> [Int] {
        let v = engine.state.withLock { $0.version }
        return v.levels.indices.map { v.runs($0).count }
    }
}
