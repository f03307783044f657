/// Manual GC's second look. Counted garbage lags behind the truth: a deleted file's pointers
/// count only once a compaction drops them under the range tombstone, an overwritten value's
/// only once a compaction meets both versions. A manual pass therefore also measures the
/// segments the counts did not pick — every record checked against the tree, nothing written —
/// and collects those whose measured garbage ratio is at least `max(minRatio, probeFloor)`.
/// (Background GC goes by the counts alone: it must not read the whole log on its own.)
extension Engine {
    /// Segments among `candidates` (oldest first) worth collecting by measurement, at most
    /// `budget` of them.
    func probeVictims(_ candidates: [UInt64], minRatio: Double, budget: Int) throws(LSMError) -> [UInt64] {
        var out: [UInt64] = []
        let floor = max(minRatio, GCTuning.probeFloor)
        for n in candidates where out.count < budget {
            if state.withLock({ $0.closing || $0.closed }) { break }
            guard let (live, total) = try measureLive(n), total > live else { continue }
            if total == 0 || Double(total - live) / Double(total) >= floor { out.append(n) }
        }
        return out
    }

    /// The bytes of `segment`'s records the tree still points to, and the segment's size; nil
    /// when the segment cannot be read through (damage: `collectSegment` deals with it).
    func measureLive(_ segment: UInt64) throws(LSMError) -> (live: UInt64, total: UInt64)? {
        guard kvimr.size(segment) != nil else { return nil }
        var reader = try VLogSegmentReader(kvimr: kvimr, segment: segment)
        let v = try view()
        var live: UInt64 = 0
        do throws(LSMError) {
            while let rec = try reader.next() {
                if try isLive(rec, in: v) { live += UInt64(rec.pointer.length) }
            }
        } catch where error.kind == .corrupt {
            return nil
        }
        return (live, reader.size)
    }
}
