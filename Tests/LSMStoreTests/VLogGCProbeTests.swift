import IMRDisk
import KVIMR
import LSMStore
import Testing

/// The garbage probe (VLogGCProbe.swift): overwrites and deletes feed GC before a compaction
/// drops their pointers, and a measurement never claims a live record as garbage.
@Suite struct VLogGCProbeTests {
    /// Options under which nothing is ever compacted (L0 far below its trigger), so the counts
    /// see no overwrite at all.
    func uncompactedOptions(gcRatio: Double) -> LSMOptions {
        var o = gcOptions()
        o.gcGarbageRatio = gcRatio
        o.l0CompactionTrigger = 40
        return o
    }

    /// Was a gap: garbage counted only once a compaction drops a shadowed pointer, so with
    /// overwrites sitting in L0 tables over older ones background GC never started (the log
    /// stayed at 4x the live data). The probe measures it, and background GC brings the log
    /// within 1.5x of the live data by itself: at trigger 0.25 the measured garbage stays
    /// under a quarter of the log (1.33x), plus what is not measured yet (at most a segment
    /// or a sixteenth of the log since the last probe; here up to ~0.1x).
    @Test func backgroundGCFindsOverwritesTheCountsHaveNotReached() throws {
        let dev = try freshDevice()
        let s = try openStore(dev, uncompactedOptions(gcRatio: 0.25))
        var model: [[UInt8]: [UInt8]] = [:]
        for r in 0..<4 {
            for (k, v) in try overwrite(s, keys: 300, rounds: 1, from: r) { model[k] = v }
            try s.flush()
        }
        s.waitForBackgroundWork()
        let live = liveRecordBytes(model)
        let st = vlogStats(s) { Double($0.totalBytes) <= 1.5 * Double(live) }
        #expect(s.stats().compactions == 0, "a compaction ran: the counts may have seen the overwrites")
        #expect(s.vlogSegmentGarbage().values.allSatisfy { $0 == 0 }, "nothing was counted")
        #expect(s.vlogGarbageProbes > 0)
        #expect(st.gcSegmentsFreed > 0)
        #expect(Double(st.totalBytes) <= 1.5 * Double(live), "vLog \(st.totalBytes) bytes for \(live) live")
        try expectModel(s, model, "after background GC")
        try s.close()
        let again = try openStore(dev.reopened(), gcOptions())
        try expectModel(again, model, "reopened")
        try again.close()
    }

    /// Was a gap: a background pass takes at most four segments, and the next started only
    /// while the garbage ratio was still at the trigger, so the log stayed just under the
    /// trigger (2x the live data at 0.5) instead of going down to half of it. A pass that
    /// freed segments now lets the next go on below the trigger, down to half.
    @Test func drainingGoesOnBelowTheTriggerDownToHalf() {
        let segs = (1...10).map { n in
            SegmentUsage(number: UInt64(n), totalBytes: 1000, garbageBytes: n <= 8 ? 400 : 0)
        }   // 32% garbage
        #expect(VLogGCPolicy.backgroundVictims(segs, active: [], trigger: 0.5).isEmpty)
        #expect(VLogGCPolicy.backgroundVictims(segs, active: [], trigger: 0.5, draining: true) == [1, 2, 3])
        let clean = segs.map { s in SegmentUsage(number: s.number, totalBytes: 1000, garbageBytes: s.number <= 2 ? 400 : 0) }
        #expect(VLogGCPolicy.backgroundVictims(clean, active: [], trigger: 0.5, draining: true).isEmpty,
                "8% garbage: below half the trigger, draining stops")
    }

    /// Deleted keys (point deletes and a range) are garbage to the probe at once; a manual pass
    /// collects them without any compaction.
    @Test func manualGCCollectsDeletesTheCountsHaveNotReached() throws {
        let dev = try freshDevice()
        let s = try openStore(dev, uncompactedOptions(gcRatio: 0))
        var model = try overwrite(s, keys: 300, rounds: 1)
        try s.flush()
        for i in 0..<100 { try s.delete(key(i)); model[key(i)] = nil }
        try s.deleteRange(key(150), key(280))
        for i in 150..<280 { model[key(i)] = nil }
        try s.flush()
        s.waitForBackgroundWork()
        let before = s.stats().vlog
        let r = try s.collectGarbage()
        #expect(r.segmentsFreed > 0)
        let after = s.stats().vlog
        #expect(after.totalBytes < before.totalBytes)
        #expect(Double(after.totalBytes) <= 1.5 * Double(liveRecordBytes(model)) + Double(32 << 10),
                "vLog \(after.totalBytes) bytes for \(liveRecordBytes(model)) live")
        try expectModel(s, model, "after GC")
        try s.close()
    }

    /// A measurement equals the truth (every record read and checked against the tree) for each
    /// settled segment, under overwrites, deletes, a range delete and a snapshot, and stays a
    /// lower bound of it as later writes kill more records.
    @Test func measurementIsExactThenALowerBound() throws {
        let dev = try freshDevice()
        let s = try openStore(dev, uncompactedOptions(gcRatio: 0))
        var rng = RNG(seed: 11)
        for r in 0..<3 {
            for i in 0..<250 where rng.bool(60) { try s.put(key(i), value(i, version: r, size: 300 + rng.int(0...900))) }
            try s.flush()
        }
        let snap = try s.snapshot()
        for i in 0..<250 where rng.bool(20) { try s.delete(key(i)) }
        try s.deleteRange(key(40), key(70))
        for i in 0..<250 where rng.bool(30) { try s.put(key(i), value(i, version: 9, size: 500)) }
        try s.flush()
        s.waitForBackgroundWork()
        let measured = try s.probeVLogGarbage()
        #expect(!measured.isEmpty)
        for (n, g) in measured {
            let truth = try #require(try s.vlogSegmentLiveBytes(n))
            #expect(g == truth.total - truth.live, "segment \(n): measured \(g), truth \(truth.total - truth.live)")
        }
        _ = snap
        // Later writes: the held measurements stay at or below the truth.
        for i in 0..<250 where rng.bool(50) { try s.put(key(i), value(i, version: 10, size: 700)) }
        try s.flush()
        s.waitForBackgroundWork()
        for (n, g) in measured {
            guard let truth = try s.vlogSegmentLiveBytes(n) else { continue }
            #expect(g <= truth.total - truth.live)
        }
        try s.close()
    }
}
