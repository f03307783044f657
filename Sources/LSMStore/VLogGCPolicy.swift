/// One value-log segment as the GC policy sees it.
package struct SegmentUsage: Sendable, Equatable {
    package var number: UInt64
    package var totalBytes: UInt64
    package var garbageBytes: UInt64
    /// A GC pass started on it and did not finish (crash, full drive, close).
    package var interrupted: Bool = false

    package init(number: UInt64, totalBytes: UInt64, garbageBytes: UInt64, interrupted: Bool = false) {
        self.number = number; self.totalBytes = totalBytes; self.garbageBytes = garbageBytes; self.interrupted = interrupted
    }

    /// Garbage / total, in [0, 1]. Counted garbage can pass the size the drive reports only
    /// through a pass that moved records and then stopped; an empty segment is all garbage.
    package var garbageRatio: Double {
        totalBytes == 0 ? 1 : min(1, Double(garbageBytes) / Double(totalBytes))
    }
    package var liveBytes: UInt64 { totalBytes - min(totalBytes, garbageBytes) }
}

/// Which segments garbage collection takes, as pure decisions (mini-lsm style, like
/// `LeveledPolicy`). `active` segments — the head writes append to, and sealed ones whose
/// tail is not yet synced — are never victims.
package enum VLogGCPolicy {
    /// Victims for a GC call: segments an interrupted pass left behind first, then those with
    /// a garbage ratio of at least `minRatio` and some garbage, most garbage (by ratio) first;
    /// at most `maxSegments`. A segment with no garbage counted is never rewritten: moving it
    /// frees nothing.
    package static func victims(_ segments: [SegmentUsage], active: Set<UInt64>, minRatio: Double,
                                maxSegments: Int) -> [UInt64] {
        guard maxSegments > 0 else { return [] }
        let eligible = segments.filter { s in
            !active.contains(s.number) && (s.interrupted || s.totalBytes == 0 || (s.garbageBytes > 0 && s.garbageRatio >= minRatio))
        }
        let ordered = eligible.sorted { a, b in
            if a.interrupted != b.interrupted { return a.interrupted }
            if a.garbageRatio != b.garbageRatio { return a.garbageRatio > b.garbageRatio }
            return a.number < b.number // the oldest first on a tie
        }
        return ordered.prefix(maxSegments).map(\.number)
    }

    /// Garbage / total over every segment.
    package static func overallRatio(_ segments: [SegmentUsage]) -> Double {
        let total = segments.reduce(UInt64(0)) { $0 + $1.totalBytes }
        let garbage = segments.reduce(UInt64(0)) { $0 + min($1.totalBytes, $1.garbageBytes) }
        return total == 0 ? 0 : Double(garbage) / Double(total)
    }

    /// What background GC does now: first any segment an interrupted pass left; then, once
    /// garbage / total passes `trigger`, victims most garbage first until the projected ratio
    /// falls to `trigger / 2` (hysteresis: the space stays within 1 / (1 - trigger / 2) of
    /// the live data once GC has run, 1.33x at the default 0.5). A pass takes at most
    /// `maxSegments`; `draining` (the previous pass freed some and GC has not yet reached
    /// `trigger / 2`) lets the next one go on below the trigger, so the hysteresis holds across
    /// passes. Segments with less than `floorRatio` garbage are not worth their rewrite and are
    /// left alone. An interrupted victim that cannot finish (no room for its live records)
    /// never hides the others.
    package static func backgroundVictims(_ segments: [SegmentUsage], active: Set<UInt64>, trigger: Double,
                                          floorRatio: Double = 0.1, maxSegments: Int = 4,
                                          draining: Bool = false) -> [UInt64] {
        var out = victims(segments.filter(\.interrupted), active: active, minRatio: 0, maxSegments: maxSegments)
        guard trigger > 0, overallRatio(segments) >= (draining ? trigger / 2 : trigger) else { return out }
        let usage = Dictionary(segments.map { ($0.number, $0) }, uniquingKeysWith: { a, _ in a })
        func garbage(_ n: UInt64) -> UInt64 { min(usage[n]!.totalBytes, usage[n]!.garbageBytes) }
        // Removing a victim takes its garbage off both sums: its live bytes move to the head.
        var total = segments.reduce(UInt64(0)) { $0 + $1.totalBytes } - out.reduce(0) { $0 + garbage($1) }
        var left = segments.reduce(UInt64(0)) { $0 + min($1.totalBytes, $1.garbageBytes) } - out.reduce(0) { $0 + garbage($1) }
        let target = trigger / 2
        for n in victims(segments, active: active, minRatio: min(floorRatio, target), maxSegments: .max) where !out.contains(n) {
            guard out.count < maxSegments, total > 0, Double(left) / Double(total) > target else { break }
            out.append(n)
            total -= garbage(n)
            left -= garbage(n)
        }
        return out
    }
}
