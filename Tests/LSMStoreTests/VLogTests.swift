import IMRDisk
import KVIMR
import LSMStore
import Testing

/// Options with a value log: values of at least `threshold` bytes are separated; small
/// segments so stores have several.
func vlogOptions(threshold: Int = 512, segmentBytes: Int = 256 << 10) -> LSMOptions {
    var o = smallOptions()
    o.valueLogThreshold = threshold
    o.valueLogSegmentBytes = segmentBytes
    return o
}

/// The drive `dev` left (closed) with one bit of byte `offset` of KVIMR file `file` flipped
/// on the drive itself, under KVIMR.
func flipBit(_ closed: MemoryTrackDevice, file: UInt64, at offset: UInt64) throws -> MemoryTrackDevice {
    try #require(try closed.flippingByte(ofFile: file, at: offset, mask: 0x10), "offset \(offset) lies outside file \(file)")
}

@Suite struct VLogTests {
    /// Values on both sides of several thresholds (and the value log off) read back the same,
    /// before and after flushes, compactions and a reopen; only separated values count as
    /// value-log writes.
    @Test(arguments: [0, 100, 1000, Int.max])
    func roundTripAcrossThresholds(threshold: Int) throws {
        var rng = RNG(seed: UInt64(truncatingIfNeeded: threshold) &+ 11)
        let dev = try freshDevice(tracks: 800)
        let o = vlogOptions(threshold: threshold)
        var s = try openStore(dev, o)
        var model: [[UInt8]: [UInt8]] = [:]
        var separated = 0
        for step in 0..<700 {
            let i = rng.int(0...250)
            if rng.bool(85) {
                let v = value(i, version: step, size: rng.int(0...2500))
                if v.count >= threshold { separated += 1 }
                try s.put(key(i), v); model[key(i)] = v
            } else {
                try s.delete(key(i)); model[key(i)] = nil
            }
        }
        for i in 0...250 { #expect(try s.get(key(i)) == model[key(i)], "key \(i)") }
        #expect(same(try dump(s), sortedModel(model)))
        let st = s.stats().vlog
        #expect(st.valuesWritten == UInt64(separated))
        if threshold == .max { #expect(st.segments == 0) } else { #expect(st.segments >= 1); #expect(st.totalBytes > 0) }
        try s.close()
        s = try openStore(dev.reopened(), o)
        for i in 0...250 { #expect(try s.get(key(i)) == model[key(i)], "key \(i) after reopen") }
        #expect(same(try dump(s), sortedModel(model)))
        #expect(s.verify().isClean)
        try s.close()
    }

    /// Multi-megabyte values, synced, read back after a crash and through a scan.
    @Test func largeValues() throws {
        let dev = try freshDevice(tracks: 1200)
        var o = vlogOptions(threshold: 4096, segmentBytes: 4 << 20)
        o.memtableBytes = 64 << 10
        let s = try openStore(dev, o)
        var rng = RNG(seed: 9)
        var model: [[UInt8]: [UInt8]] = [:]
        for (i, size) in [3 << 20, 5000, 1 << 20, (2 << 20) + 17, 64 << 10].enumerated() {
            let v = rng.bytes(size)
            try s.put(key(i), v, sync: i % 2 == 0)
            model[key(i)] = v
        }
        try s.sync()
        let r = try openStore(dev.crashed(), o)
        for (k, v) in model { #expect(try r.get(k) == v) }
        #expect(same(try dump(r), sortedModel(model)))
        #expect(r.stats().vlog.segments >= 2, "4 MiB segments: the 3 + 2 MiB values need two")
        try r.close()
        try? s.close()
    }

    /// Scans over separated and inline values in every mix: whole range, windows, early stop,
    /// a snapshot taken before overwrites; pointers in memtables and tables alike.
    @Test func scansResolvePointers() throws {
        var rng = RNG(seed: 4)
        let dev = try freshDevice(tracks: 800)
        let s = try openStore(dev, vlogOptions(threshold: 300))
        var model: [[UInt8]: [UInt8]] = [:]
        for step in 0..<900 {
            let i = rng.int(0...400)
            let v = value(i, version: step, size: rng.bool(50) ? rng.int(300...1500) : rng.int(0...299))
            try s.put(key(i), v); model[key(i)] = v
            if step == 500 { try s.flush() }
        }
        #expect(same(try dump(s), sortedModel(model)))
        for _ in 0..<30 {
            let a = rng.int(0...400), b = a + rng.int(0...120)
            #expect(same(try dump(s, from: key(a), to: key(b)), sortedModel(model, from: key(a), to: key(b))))
        }
        var seen = 0
        try s.scan(from: key(0), to: nil) { _, _ in seen += 1; return seen < 37 }
        #expect(seen == 37)
        let snap = try s.snapshot()
        let before = model
        for i in 0...400 where rng.bool(30) {
            let v = value(i, version: 9999, size: 800)
            try s.put(key(i), v); model[key(i)] = v
        }
        try s.flush()
        s.waitForBackgroundWork()
        #expect(same(try dump(snap), sortedModel(before)))
        #expect(same(try dump(s), sortedModel(model)))
        try s.close()
    }

    /// Segments are sealed past their size; every one the manifest lists survives a reopen and
    /// an unlisted vLog file (a crash leftover) is deleted at open.
    @Test func segmentsRotateAndOrphansGo() throws {
        let dev = try freshDevice(tracks: 800)
        let o = vlogOptions(threshold: 100, segmentBytes: 64 << 10)
        var s = try openStore(dev, o)
        for i in 0..<300 { try s.put(key(i), value(i, version: 1, size: 1000)) }
        let segments = s.valueLogSegments
        #expect(segments.count >= 4)
        let orphan = try s.kvimr.create(kind: .vlog, level: 0)
        try s.kvimr.append(orphan, [1, 2, 3])
        try s.close()
        s = try openStore(dev.reopened(), o)
        #expect(s.valueLogSegments == segments)
        #expect(!s.kvimr.files().contains { $0.number == orphan })
        let vlogFiles = Set(s.kvimr.files().filter { $0.kind == .vlog }.map(\.number))
        #expect(vlogFiles == Set(segments))
        // Appends after a reopen go to a new segment, never after the old head's tail.
        try s.put(key(999), value(999, version: 1, size: 1000))
        let p = try #require(try s.valuePointer(key(999)))
        #expect(!segments.contains(p.segment))
        #expect(p.offset == 0)
        for i in 0..<300 { #expect(try s.get(key(i)) == value(i, version: 1, size: 1000)) }
        try s.close()
    }

    /// A flipped bit in a record: reading that key fails with `.corrupt` (counted), other keys
    /// still read, a scan over it fails; never wrong bytes.
    @Test func flippedBitIsAnError() throws {
        let dev = try freshDevice()
        let o = vlogOptions(threshold: 200)
        var s = try openStore(dev, o)
        for i in 0..<40 { try s.put(key(i), value(i, version: 1, size: 900)) }
        let p = try #require(try s.valuePointer(key(17)))
        try s.close()
        let damaged = try flipBit(dev, file: p.segment, at: p.offset + UInt64(p.length) - 5) // in the value
        s = try openStore(damaged, o)
        #expect(lsmError { _ = try s.get(key(17)) }?.kind == .corrupt)
        for i in 0..<40 where i != 17 { #expect(try s.get(key(i)) == value(i, version: 1, size: 900)) }
        #expect(lsmError { _ = try dump(s) }?.kind == .corrupt)
        #expect(s.stats().vlog.checksumErrors >= 2)
        try s.close()
    }

    /// Values written one after another lie together in the log and a scan reads them in
    /// spans: every value comes back; a flipped bit in one record of a span fails the scan.
    @Test func adjacentRecordsScanTogether() throws {
        let dev = try freshDevice()
        let o = vlogOptions(threshold: 200, segmentBytes: 1 << 20)
        var s = try openStore(dev, o)
        var batch = WriteBatch()
        for i in 0..<120 { batch.put(key(i), value(i, version: 1, size: 300 + i * 7)) }
        try s.write(batch)
        let got = try dump(s)
        #expect(got.count == 120)
        for (i, kv) in got.enumerated() { #expect(kv.0 == key(i) && kv.1 == value(i, version: 1, size: 300 + i * 7)) }
        var seen = 0
        try s.scan(from: key(30), to: key(90)) { k, v in
            #expect(v == value(30 + seen, version: 1, size: 300 + (30 + seen) * 7), "key \(k)")
            seen += 1
            return true
        }
        #expect(seen == 60)
        let p = try #require(try s.valuePointer(key(61)))
        try s.close()
        let damaged = try flipBit(dev, file: p.segment, at: p.offset + 40)
        s = try openStore(damaged, o)
        #expect(lsmError { _ = try dump(s, from: key(50), to: key(70)) }?.kind == .corrupt)
        #expect(try dump(s, from: key(0), to: key(40)).count == 40)
        try s.close()
    }

    /// `scanSizes` reports every live value's size, separated or not, without reading the log
    /// (a damaged record does not disturb it), honouring deletes and range deletes.
    @Test func scanSizesReadsNoValues() throws {
        let dev = try freshDevice()
        let o = vlogOptions(threshold: 500)
        var s = try openStore(dev, o)
        var sizes: [[UInt8]: Int] = [:]
        for i in 0..<80 { let n = (i * 37) % 1200; try s.put(key(i), value(i, version: 1, size: n)); sizes[key(i)] = max(n, value(i, version: 1, size: n).count) }
        try s.delete(key(3)); sizes[key(3)] = nil
        try s.deleteRange(key(10), key(20)); for i in 10..<20 { sizes[key(i)] = nil }
        let p = try #require(try s.valuePointer(key(46)))
        try s.close()
        s = try openStore(try flipBit(dev, file: p.segment, at: p.offset + UInt64(p.length) - 3), o)
        var got: [[UInt8]: Int] = [:]
        try s.scanSizes(from: [], to: nil) { k, n in got[k] = n; return true }
        #expect(got == sizes)
        var seen = 0
        try s.scanSizes(from: key(30), to: nil) { _, _ in seen += 1; return seen < 5 }
        #expect(seen == 5)
        try s.close()
    }

    /// A header bit (the key length) flipped: lengths no longer match the pointer → `.corrupt`.
    @Test func flippedHeaderBitIsAnError() throws {
        let dev = try freshDevice()
        let o = vlogOptions(threshold: 200)
        var s = try openStore(dev, o)
        for i in 0..<10 { try s.put(key(i), value(i, version: 1, size: 700)) }
        let p = try #require(try s.valuePointer(key(3)))
        try s.close()
        let damaged = try flipBit(dev, file: p.segment, at: p.offset + 4)
        s = try openStore(damaged, o)
        #expect(lsmError { _ = try s.get(key(3)) }?.kind == .corrupt)
        #expect(try s.get(key(4)) == value(4, version: 1, size: 700))
        try s.close()
    }

    /// A pointer to another key's record, or into a segment the store does not list, is an
    /// error — the record's key is checked, not trusted.
    @Test func pointerToAnotherKeyIsAnError() throws {
        let s = try openStore(try freshDevice(), vlogOptions(threshold: 200))
        try s.put(key(1), value(1, version: 1, size: 500))
        try s.put(key(2), value(2, version: 1, size: 500))
        let p1 = try #require(try s.valuePointer(key(1)))
        try s.putPointer(key(2), p1)
        #expect(lsmError { _ = try s.get(key(2)) }?.kind == .corrupt)
        #expect(lsmError { _ = try dump(s) }?.kind == .corrupt)
        var bogus = p1
        bogus.segment = 999_999
        try s.putPointer(key(3), bogus)
        #expect(lsmError { _ = try s.get(key(3)) }?.kind == .corrupt)
        var short = p1
        short.length -= 1
        try s.putPointer(key(1), short)
        #expect(lsmError { _ = try s.get(key(1)) }?.kind == .corrupt)
        #expect(s.stats().vlog.checksumErrors >= 4)
        try s.close()
    }

    /// The record codec and the pointer encoding round-trip and reject damage.
    @Test func formatRoundTrip() throws {
        let rec = VLogFormat.encodeRecord(key: [1, 2, 3], value: Array(repeating: 7, count: 100))
        #expect(rec.count == VLogFormat.headerSize + 103)
        let decoded = try VLogFormat.decodeRecord(rec, expectedKey: [1, 2, 3]).get()
        #expect(decoded.key == [1, 2, 3] && decoded.value == Array(repeating: 7, count: 100))
        #expect(throws: VLogFormat.Damage.keyMismatch) { try VLogFormat.decodeRecord(rec, expectedKey: [1, 2, 4]).get() }
        for i in rec.indices {
            var bad = rec
            bad[i] ^= 1
            #expect((try? VLogFormat.decodeRecord(bad).get()) == nil, "flip at \(i) undetected")
        }
        #expect(throws: VLogFormat.Damage.truncated) { try VLogFormat.decodeRecord(Array(rec.dropLast())).get() }
        let p = ValuePointer(segment: 1 << 40, offset: 123_456_789, length: 70_000)
        #expect(ValuePointer.decode(p.encode()) == p)
        #expect(ValuePointer.decode(p.encode() + [0]) == nil)
        #expect(ValuePointer.decode(Array(p.encode().dropLast())) == nil)
        #expect(ValuePointer.decode(ValuePointer(segment: 1, offset: 0, length: 3).encode()) == nil)
    }
}
