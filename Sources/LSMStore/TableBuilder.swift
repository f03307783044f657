import LSMCommon

/// Where a block lives in a table file: offset and size of its contents (trailer excluded).
package struct BlockHandle: Sendable, Equatable {
    package var offset: UInt64
    package var size: UInt64
    /// Byte layout: [varint offset][varint size]
    package func encode(into out: inout [UInt8]) { out.appendVarint(offset); out.appendVarint(size) }
    /// Decodes a handle that fills `raw` up to trailing bytes (index values); nil if malformed.
    package static func decode(raw: UnsafeRawBufferPointer) -> BlockHandle? {
        var p = 0
        func varint() -> UInt64? {
            var result: UInt64 = 0, shift: UInt64 = 0
            while p < raw.count && shift <= 63 {
                let b = raw[p]; p += 1
                result |= UInt64(b & 0x7F) << shift
                if b < 0x80 { return result }
                shift += 7
            }
            return nil
        }
        guard let o = varint(), let s = varint() else { return nil }
        return BlockHandle(offset: o, size: s)
    }
    package static func decode(_ r: inout ByteReader) -> BlockHandle? {
        guard let o = r.varint(), let s = r.varint() else { return nil }
        return BlockHandle(offset: o, size: s)
    }
}

/// What a finished table looks like, for the manifest.
package struct TableInfo: Sendable {
    package var size: UInt64
    package var entries: Int
    package var smallest: [UInt8]   // internal keys
    package var largest: [UInt8]
}

/// Writes one SSTable (docs/format/sstable.md) through `sink`, block by block.
/// Byte layout of a table:
///   [data block + trailer]×n [filter block + trailer] [range-del block + trailer]
///   [index block + trailer] [footer: 48]
package struct TableBuilder {
    package typealias Sink = ([UInt8]) throws(LSMError) -> Void
    let blockSize: Int
    let bitsPerKey: Int
    let sink: Sink
    private var data = BlockBuilder()
    private var index = BlockBuilder(restartInterval: 1)
    private var hashes: [UInt32] = []
    private var lastUser: [UInt8]? = nil
    private var pending: [UInt8] = []
    private var offset: UInt64 = 0
    private var smallest: [UInt8]? = nil
    private var lastKey: [UInt8] = []
    package private(set) var entries = 0
    private var tombstones: [RangeTombstone] = []

    package init(blockSize: Int, bitsPerKey: Int, sink: @escaping Sink) {
        self.blockSize = max(256, blockSize); self.bitsPerKey = bitsPerKey; self.sink = sink
    }

    /// Bytes the table will take if finished now (roughly).
    package var estimatedSize: UInt64 { offset + UInt64(pending.count + data.estimatedSize) }

    /// Adds an entry; internal keys must arrive in increasing order.
    package mutating func add(_ ikey: [UInt8], _ value: [UInt8]) throws(LSMError) {
        if smallest == nil { smallest = ikey }
        let user = ikey[0..<(ikey.count - 8)]
        if lastUser == nil || !lastUser!.elementsEqual(user) {
            let u = Array(user)
            hashes.append(Bloom.hash(u))
            lastUser = u
        }
        data.add(ikey, value)
        lastKey = ikey
        entries += 1
        if data.estimatedSize >= blockSize { try finishDataBlock() }
    }

    private mutating func writeBlock(_ contents: [UInt8]) throws(LSMError) -> BlockHandle {
        let h = BlockHandle(offset: offset, size: UInt64(contents.count))
        let raw = Block.withTrailer(contents)
        pending.append(contentsOf: raw)
        offset += UInt64(raw.count)
        if pending.count >= 256 << 10 { try sink(pending); pending = [] }
        return h
    }

    private mutating func finishDataBlock() throws(LSMError) {
        guard !data.isEmpty else { return }
        let h = try writeBlock(data.finish())
        var v: [UInt8] = []
        h.encode(into: &v)
        index.add(lastKey, v) // fence pointer: last key of the block
    }

    /// Adds a range tombstone (any order); it widens the table's key range.
    package mutating func addRangeTombstone(_ t: RangeTombstone) { tombstones.append(t) }

    package var isEmpty: Bool { entries == 0 && tombstones.isEmpty }

    /// Writes the remaining data block, the filter, the range tombstones, the index and the
    /// footer.
    package mutating func finish() throws(LSMError) -> TableInfo {
        try finishDataBlock()
        let filterHandle = try writeBlock(Bloom.build(hashes: hashes, bitsPerKey: bitsPerKey))
        // Range-del block: entries (start, seq, rangeDelete) → end, in internal-key order.
        var lo = smallest, hi: [UInt8]? = entries > 0 ? lastKey : nil
        var rb = BlockBuilder()
        for t in tombstones.sorted(by: { InternalKey.compare($0.startKey, $1.startKey) < 0 }) {
            rb.add(t.startKey, t.end)
            if lo == nil || InternalKey.compare(t.startKey, lo!) < 0 { lo = t.startKey }
            if hi == nil || InternalKey.compare(t.endSentinel, hi!) > 0 { hi = t.endSentinel }
        }
        let rangeHandle = try writeBlock(rb.finish())
        let indexHandle = try writeBlock(index.finish())
        // Footer: [filter handle][index handle][range-del handle][zero padding to 36]
        //         [masked crc32c: 4][magic: 8]
        var footer: [UInt8] = []
        filterHandle.encode(into: &footer)
        indexHandle.encode(into: &footer)
        rangeHandle.encode(into: &footer)
        footer.append(contentsOf: repeatElement(0, count: LSMFormat.footerHandlesSize - footer.count))
        footer.appendLE(CRC32C.mask(CRC32C.checksum(footer)))
        footer.appendLE(LSMFormat.tableMagic)
        pending.append(contentsOf: footer)
        offset += UInt64(footer.count)
        try sink(pending)
        pending = []
        return TableInfo(size: offset, entries: entries, smallest: lo ?? [], largest: hi ?? [])
    }
}
