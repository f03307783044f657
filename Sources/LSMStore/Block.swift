import LSMCommon

/// A decoded, checksum-verified block (contents without the trailer). Immutable.
/// The contents live in memory the block owns, so iterators read them in place through a
/// raw pointer (no array retain or bounds check per access).
package final class Block: @unchecked Sendable {
    /// The contents (`count` bytes; the allocation may be longer: a trailer read with them).
    let bytes: UnsafeRawBufferPointer
    let restartsOffset: Int
    let numRestarts: Int
    /// Index blocks only (nil otherwise): the user-key prefix (`SkipList.prefix(of:)`) of each
    /// restart point's key, in order. Seeks binary-search this flat array of numbers instead of
    /// keys scattered through the block (an index of a large table spans hundreds of KiB: one
    /// or two cache misses per probe otherwise), comparing whole keys only on equal prefixes.
    let restartPrefixes: UnsafeMutablePointer<UInt64>?

    package var count: Int { bytes.count }
    /// A copy of the contents.
    package var data: [UInt8] { Array(bytes) }

    /// Validates the restart array; nil if the block is malformed.
    package convenience init?(_ data: [UInt8]) {
        let p = UnsafeMutableRawBufferPointer.allocate(byteCount: max(1, data.count), alignment: 8)
        data.withUnsafeBytes { if let b = $0.baseAddress { p.baseAddress!.copyMemory(from: b, byteCount: $0.count) } }
        self.init(owning: p, count: data.count)
    }

    /// Takes ownership of `memory` (deallocated with the block, or here when malformed);
    /// the contents are its first `count` bytes.
    /// With `prefixes`, also computes `restartPrefixes` (every restart key must then be an
    /// internal key stored whole, else the block is malformed).
    init?(owning memory: UnsafeMutableRawBufferPointer, count: Int, prefixes: Bool = false) {
        let d = UnsafeRawBufferPointer(start: memory.baseAddress, count: count)
        guard count >= 4 else { memory.deallocate(); return nil }
        let n = Int(d.readLE(UInt32.self, at: count - 4))
        guard n >= 1, n <= (count - 4) / 4 else { memory.deallocate(); return nil }
        let ro = count - 4 - 4 * n
        for i in 0..<n where Int(d.readLE(UInt32.self, at: ro + 4 * i)) > ro { memory.deallocate(); return nil }
        guard prefixes, ro > 0 else { // (an empty block has no keys to index)
            bytes = d; restartsOffset = ro; numRestarts = n; restartPrefixes = nil
            return
        }
        let pf = UnsafeMutablePointer<UInt64>.allocate(capacity: n)
        for i in 0..<n {
            let off = Int(d.readLE(UInt32.self, at: ro + 4 * i))
            guard let (shared, unshared, _, p) = BlockIterator.header(d, at: off, end: ro), shared == 0,
                  unshared >= LSMFormat.internalKeyTrailerSize else {
                pf.deallocate(); memory.deallocate(); return nil
            }
            pf[i] = SkipList.prefix(of: UnsafeRawBufferPointer(rebasing: d[p..<(p + unshared)]))
        }
        bytes = d; restartsOffset = ro; numRestarts = n; restartPrefixes = pf
    }

    deinit {
        UnsafeMutableRawPointer(mutating: bytes.baseAddress)?.deallocate()
        restartPrefixes?.deallocate()
    }

    @inline(__always)
    func restart(_ i: Int) -> Int { Int(bytes.readLE(UInt32.self, at: restartsOffset + 4 * i)) }

    /// Wraps raw block bytes + trailer read from a file: verifies the CRC and decodes.
    /// Byte layout of the trailer: [compression type: 1][masked crc32c(contents ++ type): 4 LE]
    /// `prefixes`: an index block, given `restartPrefixes`.
    package static func verified(_ raw: [UInt8], what: @autoclosure () -> String, prefixes: Bool = false) throws(LSMError) -> Block {
        let p = UnsafeMutableRawBufferPointer.allocate(byteCount: max(1, raw.count), alignment: 8)
        raw.withUnsafeBytes { if let b = $0.baseAddress { p.baseAddress!.copyMemory(from: b, byteCount: $0.count) } }
        return try verified(owning: p, count: raw.count, what: what(), prefixes: prefixes)
    }

    /// Like `verified(_:what:)` on `count` bytes (contents + trailer) in `memory`, which the
    /// block takes over (deallocated here on failure).
    static func verified(owning memory: UnsafeMutableRawBufferPointer, count: Int,
                         what: @autoclosure () -> String, prefixes: Bool = false) throws(LSMError) -> Block {
        let t = LSMFormat.blockTrailerSize
        let raw = UnsafeRawBufferPointer(start: memory.baseAddress, count: count)
        guard count >= t else { memory.deallocate(); throw LSMError.corrupt("\(what()): block too short") }
        let stored = raw.readLE(UInt32.self, at: count - 4)
        let crc = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[0..<(count - 4)]))
        guard CRC32C.mask(crc) == stored else { memory.deallocate(); throw LSMError.corrupt("\(what()): block checksum mismatch") }
        guard raw[count - t] == LSMFormat.compressionNone else {
            let type = raw[count - t]
            memory.deallocate()
            throw LSMError.corrupt("\(what()): unknown compression type \(type)")
        }
        guard let b = Block(owning: memory, count: count - t, prefixes: prefixes) else { throw LSMError.corrupt("\(what()): malformed block") }
        return b
    }

    /// Appends the trailer to finished block contents.
    package static func withTrailer(_ contents: [UInt8]) -> [UInt8] {
        var out = contents
        out.append(LSMFormat.compressionNone)
        let crc = CRC32C.checksum(out)
        out.appendLE(CRC32C.mask(crc))
        return out
    }
}

/// Iterates the entries of a block in both directions; keys are compared in place (internal
/// key order unless `rawCompare` is given). Can be pointed at another block (`reset`) so table iterators reuse one.
package final class BlockIterator {
    package typealias RawCompare = (UnsafeRawBufferPointer, UnsafeRawBufferPointer) -> Int
    private(set) var block: Block
    /// A custom order (nil: internal keys, compared by a direct call the optimizer inlines).
    let rawCompare: RawCompare?
    /// Names the block in error messages (built only on error).
    let table: UInt64
    private(set) var blockOffset: UInt64?
    var name: String { blockOffset.map { "table \(table) block at \($0)" } ?? "table \(table) index" }
    /// The current key, built in a raw buffer as entries are decoded (prefix compression);
    /// `key` copies it into an array once per position, on demand.
    private var keyBuffer: UnsafeMutableRawPointer
    private var keyCapacity = 64
    private var keyCount = 0
    private var keyArray: [UInt8]? = nil
    /// The current key (the same array until the iterator moves).
    package var key: [UInt8] {
        if let k = keyArray { return k }
        let k = Array(UnsafeRawBufferPointer(start: keyBuffer, count: keyCount))
        keyArray = k
        return k
    }
    /// The current value (copied out of the block on each access).
    package var value: [UInt8] { Array(UnsafeRawBufferPointer(rebasing: block.bytes[valueOffset..<(valueOffset + valueLength)])) }
    private var valueOffset = 0
    private var valueLength = 0
    private var current: Int       // offset of the current entry; == restartsOffset when invalid
    private var nextOffset: Int

    /// `blockOffset` nil: the table's index block. (`compare` is kept for callers; seeks use
    /// `rawCompare`.)
    package init(_ block: Block, table: UInt64, blockOffset: UInt64?, compare: (([UInt8], [UInt8]) -> Int)? = nil,
                 rawCompare: RawCompare? = nil) {
        self.block = block; self.rawCompare = rawCompare
        self.table = table; self.blockOffset = blockOffset
        current = block.restartsOffset; nextOffset = block.restartsOffset
        keyBuffer = UnsafeMutableRawPointer.allocate(byteCount: keyCapacity, alignment: 8)
    }

    deinit { keyBuffer.deallocate() }

    /// Points the iterator at another block (invalid until positioned).
    /// Nothing of the previous block survives: no position, no key, no value bounds (a value
    /// range of a larger block would lie outside this one).
    package func reset(_ block: Block, blockOffset: UInt64?) {
        self.block = block; self.blockOffset = blockOffset
        current = block.restartsOffset; nextOffset = block.restartsOffset
        keyCount = 0; keyArray = nil
        valueOffset = 0; valueLength = 0
    }

    package var isValid: Bool { current < block.restartsOffset }

    /// Calls `body` with the value bytes in place (no copy).
    package func withValue<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
        body(UnsafeRawBufferPointer(rebasing: block.bytes[valueOffset..<(valueOffset + valueLength)]))
    }
    /// Calls `body` with the current key in place.
    package func withKey<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
        body(UnsafeRawBufferPointer(start: keyBuffer, count: keyCount))
    }

    /// Decodes the three varint lengths of the entry at `offset`: (shared, unshared, value
    /// length, offset of the key delta), or nil if malformed or running past `end`.
    @inline(__always)
    static func header(_ d: UnsafeRawBufferPointer, at offset: Int, end: Int) -> (Int, Int, Int, Int)? {
        var p = offset
        guard let shared = varint32(d, &p, end), let unshared = varint32(d, &p, end),
              let vlen = varint32(d, &p, end),
              unshared <= end - p, vlen <= end - p - unshared else { return nil }
        return (shared, unshared, vlen, p)
    }

    /// A varint of at most 5 bytes at `p` (< `end`), advancing `p`; one-byte values fast.
    @inline(__always)
    private static func varint32(_ d: UnsafeRawBufferPointer, _ p: inout Int, _ end: Int) -> Int? {
        guard p < end else { return nil }
        let b0 = d[p]
        if b0 < 0x80 { p += 1; return Int(b0) }
        var result = 0, shift = 0
        while p < end && shift <= 28 {
            let b = d[p]; p += 1
            result |= Int(b & 0x7F) << shift
            if b < 0x80 { return result }
            shift += 7
        }
        return nil
    }

    /// Decodes the entry at `offset` given the previous key (`keyCount` bytes in the buffer).
    private func parse(at offset: Int) throws(LSMError) {
        let d = block.bytes
        let end = block.restartsOffset
        guard let (shared, unshared, vlen, p) = Self.header(d, at: offset, end: end), shared <= keyCount else {
            current = end
            throw LSMError.corrupt("\(name): malformed entry at \(offset)")
        }
        setKey(shared: shared, d.baseAddress! + p, unshared)
        guard keyCount >= LSMFormat.internalKeyTrailerSize else { // every block key is an internal key
            current = end
            throw LSMError.corrupt("\(name): short key at \(offset)")
        }
        valueOffset = p + unshared
        valueLength = vlen
        current = offset
        nextOffset = p + unshared + vlen
    }

    /// The key becomes its first `shared` bytes followed by `count` bytes at `bytes`.
    @inline(__always)
    private func setKey(shared: Int, _ bytes: UnsafeRawPointer, _ count: Int) {
        let n = shared + count
        if n > keyCapacity {
            var c = keyCapacity
            while c < n { c *= 2 }
            let b = UnsafeMutableRawPointer.allocate(byteCount: c, alignment: 8)
            b.copyMemory(from: keyBuffer, byteCount: shared)
            keyBuffer.deallocate()
            keyBuffer = b; keyCapacity = c
        }
        (keyBuffer + shared).copyMemory(from: bytes, byteCount: count)
        keyCount = n
        keyArray = nil
    }

    package func seekToFirst() throws(LSMError) {
        keyCount = 0
        if block.restartsOffset == 0 { current = 0; return } // empty block
        try parse(at: block.restart(0))
    }

    /// Positions at the last entry.
    package func seekToLast() throws(LSMError) {
        keyCount = 0
        if block.restartsOffset == 0 { current = 0; return }
        try parse(at: block.restart(block.numRestarts - 1))
        while nextOffset < block.restartsOffset { try parse(at: nextOffset) }
    }

    package func next() throws(LSMError) {
        guard isValid else { return }
        if nextOffset >= block.restartsOffset { current = block.restartsOffset; return }
        try parse(at: nextOffset)
    }

    /// Moves to the previous entry: back to the last restart point before the current entry,
    /// then forward to the entry just before it (prefix compression decodes only forward).
    package func prev() throws(LSMError) {
        guard isValid else { return }
        let original = current
        if block.restart(0) >= original { current = block.restartsOffset; return }
        var lo = 0, hi = block.numRestarts - 1   // last restart < original
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if block.restart(mid) < original { lo = mid } else { hi = mid - 1 }
        }
        keyCount = 0
        try parse(at: block.restart(lo))
        while nextOffset < original { try parse(at: nextOffset) }
    }

    /// Positions at the first entry with key >= target.
    package func seek(_ target: [UInt8]) throws(LSMError) {
        var failure: LSMError?
        target.withUnsafeBytes { t in
            do throws(LSMError) { try seek(raw: t) } catch { failure = error }
        }
        if let failure { throw failure }
    }

    /// `seek` with the target given in place.
    package func seek(raw t: UnsafeRawBufferPointer) throws(LSMError) {
        let end = block.restartsOffset
        if end == 0 { current = 0; return }
        let d = block.bytes
        // Binary search over the restart points, comparing their (unshared) keys in place.
        var lo = 0, hi = block.numRestarts - 1
        if let pf = block.restartPrefixes {
            // Narrowed on the prefixes first: restarts before the first prefix >= the target's
            // hold smaller keys, those whose prefix is larger hold larger keys; only restarts
            // with an equal prefix need their keys compared.
            let tp = SkipList.prefix(of: t)
            var a = 0, b = block.numRestarts
            while a < b { let m = (a + b) / 2; if pf[m] < tp { a = m + 1 } else { b = m } }
            var e = a
            while e < block.numRestarts && pf[e] == tp { e += 1 }
            lo = max(a - 1, 0); hi = max(e - 1, lo)
        }
        while lo < hi { // last restart whose key < target
            let mid = (lo + hi + 1) / 2
            let off = block.restart(mid)
            guard let (shared, unshared, _, p) = Self.header(d, at: off, end: end), shared == 0,
                  unshared >= LSMFormat.internalKeyTrailerSize else {
                current = end
                throw LSMError.corrupt("\(name): malformed entry at \(off)")
            }
            if compare(UnsafeRawBufferPointer(rebasing: d[p..<(p + unshared)]), t) < 0 { lo = mid } else { hi = mid - 1 }
        }
        // Forward from that restart to the first key >= target, comparing the key as it is
        // rebuilt in the buffer.
        keyCount = 0
        try parse(at: block.restart(lo))
        while compare(UnsafeRawBufferPointer(start: keyBuffer, count: keyCount), t) < 0 {
            if nextOffset >= end { current = end; return }
            try parse(at: nextOffset)
        }
    }

    @inline(__always)
    private func compare(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Int {
        if let rawCompare { return rawCompare(a, b) }
        return InternalKey.compare(a, b)
    }
}
