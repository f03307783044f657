import LSMCommon
import LSMStore
import Synchronization
import Testing

private func ikey(_ i: Int, seq: UInt64 = 1, kind: ValueKind = .put) -> [UInt8] {
    InternalKey.make(key(i), seq, kind.rawValue)
}

@Suite struct BlockTests {
    @Test func roundTripAndSeek() throws {
        var b = BlockBuilder()
        for i in stride(from: 0, to: 2000, by: 2) { b.add(ikey(i), value(i, version: 0, size: i % 37)) }
        let contents = b.finish()
        let block = try Block.verified(Block.withTrailer(contents), what: "test")
        let it = BlockIterator(block, table: 0, blockOffset: 0, compare: InternalKey.compare)
        try it.seekToFirst()
        var n = 0
        while it.isValid {
            #expect(it.key == ikey(n * 2))
            #expect(it.value == value(n * 2, version: 0, size: (n * 2) % 37))
            n += 1
            try it.next()
        }
        #expect(n == 1000)
        for i in [0, 1, 2, 501, 1000, 1997, 1998] {
            try it.seek(ikey(i))
            #expect(it.isValid)
            #expect(it.key == ikey(i % 2 == 0 ? i : i + 1))
        }
        try it.seek(ikey(1999))
        #expect(!it.isValid)
    }

    @Test func checksumMismatchIsCorrupt() {
        var b = BlockBuilder()
        for i in 0..<50 { b.add(ikey(i), [1, 2, 3]) }
        var raw = Block.withTrailer(b.finish())
        raw[10] ^= 0x40
        let e = lsmError { _ = try Block.verified(raw, what: "test") }
        #expect(e?.kind == .corrupt)
    }

    @Test func newestVersionSortsFirst() {
        let a = InternalKey.make(key(1), 9, ValueKind.put.rawValue)
        let b = InternalKey.make(key(1), 3, ValueKind.delete.rawValue)
        let c = InternalKey.make(key(2), 100, ValueKind.put.rawValue)
        #expect(InternalKey.compare(a, b) < 0)
        #expect(InternalKey.compare(b, c) < 0)
        #expect(InternalKey.compare(InternalKey.make(key(1), 9, LSMFormat.seekKind), a) < 0)
    }
}

@Suite struct BloomTests {
    @Test func noFalseNegativesFewFalsePositives() {
        let hashes = (0..<5000).map { Bloom.hash(key($0)) }
        let f = Bloom.build(hashes: hashes, bitsPerKey: 10)
        for h in hashes { #expect(Bloom.mayContain(f, hash: h)) }
        var fp = 0
        for i in 10_000..<20_000 where Bloom.mayContain(f, hash: Bloom.hash(key(i))) { fp += 1 }
        #expect(fp < 250) // ~1% expected at 10 bits per key
    }
}

@Suite struct LogTests {
    func frame(_ records: [[UInt8]]) -> [UInt8] {
        var w = LogWriter(file: 1)
        return records.flatMap { w.frame($0) }
    }
    let records: [[UInt8]] = [[], Array(repeating: 7, count: 10), (0..<40_000).map { UInt8($0 & 0xFF) },
                              Array(repeating: 9, count: 100_000), [1, 2, 3], Array(repeating: 5, count: 32_761)]

    @Test func roundTripAcrossBlocks() throws {
        let data = frame(records)
        #expect(try LogReader.records(data, name: "t") == records)
    }

    @Test func tornTailKeepsPrefix() throws {
        let data = frame(records)
        for cut in stride(from: 0, to: data.count, by: 997) {
            let got = try LogReader.records(Array(data[0..<cut]), name: "t")
            #expect(got.count <= records.count)
            #expect(Array(records[0..<got.count]) == got)
        }
        // Zero-filled tail (a preallocated or torn sector).
        var z = frame(Array(records[0..<2]))
        z.append(contentsOf: repeatElement(0, count: 5000))
        #expect(try LogReader.records(z, name: "t") == Array(records[0..<2]))
    }

    @Test func corruptMiddleIsAnError() {
        var data = frame(records)
        data[20] ^= 1 // inside record 1, records 2... follow intact
        let e = lsmError { _ = try LogReader.records(data, name: "t") }
        #expect(e?.kind == .corrupt)
    }

    @Test func batchRoundTrip() throws {
        let entries = [BatchEntry(kind: .put, key: [1], value: [2, 3]), BatchEntry(kind: .delete, key: [4]),
                       BatchEntry(kind: .put, key: [], value: [])]
        let enc = BatchCodec.encode(sequence: 77, entries)
        let (seq, dec) = try BatchCodec.decode(enc)
        #expect(seq == 77)
        #expect(dec == entries)
        #expect(lsmError { _ = try BatchCodec.decode(Array(enc.dropLast())) }?.kind == .corrupt)
    }
}

@Suite struct ManifestFormatTests {
    @Test func editRoundTrip() throws {
        var e = VersionEdit()
        e.logNumber = 12; e.lastSequence = 999; e.nextFileNumber = 40
        e.deleted = [(0, 3), (2, 7)]
        e.added = [.init(level: 1, number: 9, size: 4096, smallest: ikey(1), largest: ikey(50))]
        #expect(try VersionEdit.decode(e.encode(), maxLevels: 7) == e)
        #expect(lsmError { _ = try VersionEdit.decode([99], maxLevels: 7) }?.kind == .corrupt)
    }

    @Test func rootRecord() throws {
        var r = RootRecord.encode(manifest: 123)
        #expect(try RootRecord.decode(r) == 123)
        r[9] ^= 1
        #expect(lsmError { _ = try RootRecord.decode(r) }?.kind == .corrupt)
    }
}

/// A table built into memory and read back through `Table`.
final class Bytes: @unchecked Sendable { var data: [UInt8] = [] }

@Suite struct TableTests {
    func build(_ n: Int, blockSize: Int = 512) throws -> (Bytes, TableInfo) {
        let out = Bytes()
        var b = TableBuilder(blockSize: blockSize, bitsPerKey: 10) { (bytes: [UInt8]) throws(LSMError) in out.data += bytes }
        for i in 0..<n {
            try b.add(ikey(i * 2, seq: UInt64(i + 1)), value(i, version: 0, size: 20 + i % 50))
        }
        return (out, try b.finish())
    }

    func open(_ bytes: [UInt8]) throws(LSMError) -> Table {
        try Table(number: 1, size: UInt64(bytes.count), cache: BlockCache(capacityBytes: 1 << 20)) {
            (offset: UInt64, count: Int) throws(LSMError) -> [UInt8] in
            guard Int(offset) + count <= bytes.count else { throw LSMError(.io, "out of range") }
            return Array(bytes[Int(offset)..<(Int(offset) + count)])
        }
    }

    @Test func pointLookupsAndIteration() throws {
        let (out, info) = try build(3000)
        #expect(info.size == UInt64(out.data.count))
        #expect(info.entries == 3000)
        let t = try open(out.data)
        for i in stride(from: 0, to: 3000, by: 7) {
            let k = key(i * 2)
            #expect(t.mayContain(hash: Bloom.hash(k)))
            let e = try t.get(InternalKey.make(k, LSMFormat.maxSequence, LSMFormat.seekKind), userKey: k)
            #expect(e?.value == value(i, version: 0, size: 20 + i % 50))
            let miss = key(i * 2 + 1)
            #expect(try t.get(InternalKey.make(miss, LSMFormat.maxSequence, LSMFormat.seekKind), userKey: miss) == nil)
        }
        let it = t.iterator()
        try it.seekToFirst()
        var n = 0
        while it.isValid { #expect(InternalKey.userKey(it.key) == key(n * 2)); n += 1; try it.next() }
        #expect(n == 3000)
    }

    @Test func flippedByteIsCorruptNeverWrongData() throws {
        let (out, _) = try build(2000)
        // Flip one byte at several places: data blocks, filter, index, footer.
        for pos in stride(from: 3, to: out.data.count, by: out.data.count / 23) {
            var bad = out.data
            bad[pos] ^= 0x20
            var sawCorrupt = false
            do {
                let t = try open(bad)
                for i in 0..<2000 {
                    let k = key(i * 2)
                    do {
                        if let e = try t.get(InternalKey.make(k, LSMFormat.maxSequence, LSMFormat.seekKind), userKey: k) {
                            #expect(e.value == value(i, version: 0, size: 20 + i % 50))
                        }
                    } catch { #expect(error.kind == .corrupt); sawCorrupt = true }
                }
            } catch {
                #expect(error.kind == .corrupt); sawCorrupt = true
            }
            #expect(sawCorrupt, "flip at \(pos) went unnoticed")
        }
    }
}

@Suite struct RangeTombstoneTests {
    func t(_ a: Int, _ b: Int, _ seq: UInt64) -> RangeTombstone { RangeTombstone(start: key(a), end: key(b), seq: seq) }

    @Test func fragmentsKeepNewestCover() {
        let f = TombstoneFragments([t(10, 20, 5), t(15, 30, 9), t(40, 50, 2), t(0, 100, 50)], snapshot: 10)
        #expect(f.coveringSeq(key(9)) == 0)
        #expect(f.coveringSeq(key(10)) == 5)
        #expect(f.coveringSeq(key(15)) == 9)
        #expect(f.coveringSeq(key(29)) == 9)
        #expect(f.coveringSeq(key(30)) == 0)
        #expect(f.coveringSeq(key(45)) == 2)
        #expect(f.coveringSeq(key(50)) == 0)
        let pieces = f.tombstones
        #expect(pieces.map(\.seq) == [5, 9, 9, 2])
        for (a, b) in zip(pieces, pieces.dropFirst()) { #expect(!lexLess(b.start, a.end)) }
        #expect(t(10, 20, 1).clipped(key(15), nil) == t(15, 20, 1))
        #expect(t(10, 20, 1).clipped(key(20), nil) == nil)
    }

    @Test func tableStoresTombstonesAndWidensRange() throws {
        let out = Bytes()
        var b = TableBuilder(blockSize: 512, bitsPerKey: 10) { (bytes: [UInt8]) throws(LSMError) in out.data += bytes }
        for i in 20..<30 { try b.add(InternalKey.make(key(i), 100, ValueKind.put.rawValue), [1]) }
        b.addRangeTombstone(t(5, 25, 7))
        b.addRangeTombstone(t(28, 60, 8))
        let info = try b.finish()
        #expect(info.smallest == t(5, 25, 7).startKey)
        #expect(info.largest == t(28, 60, 8).endSentinel)
        let bytes = out.data
        let table = try Table(number: 1, size: UInt64(bytes.count), cache: nil) { (offset: UInt64, count: Int) throws(LSMError) -> [UInt8] in
            Array(bytes[Int(offset)..<(Int(offset) + count)])
        }
        #expect(table.tombstones == [t(5, 25, 7), t(28, 60, 8)])
        #expect(table.maxCoveringSeq(key(24), snapshot: 100) == 7)
        #expect(table.maxCoveringSeq(key(24), snapshot: 6) == 0)
        #expect(table.maxCoveringSeq(key(60), snapshot: 100) == 0)
    }
}

@Suite struct TombstoneIndexTests {
    @Test(arguments: [1, 2, 3, 4] as [UInt64])
    func matchesBruteForce(seed: UInt64) {
        var rng = RNG(seed: seed)
        var list: [RangeTombstone] = []
        var index = TombstoneIndex()
        for seq in 1...200 as ClosedRange<UInt64> {
            let a = rng.int(0...500), b = a + rng.int(0...60)
            let t = RangeTombstone(start: key(a), end: key(b), seq: seq)
            list.append(t)
            index.insert(t)
        }
        let rebuilt = TombstoneIndex(list.shuffled())
        for _ in 0..<2000 {
            let k = key(rng.int(0...600))
            let snap = UInt64(rng.int(0...210))
            let expected = list.maxCoveringSeq(k, snapshot: snap)
            #expect(index.maxCoveringSeq(k, snapshot: snap) == expected)
            #expect(rebuilt.maxCoveringSeq(k, snapshot: snap) == expected)
            let lo = rng.int(0...550)
            let pieces = index.overlapping(key(lo), key(lo + 40))
            let probe = key(lo + rng.int(0...39))
            #expect(pieces.maxCoveringSeq(probe, snapshot: snap) == list.maxCoveringSeq(probe, snapshot: snap))
        }
    }
}
