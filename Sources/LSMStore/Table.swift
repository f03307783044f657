import LSMCommon
import Synchronization

/// An open SSTable: footer, index and filter in memory; data blocks read on demand through
/// the block cache with their checksums verified. Immutable and thread-safe.
package final class Table: Sendable {
    package typealias Reader = @Sendable (_ offset: UInt64, _ count: Int) throws(LSMError) -> [UInt8]
    /// Fills `buffer` with the bytes at `offset` (exactly; a short file is an error).
    package typealias ReaderInto = @Sendable (_ offset: UInt64, _ buffer: UnsafeMutableRawBufferPointer) throws(LSMError) -> Void
    package let number: UInt64
    package let size: UInt64
    let index: Block
    let filter: [UInt8]
    /// Range tombstones, sorted by (start, newest first).
    package let tombstones: [RangeTombstone]
    let tombstoneIndex: TombstoneIndex
    let readInto: ReaderInto
    let cache: BlockCache?

    /// Opens the table of `size` bytes, verifying footer, index and filter.
    package convenience init(number: UInt64, size: UInt64, cache: BlockCache?, read: @escaping Reader) throws(LSMError) {
        try self.init(number: number, size: size, cache: cache) { (offset: UInt64, buffer: UnsafeMutableRawBufferPointer) throws(LSMError) in
            let bytes = try read(offset, buffer.count)
            guard bytes.count == buffer.count else { throw LSMError.corrupt("table \(number): short read at \(offset)") }
            bytes.withUnsafeBytes { if let b = $0.baseAddress { buffer.baseAddress!.copyMemory(from: b, byteCount: $0.count) } }
        }
    }

    /// Opens the table, reading through `readInto` (data blocks are read straight into the
    /// memory the block keeps).
    package init(number: UInt64, size: UInt64, cache: BlockCache?, readInto: @escaping ReaderInto) throws(LSMError) {
        self.number = number; self.size = size; self.readInto = readInto; self.cache = cache
        func read(_ offset: UInt64, _ count: Int) throws(LSMError) -> [UInt8] {
            var out = [UInt8](repeating: 0, count: count)
            var failure: LSMError?
            out.withUnsafeMutableBytes { p in
                do throws(LSMError) { try readInto(offset, p) } catch { failure = error }
            }
            if let failure { throw failure }
            return out
        }
        let name = "table \(number)"
        guard size >= UInt64(LSMFormat.footerSize) else { throw LSMError.corrupt("\(name): too small (\(size) bytes)") }
        let footer = try read(size - UInt64(LSMFormat.footerSize), LSMFormat.footerSize)
        let hs = LSMFormat.footerHandlesSize
        guard footer.readLE(UInt64.self, at: hs + 4) == LSMFormat.tableMagic else {
            throw LSMError.corrupt("\(name): bad magic")
        }
        let crc = footer.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[0..<hs])) }
        guard CRC32C.mask(crc) == footer.readLE(UInt32.self, at: hs) else { throw LSMError.corrupt("\(name): footer checksum mismatch") }
        var r = ByteReader(footer, from: 0, to: hs)
        guard let fh = BlockHandle.decode(&r), let ih = BlockHandle.decode(&r), let rh = BlockHandle.decode(&r) else {
            throw LSMError.corrupt("\(name): bad footer handles")
        }
        let limit = size - UInt64(LSMFormat.footerSize)
        func load(_ h: BlockHandle, _ what: String) throws(LSMError) -> [UInt8] {
            let t = UInt64(LSMFormat.blockTrailerSize)
            guard h.size < UInt64(Int32.max), h.offset <= limit, h.size + t <= limit - h.offset else {
                throw LSMError.corrupt("\(name): \(what) handle out of range")
            }
            return try read(h.offset, Int(h.size + t))
        }
        let rawFilter = try load(fh, "filter")
        let filterBlock = try Block.verifiedRaw(rawFilter, what: "\(name) filter")
        self.filter = filterBlock
        self.index = try Block.verified(try load(ih, "index"), what: "\(name) index", prefixes: true)
        let rangeBlock = try Block.verified(try load(rh, "range-del"), what: "\(name) range-del")
        var ts: [RangeTombstone] = []
        let it = BlockIterator(rangeBlock, table: number, blockOffset: rh.offset, compare: InternalKey.compare)
        try it.seekToFirst()
        while it.isValid {
            guard InternalKey.kind(it.key) == ValueKind.rangeDelete.rawValue else {
                throw LSMError.corrupt("\(name): range-del block holds a non-range entry")
            }
            ts.append(RangeTombstone(start: InternalKey.userKey(it.key), end: it.value, seq: InternalKey.sequence(it.key)))
            try it.next()
        }
        self.tombstones = ts
        self.tombstoneIndex = TombstoneIndex(ts)
    }

    /// The newest sequence <= `snapshot` of this table's range tombstones covering `key`, or 0.
    package func maxCoveringSeq(_ key: [UInt8], snapshot: UInt64) -> UInt64 {
        tombstones.isEmpty ? 0 : tombstoneIndex.maxCoveringSeq(key, snapshot: snapshot)
    }

    /// Range tombstone pieces touching [start, end).
    package func tombstones(from start: [UInt8], to end: [UInt8]?) -> [RangeTombstone] {
        tombstones.isEmpty ? [] : tombstoneIndex.overlapping(start, end)
    }

    /// Reads (or finds cached) the data block at `h`.
    /// `fillCache` false (compaction inputs): the block is neither looked up nor kept, so
    /// a compaction streaming whole tables does not evict the blocks readers use.
    func dataBlock(_ h: BlockHandle, fillCache: Bool = true) throws(LSMError) -> Block {
        if fillCache, let b = cache?.get(file: number, offset: h.offset) { return b }
        let t = UInt64(LSMFormat.blockTrailerSize)
        let limit = size - UInt64(LSMFormat.footerSize)
        guard h.size < UInt64(Int32.max), h.offset <= limit, h.size + t <= limit - h.offset else {
            throw LSMError.corrupt("table \(number): data block handle out of range")
        }
        let count = Int(h.size + t)
        let memory = UnsafeMutableRawBufferPointer.allocate(byteCount: count, alignment: 8)
        do { try readInto(h.offset, memory) } catch { memory.deallocate(); throw error }
        let b = try Block.verified(owning: memory, count: count, what: "table \(number) block at \(h.offset)")
        if fillCache { cache?.insert(file: number, offset: h.offset, b) }
        return b
    }

    /// Bloom check on a user key's hash.
    package func mayContain(hash: UInt32) -> Bool { Bloom.mayContain(filter, hash: hash) }

    /// The first entry with internal key >= `target` if it belongs to `userKey`.
    /// (The index's fence for a block is its last key, so the block it names holds an entry
    /// >= `target`.)
    package func get(_ target: [UInt8], userKey: [UInt8]) throws(LSMError) -> (key: [UInt8], value: [UInt8])? {
        let it = BlockIterator(index, table: number, blockOffset: nil) // index, then the data block
        try it.seek(target)
        guard it.isValid else { return nil }
        let h = try handle(at: it)
        it.reset(try dataBlock(h), blockOffset: h.offset)
        try it.seek(target)
        guard it.isValid, InternalKey.compareUser(it.key, userKey) == 0 else { return nil }
        return (it.key, it.value)
    }

    /// The block handle stored as the index iterator's current value.
    func handle(at idx: BlockIterator) throws(LSMError) -> BlockHandle {
        guard let h = idx.withValue({ BlockHandle.decode(raw: $0) }) else {
            throw LSMError.corrupt("table \(number): bad index entry")
        }
        return h
    }

    package func iterator(fillCache: Bool = true) -> TableIterator { TableIterator(self, fillCache: fillCache) }
}

extension Block {
    /// Verifies the trailer of a raw block and returns its contents undecoded (filter blocks).
    static func verifiedRaw(_ raw: [UInt8], what: String) throws(LSMError) -> [UInt8] {
        let t = LSMFormat.blockTrailerSize
        guard raw.count >= t else { throw LSMError.corrupt("\(what): block too short") }
        let crc = raw.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[0..<(raw.count - 4)])) }
        guard CRC32C.mask(crc) == raw.readLE(UInt32.self, at: raw.count - 4) else {
            throw LSMError.corrupt("\(what): block checksum mismatch")
        }
        return Array(raw[0..<(raw.count - t)])
    }
}

/// Two-level iterator: index block → data blocks, both directions. One data-block iterator
/// is reused across blocks.
package final class TableIterator: InternalIterator {
    let table: Table
    let indexIter: BlockIterator
    private var dataIter: BlockIterator?
    /// Whether `dataIter` holds the block the index iterator names.
    private var loaded = false

    let fillCache: Bool

    init(_ table: Table, fillCache: Bool = true) {
        self.table = table
        self.fillCache = fillCache
        indexIter = BlockIterator(table.index, table: table.number, blockOffset: nil)
    }

    package var isValid: Bool { loaded && dataIter!.isValid }
    package var key: [UInt8] { dataIter!.key }
    package var value: [UInt8] { dataIter!.value }
    /// Calls `body` with the current value in place.
    package func withValue<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R { dataIter!.withValue(body) }

    private func loadBlock() throws(LSMError) {
        loaded = false
        guard indexIter.isValid else { return }
        let h = try table.handle(at: indexIter)
        let b = try table.dataBlock(h, fillCache: fillCache)
        if let d = dataIter { d.reset(b, blockOffset: h.offset) } else {
            dataIter = BlockIterator(b, table: table.number, blockOffset: h.offset)
        }
        loaded = true
    }
    /// Skips forward over exhausted (or empty) data blocks.
    private func skipEmptyForward() throws(LSMError) {
        while loaded && !dataIter!.isValid {
            try indexIter.next()
            try loadBlock()
            if loaded { try dataIter!.seekToFirst() }
        }
    }
    /// Skips backward over exhausted (or empty) data blocks.
    private func skipEmptyBackward() throws(LSMError) {
        while loaded && !dataIter!.isValid {
            try indexIter.prev()
            try loadBlock()
            if loaded { try dataIter!.seekToLast() }
        }
    }
    package func seekToFirst() throws(LSMError) {
        try indexIter.seekToFirst()
        try loadBlock()
        if loaded { try dataIter!.seekToFirst() }
        try skipEmptyForward()
    }
    package func seekToLast() throws(LSMError) {
        try indexIter.seekToLast()
        try loadBlock()
        if loaded { try dataIter!.seekToLast() }
        try skipEmptyBackward()
    }
    package func seek(_ target: [UInt8]) throws(LSMError) {
        try indexIter.seek(target)   // first block whose last key >= target
        try loadBlock()
        if loaded { try dataIter!.seek(target) }
        try skipEmptyForward()
    }
    package func next() throws(LSMError) {
        guard isValid else { return }
        try dataIter!.next()
        try skipEmptyForward()
    }
    package func prev() throws(LSMError) {
        guard isValid else { return }
        try dataIter!.prev()
        try skipEmptyBackward()
    }
}
