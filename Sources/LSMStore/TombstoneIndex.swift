import LSMCommon

/// Range tombstones cut at every start and end into disjoint fragments, each listing the
/// sequences of the tombstones covering it (newest first). Answers "newest tombstone at or
/// below snapshot S covering key k" in O(log n) for any S, and lists the tombstones touching a
/// key range without visiting the others. Used by memtables (built incrementally) and tables
/// (built at open).
package struct TombstoneIndex: Sendable {
    /// Sorted, unique. Fragment i is [bounds[i], bounds[i+1]); the last one is unbounded and
    /// always empty. Keys before bounds[0] are not covered.
    private var bounds: [[UInt8]] = []
    private var seqs: [[UInt64]] = []

    package init() {}
    package init(_ tombstones: [RangeTombstone]) {
        for t in tombstones { insert(t) }
    }

    package var isEmpty: Bool { bounds.isEmpty }

    /// Index of the last bound <= key, or -1.
    private func floor(_ key: [UInt8]) -> Int {
        var lo = 0, hi = bounds.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if compareBytes(bounds[mid], key) <= 0 { lo = mid + 1 } else { hi = mid }
        }
        return lo - 1
    }

    /// Makes `key` a bound (splitting the fragment holding it); returns its index.
    private mutating func split(at key: [UInt8]) -> Int {
        let i = floor(key)
        if i >= 0 && bounds[i] == key { return i }
        bounds.insert(key, at: i + 1)
        seqs.insert(i >= 0 ? seqs[i] : [], at: i + 1)
        return i + 1
    }

    package mutating func insert(_ t: RangeTombstone) {
        guard compareBytes(t.start, t.end) < 0 else { return }
        let a = split(at: t.start)
        let b = split(at: t.end)
        for j in a..<b {
            // Keep newest first; tombstones usually arrive in sequence order, so this is a prepend.
            var k = 0
            while k < seqs[j].count && seqs[j][k] > t.seq { k += 1 }
            seqs[j].insert(t.seq, at: k)
        }
    }

    /// The newest sequence <= `snapshot` of a tombstone covering `key`, or 0.
    package func maxCoveringSeq(_ key: [UInt8], snapshot: UInt64) -> UInt64 {
        let i = floor(key)
        guard i >= 0 else { return 0 }
        for s in seqs[i] where s <= snapshot { return s }
        return 0
    }

    /// Tombstone pieces (one per fragment and sequence) that intersect [start, end).
    package func overlapping(_ start: [UInt8], _ end: [UInt8]?) -> [RangeTombstone] {
        var out: [RangeTombstone] = []
        var i = max(0, floor(start))
        while i + 1 < bounds.count {
            if let end, compareBytes(bounds[i], end) >= 0 { break }
            for s in seqs[i] { out.append(RangeTombstone(start: bounds[i], end: bounds[i + 1], seq: s)) }
            i += 1
        }
        return out
    }
}
