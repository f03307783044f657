import Glibc
import IMRDisk
import KVIMR
import LSMFS
import LSMStore
import Testing

/// `lsmfs gc`'s pieces below the CLI: the ioctl wire format (GCControl) and
/// FileSystem.collectGarbage on the real stack (MemoryTrackDevice → KVIMR → LSMStore).
@Suite struct GCControlTests {
    @Test func commandIsARestrictedReadWriteIoctlOf256Bytes() {
        let c = GCControl.command
        #expect(c >> 30 == 3)                     // _IOC_READ | _IOC_WRITE
        #expect(Int((c >> 16) & 0x3FFF) == GCControl.size)
        #expect((c >> 8) & 0xFF == UInt32(UInt8(ascii: "L")))
        #expect(c == 0xC100_4C47)
    }

    @Test func requestRoundTripsAndBadRequestsAreRefused() {
        let r = GCControl.Request(minGarbageRatio: 0.25, maxSegments: 3)
        let b = r.encode()
        #expect(b.count == GCControl.size)
        #expect(b.withUnsafeBytes { GCControl.Request.decode($0) } == r)
        let unlimited = GCControl.Request()
        #expect(unlimited.encode().withUnsafeBytes { GCControl.Request.decode($0) } == unlimited)
        var bad = b
        bad[0] ^= 0xFF                            // magic
        #expect(bad.withUnsafeBytes { GCControl.Request.decode($0) } == nil)
        bad = GCControl.Request(minGarbageRatio: 1.5).encode()
        #expect(bad.withUnsafeBytes { GCControl.Request.decode($0) } == nil)
        bad = GCControl.Request(minGarbageRatio: .nan).encode()
        #expect(bad.withUnsafeBytes { GCControl.Request.decode($0) } == nil)
        #expect(Array(b.prefix(10)).withUnsafeBytes { GCControl.Request.decode($0) } == nil)
    }

    @Test func replyRoundTripsWithItsMessageTruncated() throws {
        var r = GCControl.Reply()
        r.status = EROFS
        r.message = String(repeating: "é", count: 200)   // 400 bytes of UTF-8
        r.report.result.segmentsFreed = 7
        r.report.result.bytesMoved = 1 << 33
        r.report.result.bytesFreed = 123_456_789
        r.report.before.segments = 9; r.report.before.totalBytes = 1 << 30; r.report.before.garbageBytes = 1 << 29
        r.report.after.segments = 2; r.report.after.totalBytes = 1 << 28; r.report.after.garbageBytes = 5
        r.report.micros = 42
        r.report.before.gcSegmentsFreed = 3; r.report.after.gcSegmentsFreed = 11
        let b = r.encode()
        #expect(b.count == GCControl.size)
        let d = try #require(b.withUnsafeBytes { GCControl.Reply.decode($0) })
        #expect(d.status == EROFS)
        #expect(d.message.utf8.count <= 127 && r.message.hasPrefix(d.message.prefix(60)))
        #expect(d.report.result.segmentsFreed == 7 && d.report.result.bytesMoved == 1 << 33
                && d.report.result.bytesFreed == 123_456_789)
        #expect(d.report.before.segments == 9 && d.report.before.totalBytes == 1 << 30
                && d.report.before.garbageBytes == 1 << 29)
        #expect(d.report.after.segments == 2 && d.report.after.totalBytes == 1 << 28 && d.report.after.garbageBytes == 5)
        #expect(d.report.micros == 42)
        #expect(d.report.before.gcSegmentsFreed == 3 && d.report.after.gcSegmentsFreed == 11)
    }

    /// A store with small memtables and segments and no background GC, so a few MiB of
    /// overwrites make sealed segments full of garbage that only a manual GC collects.
    static func smallLogRig() throws -> Rig {
        let dev = MemoryTrackDevice(trackCount: 3000)
        try KVIMR.format(device: dev)
        var o = LSMOptions()
        o.memtableBytes = 64 << 10
        o.valueLogSegmentBytes = 512 << 10
        o.gcGarbageRatio = 2   // > 1: background GC off
        let store = try LSMStore(kvimr: try KVIMR(device: dev), options: o)
        try FileSystem.format(store: store)
        return try Rig.open(dev, store: store)
    }

    @Test func collectGarbageFreesOverwrittenSegmentsAndKeepsContent() throws {
        let rig = try GCControlTests.smallLogRig()
        let fs = rig.fs
        var content = pattern(3 << 20, seed: 1)
        let ino = try fs.createFile(root, "big", content)
        for round in 2...4 {   // overwrite the whole file in place, three times
            content = pattern(3 << 20, seed: UInt64(round))
            let fh = try fs.open(ino, flags: O_RDWR).fh
            _ = try fs.writeAll(fh, 0, content)
            try fs.release(fh)
        }
        rig.store.waitForBackgroundWork()
        let before = fs.vlogStats
        #expect(before.valueBytesWritten >= 4 * (3 << 20), "chunks did not go through the value log")
        let report = try fs.collectGarbage()
        #expect(report.result.segmentsFreed >= 1)
        #expect(report.result.bytesFreed > 0)
        #expect(report.after.totalBytes < report.before.totalBytes)
        #expect(report.after.gcRuns > before.gcRuns)
        #expect(try fs.readAll(ino) == content)
        // A ratio no segment reaches: nothing to do, nothing lost.
        let none = try fs.collectGarbage(minGarbageRatio: 1, maxSegments: 1)
        #expect(none.result.segmentsFreed <= 1)
        let again = try rig.remount()
        #expect(try again.fs.readAll(ino) == content)
        try again.fs.shutdown()
    }

    @Test func readOnlyAndBadArgumentsAreRefused() throws {
        let rig = try Rig.fresh()
        #expect(throws: LSMError.self) { try rig.fs.collectGarbage(minGarbageRatio: -1) }
        #expect(throws: LSMError.self) { try rig.fs.collectGarbage(maxSegments: 0) }
        let ro = try rig.remount(readOnly: true)
        do {
            _ = try ro.fs.collectGarbage()
            Issue.record("GC on a read-only filesystem succeeded")
        } catch {
            #expect(error.kind == .readOnly)
        }
        let reply = ro.fs.serveGCRequest(GCControl.Request())
        #expect(reply.status == EROFS && !reply.message.isEmpty)
        try ro.fs.shutdown()
    }

    @Test func statsReportHasAValueLogSection() throws {
        let fs = try Rig.fresh().fs
        _ = try fs.createFile(root, "f", pattern(1 << 20, seed: 3))
        let text = fs.statsText(), json = fs.statsJSON()
        for word in ["vlog:", "segments", "live_bytes", "garbage_bytes", "garbage_ratio", "gc_runs",
                     "gc_bytes_moved", "gc_segments_freed", "checksum_errors", "values_written"] {
            #expect(text.contains(word), "text report misses \(word)")
        }
        #expect(json.contains("\"vlog\": {") && json.contains("\"gc_bytes_freed\""))
    }
}
