import IMRDisk
import KVIMR
import LSMStore
import LSMCommon
import Testing

/// Single-bit corruption of every engine structure on the drive — WAL records, SSTable data,
/// filter, range-del and index blocks, footers, manifest records — is detected: reopening and
/// reading the store either fails with an error or returns exactly the data written. Bits are
/// flipped on the crashable device itself, under KVIMR, so the read path is the product's.
@Suite struct BitFlipTests {
    /// One byte range of one file, named for the failure messages.
    struct Region { var file: FileNumber; var name: String; var range: Range<Int> }

    /// A store with tables, a manifest of several edits and a WAL of several records (one of
    /// them fragmented across a 32 KiB block boundary), left as a crash would leave it.
    static func buildImage() throws -> (MemoryTrackDevice, [[UInt8]: [UInt8]], LSMOptions) {
        var o = smallOptions()
        o.valueLogThreshold = .max
        o.blockSize = 512
        var model: [[UInt8]: [UInt8]] = [:]
        let dev = try freshDevice()
        do { // phase 1: one table with puts, deletes and a range tombstone
            let s = try openStore(dev, o)
            for i in 0..<120 { let v = value(i, version: 1, size: 20 + i % 40); try s.put(key(i), v); model[key(i)] = v }
            for i in stride(from: 0, to: 120, by: 7) { try s.delete(key(i)); model[key(i)] = nil }
            try s.deleteRange(key(50), key(60))
            for i in 50..<60 { model[key(i)] = nil }
            try s.put(key(55), [9, 9]); model[key(55)] = [9, 9]
            try s.close()
        }
        var o2 = o
        o2.memtableBytes = 64 << 10
        let dev2 = dev.reopened()
        let s = try openStore(dev2, o2)
        // Phase 2: a flush (another manifest edit), then WAL records that stay in the WAL.
        for i in 200..<260 { let v = value(i, version: 2, size: 30); try s.put(key(i), v); model[key(i)] = v }
        try s.flush()
        s.waitForBackgroundWork()
        for i in 300..<304 { let v = value(i, version: 3, size: 25); try s.put(key(i), v, sync: true); model[key(i)] = v }
        let big = value(310, version: 3, size: 34 << 10)
        try s.put(key(310), big, sync: true); model[key(310)] = big
        try s.delete(key(301), sync: true); model[key(301)] = nil
        try s.put(key(320), [1, 2, 3], sync: true); model[key(320)] = [1, 2, 3]
        let image = dev2.crashed(keepUnsynced: 0)
        try? s.close()
        return (image, model, o2)
    }

    /// The regions of every engine file on `kvimr`: SSTable parts from the footer's handles,
    /// log records (header and payload) of WALs and manifests.
    static func regions(_ kvimr: KVIMR) throws -> [Region] {
        var out: [Region] = []
        for f in kvimr.files() {
            let bytes = try readAll(kvimr, f.number)
            switch f.kind {
            case .sstable:
                let n = bytes.count, footer = n - 48
                var p = footer
                func varint() -> Int { var r = 0, s = 0; while bytes[p] & 0x80 != 0 { r |= Int(bytes[p] & 0x7F) << s; s += 7; p += 1 }; r |= Int(bytes[p]) << s; p += 1; return r }
                let fo = varint(), fs = varint(), io = varint(), isz = varint(), ro = varint(), rs = varint()
                out.append(Region(file: f.number, name: "table \(f.number) data blocks", range: 0..<fo))
                out.append(Region(file: f.number, name: "table \(f.number) filter block", range: fo..<(fo + fs + 5)))
                out.append(Region(file: f.number, name: "table \(f.number) range-del block", range: ro..<(ro + rs + 5)))
                out.append(Region(file: f.number, name: "table \(f.number) index block", range: io..<(io + isz + 5)))
                out.append(Region(file: f.number, name: "table \(f.number) footer", range: footer..<n))
            case .wal, .manifest:
                var pos = 0, i = 0
                while pos + 7 <= bytes.count {
                    let left = 32768 - pos % 32768
                    if left < 7 { pos += left; continue }
                    let len = Int(bytes[pos + 4]) | Int(bytes[pos + 5]) << 8
                    let what = "\(f.kind) \(f.number) record \(i) (type \(bytes[pos + 6]))"
                    out.append(Region(file: f.number, name: what + " header", range: pos..<(pos + 7)))
                    if len > 0 { out.append(Region(file: f.number, name: what + " payload", range: (pos + 7)..<(pos + 7 + len))) }
                    pos += 7 + len; i += 1
                }
            default:
                continue
            }
        }
        return out
    }

    static func readAll(_ kvimr: KVIMR, _ file: FileNumber) throws -> [UInt8] {
        let n = Int(kvimr.size(file) ?? 0)
        var b = [UInt8](repeating: 0, count: n)
        let got = try b.withUnsafeMutableBytes { try kvimr.read(file, at: 0, into: $0) }
        #expect(got == n)
        return b
    }

    /// Flips bit `bit` of byte `offset` of a file whose sectors are `sectors` (in file order).
    static func flip(_ dev: MemoryTrackDevice, _ sectors: [(track: Int, sector: Int)], _ offset: Int, bit: Int) throws {
        let ss = dev.geometry.sectorSize
        let (track, sector) = sectors[offset / ss]
        var buf = [UInt8](repeating: 0, count: ss)
        try buf.withUnsafeMutableBytes { try dev.readTrack(track, sector: sector, into: $0) }
        buf[offset % ss] ^= UInt8(1) << UInt8(bit)
        try buf.withUnsafeBytes { try dev.writeTrack(track, sector: sector, from: $0, mode: .deviceManaged) }
    }

    /// Opens the image read-only and reads everything: nil if it all matches the model, the
    /// first difference otherwise. An error anywhere is detection (also nil).
    static func check(_ dev: MemoryTrackDevice, _ model: [[UInt8]: [UInt8]], _ keys: [[UInt8]], _ o: LSMOptions) -> String? {
        do {
            let s = try LSMStore(kvimr: try KVIMR(device: dev, readOnly: true), options: o, readOnly: true)
            for k in keys where try s.get(k) != model[k] {
                return "get(\(String(decoding: k, as: UTF8.self))) returned wrong data"
            }
            if !same(try dump(s), sortedModel(model)) { return "scan returned wrong data" }
            return nil
        } catch {
            return nil
        }
    }

    /// The log format alone: a flipped bit anywhere in a log of whole records — any header
    /// bit, including those of the last record, and a sample of payload bits — fails with
    /// `.corrupt`; it never drops or changes a record. (A log cut short still loses only its
    /// unfinished tail: `LogTests.tornTailKeepsPrefix`.)
    @Test func logFlipsAreErrorsNeverLostRecords() throws {
        let records: [[UInt8]] = [Array(repeating: 1, count: 30), (0..<40_000).map { UInt8($0 % 251) },
                                  [7, 7, 7], Array(repeating: 2, count: 500), [9]]
        var w = LogWriter(file: 1)
        let data = records.flatMap { w.frame($0) }
        var headers: Set<Int> = []
        var pos = 0
        while pos + 7 <= data.count {
            if 32768 - pos % 32768 < 7 { pos += 32768 - pos % 32768; continue }
            headers.formUnion(pos..<(pos + 7))
            pos += 7 + Int(data[pos + 4]) | Int(data[pos + 5]) << 8
        }
        var checked = 0
        for byte in data.indices where headers.contains(byte) || byte % 53 == 0 {
            for bit in 0..<8 {
                var d = data
                d[byte] ^= UInt8(1) << UInt8(bit)
                do {
                    let got = try LogReader.records(d, name: "t")
                    // Only a flip in the zero padding of a block's tail goes unread.
                    #expect(got == records, "byte \(byte) bit \(bit): records lost or changed")
                } catch {
                    #expect(error.kind == .corrupt)
                }
                checked += 1
            }
        }
        #expect(checked > 800)
    }

    /// A record cut short whose payload holds a log record of its own (a log stored as data)
    /// is still a torn tail when the cut is not at that inner record's end.
    @Test func tornRecordHoldingALogIsStillTorn() throws {
        var inner = LogWriter(file: 9)
        let embedded = inner.frame(Array(repeating: 3, count: 40)) + Array(repeating: 0xEE, count: 300)
        var w = LogWriter(file: 1)
        let data = w.frame([1, 2, 3]) + w.frame(Array(repeating: 5, count: 100) + embedded + Array(repeating: 6, count: 500))
        let cut = Array(data[0..<(data.count - 400)]) // inside the trailing 6s, after the inner record
        #expect(try LogReader.records(cut, name: "t") == [[1, 2, 3]])
    }

    @Test func everyFlippedBitIsDetected() throws {
        let (image, model, o) = try Self.buildImage()
        let keys = (0..<330).map { key($0) }
        #expect(Self.check(image, model, keys, o) == nil, "the undamaged image reads back")
        let kvimr = try KVIMR(device: image, readOnly: true)
        let regions = try Self.regions(kvimr)
        let kinds = Set(regions.map { $0.name.split(separator: " ").first.map(String.init) ?? "" })
        #expect(kinds.isSuperset(of: ["table", "wal", "manifest"]), "image holds \(kinds)")
        let sectorsOf: [FileNumber: [(track: Int, sector: Int)]] = Dictionary(uniqueKeysWithValues: kvimr.files().map { f in
            (f.number, (kvimr.extents(f.number) ?? []).flatMap { e in (0..<e.sectorCount).map { (e.track, e.firstSector + $0) } })
        })
        var rng = RNG(seed: 4)
        var failures: [String] = []
        var trials = 0
        for r in regions {
            // Every bit of structures up to 128 bytes (record headers, footers, small blocks
            // and edits); about 150 bits of each larger one (an odd stride, so every bit
            // position in turn) — the debug-build budget of this test.
            let bits = r.range.count * 8
            let stride = bits <= 1024 ? 1 : (bits / 150) | 1
            var b = stride == 1 ? 0 : rng.int(0...(stride - 1))
            while b < bits {
                let off = r.range.lowerBound + b / 8, bit = b % 8
                try Self.flip(image, sectorsOf[r.file]!, off, bit: bit)
                if let why = Self.check(image, model, keys, o) {
                    failures.append("\(r.name): bit \(bit) of byte \(off): \(why)")
                }
                try Self.flip(image, sectorsOf[r.file]!, off, bit: bit)
                trials += 1
                b += stride
            }
        }
        #expect(trials > 1000, "\(trials) flips")
        #expect(failures.isEmpty, "\(failures.count) undetected flips of \(trials), e.g. \(failures.prefix(12))")
        #expect(Self.check(image, model, keys, o) == nil, "every flip was undone")
    }
}
