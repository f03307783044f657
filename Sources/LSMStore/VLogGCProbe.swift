import LSMCommon

/// Garbage the counts have not reached yet. Counted garbage (`GarbageTally`) lags behind the
/// truth: an overwritten value's pointer is dropped, hence counted, only once a compaction
/// meets both versions (values that L0 tables shadow in L1 stay "live" until L0 is compacted,
/// those a level shadows below it until that level is), a deleted file's only once the range
/// tombstone reaches them. So GC would wait, or never start, while the log holds twice the
/// live data.
///
/// The garbage probe measures instead of counting: one walk of the tree's newest visible
/// entries (no value-log read: a pointer carries its record's length) sums the live record
/// bytes per segment; a segment's garbage is its size less that. Only segments no write can
/// still reach are measured (not the head, not a sealed segment awaiting its sync, not one a
/// live WAL may point into: `segmentUsage`): every pointer into them is in the tree, and their
/// size is final. A record once dead stays dead (nothing makes an older pointer the newest
/// again in a running store), so a measurement stays a lower bound of the segment's garbage
/// from then on: GC uses the larger of it and the count. Measurements live in memory only.
///
/// Background GC probes when the log has grown by a sixteenth of its size (at least a segment)
/// since the last probe (a due probe starts a pass by itself and runs before the pass picks its
/// victims, whether or not the counts alone pick some): the walk reads the tree (pointers,
/// a few dozen bytes per value) once per sixteenth of the log written, and garbage not yet
/// measured stays under that sixteenth. A manual pass probes first
/// and collects measured segments whose garbage ratio is at least `max(minRatio, probeFloor)`;
/// a segment the walk could not measure is read record by record (`probeVictims`).
extension Engine {
    /// Whether background GC should measure before choosing (see above).
    func garbageProbeDue(totalBytes: UInt64) -> Bool {
        let appended = vlog.valueBytesWritten.value &+ gc.bytesMoved.value
        let last = gc.state.withLock { $0.probedAt }
        return appended &- last >= max(UInt64(max(options.valueLogSegmentBytes, 1)), totalBytes / 16)
    }

    /// Walks the tree and records each settled segment's garbage (`VLogCollector.State.measured`).
    /// Stops early (recording nothing) when the store closes.
    func probeGarbage() throws(LSMError) {
        let appended = vlog.valueBytesWritten.value &+ gc.bytesMoved.value
        // Settled segments first, then the view: a view taken later holds every pointer into them.
        let (usage, active) = segmentUsage(measured: false)
        let settled = usage.filter { !active.contains($0.number) }
        if settled.isEmpty {
            gc.state.withLock { $0.probedAt = appended }
            return
        }
        let v = try view()
        var live: [UInt64: UInt64] = [:]
        var visited = 0
        var stopped = false
        _ = try forEachLiveEntry(v, from: [], to: nil) { (_, kind, stored) throws(LSMError) -> Bool in
            if kind == ValueKind.valuePointer.rawValue, let p = ValuePointer.decode(stored) {
                live[p.segment, default: 0] &+= UInt64(p.length)
            }
            visited += 1
            if visited % 4096 == 0, state.withLock({ $0.closing || $0.closed }) { stopped = true; return false }
            return true
        }
        if stopped { throw LSMError(.closed, "store is closing: garbage probe stopped") }
        gc.probes.bump()
        gc.state.withLock { s in
            var measured: [UInt64: UInt64] = [:]
            let listed = Set(usage.map(\.number))
            for (n, g) in s.measured where listed.contains(n) { measured[n] = g }
            for u in settled {
                let g = u.totalBytes - min(u.totalBytes, live[u.number] ?? 0)
                measured[u.number] = max(measured[u.number] ?? 0, g)
            }
            s.measured = measured
            s.probedAt = appended
        }
    }

    /// Manual GC's picks by measurement among `usage` (the listing `taken`'s active segments
    /// were read with: a segment started since may be the head and must not be picked):
    /// measured segments not already `taken` whose garbage ratio is at least
    /// `max(minRatio, probeFloor)`, most garbage first, at most `budget`; then, among segments
    /// the probe did not measure, those `probeVictims` finds.
    func measuredVictims(_ usage: [SegmentUsage], taken: Set<UInt64>, minRatio: Double,
                         budget: Int) throws(LSMError) -> [UInt64] {
        guard budget > 0 else { return [] }
        let floor = max(minRatio, GCTuning.probeFloor)
        let measured = gc.state.withLock { $0.measured }
        var candidates: [SegmentUsage] = []
        for u in usage where !taken.contains(u.number) {
            guard let m = measured[u.number] else { continue }
            var c = u
            c.garbageBytes = max(u.garbageBytes, m)
            if c.garbageBytes > 0 && c.garbageRatio >= floor { candidates.append(c) }
        }
        candidates.sort { a, b in a.garbageRatio != b.garbageRatio ? a.garbageRatio > b.garbageRatio : a.number < b.number }
        let picked = candidates.prefix(budget).map(\.number)
        let unmeasured = usage.map(\.number).filter { !taken.contains($0) && measured[$0] == nil }
        return picked + (try probeVictims(unmeasured, minRatio: minRatio, budget: budget - picked.count))
    }

    /// Segments among `candidates` (oldest first) worth collecting by reading them: every
    /// record checked against the tree, nothing written; those whose measured garbage ratio
    /// is at least `max(minRatio, probeFloor)`, at most `budget` of them.
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
