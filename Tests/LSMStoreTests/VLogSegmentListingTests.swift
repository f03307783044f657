import IMRDisk
import KVIMR
import LSMStore
import Testing

/// A new vLog segment's manifest edit is written out, not synced on its own (docs/format/vlog.md,
/// "Listed"): rotations cost no checkpoint, and whichever checkpoint comes next carries the
/// edit, so no crash leaves a durable pointer into an unlisted segment.
@Suite struct VLogSegmentListingTests {
    /// 8 KiB values into 64 KiB segments, memtable large enough that it never switches.
    func options() -> LSMOptions {
        var o = vlogOptions(threshold: 1024, segmentBytes: 64 << 10)
        o.memtableBytes = 1 << 20
        return o
    }

    func load(_ s: LSMStore, _ model: inout [[UInt8]: [UInt8]], count: Int, version: Int) throws {
        for i in 0..<count {
            let v = value(i, version: version, size: 8 << 10)
            try s.put(key(i), v)
            model[key(i)] = v
        }
    }

    /// Five rotations without a sync take no checkpoint; a sync then makes every value and
    /// every segment listing durable together: all of them read back after a crash.
    @Test func rotationsTakeNoCheckpointAndASyncCoversTheirListing() throws {
        let dev = try freshDevice(tracks: 800)
        let kvimr = try KVIMR(device: dev)
        let s = try LSMStore(kvimr: kvimr, options: options())
        var model: [[UInt8]: [UInt8]] = [:]
        try load(s, &model, count: 4, version: 0)   // the first segment exists
        let before = kvimr.stats().checkpoints
        try load(s, &model, count: 48, version: 1)  // 48 × 8 KiB: about six more segments
        let segments = kvimr.files().filter { $0.kind == .vlog }.count
        #expect(segments >= 6)
        #expect(kvimr.stats().checkpoints - before < UInt64(segments - 1),
                "a checkpoint per segment rotation: \(kvimr.stats().checkpoints - before) for \(segments) segments")
        try s.sync()
        for keep in [0, dev.unsyncedWriteCount] {
            let r = try openStore(dev.crashed(keepUnsynced: keep), options())
            #expect(same(try dump(r), sortedModel(model)), "crash keeping \(keep) unsynced writes")
            #expect(r.verify().isClean)
            try r.close()
        }
        try? s.close()
    }

    /// A checkpoint taken for another reason (here a sync of no file: the map changed) after
    /// rotations, then a crash keeping any part of what followed: the store recovers to a state
    /// since its last sync, and every pointer it holds reads back.
    @Test(arguments: [0, 1, 2, 3] as [Int])
    func foreignCheckpointThenCrash(part: Int) throws {
        let dev = try freshDevice(tracks: 800)
        let kvimr = try KVIMR(device: dev)
        let s = try LSMStore(kvimr: kvimr, options: options())
        var model: [[UInt8]: [UInt8]] = [:]
        try load(s, &model, count: 10, version: 0)
        try s.sync()
        let synced = model
        try load(s, &model, count: 40, version: 1)
        try kvimr.sync([])
        try load(s, &model, count: 20, version: 2)
        let image = dev.crashed(keepUnsynced: dev.unsyncedWriteCount * part / 3, tearLast: part == 2)
        let r = try openStore(image, options())
        let got = try dump(r)
        // Keys 0..<10 hold versions 0, 1 or 2 (a prefix of the puts); never a dangling pointer.
        #expect(got.count >= synced.count)
        for (k, v) in got {
            let i = Int(String(decoding: k.dropFirst(3), as: UTF8.self))!
            #expect((0...2).contains { value(i, version: $0, size: 8 << 10) == v }, "key \(i): unknown value")
        }
        #expect(r.verify().isClean)
        try r.close()
        try? s.close()
    }
}
