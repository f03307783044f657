import LSMCommon

/// A range delete: every version older than `seq` of every user key in [start, end) is dead.
package struct RangeTombstone: Sendable, Equatable {
    package var start: [UInt8]
    package var end: [UInt8]
    package var seq: UInt64
    package init(start: [UInt8], end: [UInt8], seq: UInt64) { self.start = start; self.end = end; self.seq = seq }

    package func covers(_ key: [UInt8]) -> Bool { compareBytes(start, key) <= 0 && compareBytes(key, end) < 0 }

    /// Internal key under which the tombstone is stored in a range-del block and that bounds a
    /// table from below: (start, seq, rangeDelete).
    package var startKey: [UInt8] { InternalKey.make(start, seq, ValueKind.rangeDelete.rawValue) }
    /// The exclusive upper bound as an internal key: (end, maxSequence, 0xFF) sorts before every
    /// real entry of `end`, so a table ending with it does not overlap one starting at `end`.
    package var endSentinel: [UInt8] { InternalKey.make(end, LSMFormat.maxSequence, LSMFormat.seekKind) }

    /// The part inside [lo, hi) (nil bounds: unbounded), or nil if empty.
    package func clipped(_ lo: [UInt8]?, _ hi: [UInt8]?) -> RangeTombstone? {
        var t = self
        if let lo, compareBytes(t.start, lo) < 0 { t.start = lo }
        if let hi, compareBytes(t.end, hi) > 0 { t.end = hi }
        return compareBytes(t.start, t.end) < 0 ? t : nil
    }
}

extension [RangeTombstone] {
    /// The newest sequence <= `snapshot` of a tombstone covering `key`, or 0.
    package func maxCoveringSeq(_ key: [UInt8], snapshot: UInt64) -> UInt64 {
        var best: UInt64 = 0
        for t in self where t.seq <= snapshot && t.seq > best && t.covers(key) { best = t.seq }
        return best
    }
}

/// Tombstones cut into sorted, disjoint fragments, each with the newest covering sequence
/// (<= the snapshot): answers "which sequence deletes this key" in O(log n).
package struct TombstoneFragments {
    private var bounds: [[UInt8]] = []   // fragment i is [bounds[i], bounds[i+1])
    private var seqs: [UInt64] = []      // seqs[i] for fragment i; 0 = not covered

    package init(_ tombstones: [RangeTombstone], snapshot: UInt64) {
        let live = tombstones.filter { $0.seq <= snapshot }
        guard !live.isEmpty else { return }
        var keys = live.flatMap { [$0.start, $0.end] }
        keys.sort { compareBytes($0, $1) < 0 }
        var uniq: [[UInt8]] = []
        for k in keys where uniq.last != k { uniq.append(k) }
        bounds = uniq
        seqs = Array(repeating: 0, count: max(0, uniq.count - 1))
        for t in live {
            var i = index(of: t.start)
            while i < seqs.count && compareBytes(bounds[i], t.end) < 0 {
                if t.seq > seqs[i] { seqs[i] = t.seq }
                i += 1
            }
        }
    }

    package var isEmpty: Bool { seqs.isEmpty }

    /// Index of the last bound <= key (or -1).
    private func index(of key: [UInt8]) -> Int {
        var lo = 0, hi = bounds.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if compareBytes(bounds[mid], key) <= 0 { lo = mid + 1 } else { hi = mid }
        }
        return lo - 1
    }

    /// The newest tombstone sequence covering `key`, or 0.
    package func coveringSeq(_ key: [UInt8]) -> UInt64 {
        let i = index(of: key)
        return i >= 0 && i < seqs.count ? seqs[i] : 0
    }

    /// The fragments as tombstones (disjoint; adjacent fragments are not merged).
    package var tombstones: [RangeTombstone] {
        seqs.indices.compactMap { i in
            seqs[i] == 0 ? nil : RangeTombstone(start: bounds[i], end: bounds[i + 1], seq: seqs[i])
        }
    }
}
