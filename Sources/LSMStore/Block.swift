import LSMCommon

/// A decoded, checksum-verified block (contents without the trailer). Immutable.
package final class Block: Sendable {
    package let data: [UInt8]
    let restartsOffset: Int
    let numRestarts: Int

    /// Validates the restart array; nil if the block is malformed.
    package init?(_ data: [UInt8]) {
        guard data.count >= 4 else { return nil }
        let n = Int(data.readLE(UInt32.self, at: data.count - 4))
        guard n >= 1, n <= (data.count - 4) / 4 else { return nil }
        let ro = data.count - 4 - 4 * n
        for i in 0..<n where Int(data.readLE(UInt32.self, at: ro + 4 * i)) > ro { return nil }
        self.data = data; self.restartsOffset = ro; self.numRestarts = n
    }

    func restart(_ i: Int) -> Int { Int(data.readLE(UInt32.self, at: restartsOffset + 4 * i)) }

    /// Wraps raw block bytes + trailer read from a file: verifies the CRC and decodes.
    /// Byte layout of the trailer: [compression type: 1][masked crc32c(contents ++ type): 4 LE]
    package static func verified(_ raw: [UInt8], what: @autoclosure () -> String) throws(LSMError) -> Block {
        let t = LSMFormat.blockTrailerSize
        guard raw.count >= t else { throw LSMError.corrupt("\(what()): block too short") }
        let stored = raw.readLE(UInt32.self, at: raw.count - 4)
        let crc = raw.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[0..<(raw.count - 4)])) }
        guard CRC32C.mask(crc) == stored else { throw LSMError.corrupt("\(what()): block checksum mismatch") }
        guard raw[raw.count - t] == LSMFormat.compressionNone else {
            throw LSMError.corrupt("\(what()): unknown compression type \(raw[raw.count - t])")
        }
        guard let b = Block(Array(raw[0..<(raw.count - t)])) else { throw LSMError.corrupt("\(what()): malformed block") }
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

/// Iterates the entries of a block in order; keys are compared with `compare` (and its raw
/// form `rawCompare`, which seeks use to compare restart keys in place).
package final class BlockIterator {
    package typealias RawCompare = (UnsafeRawBufferPointer, UnsafeRawBufferPointer) -> Int
    let block: Block
    let compare: ([UInt8], [UInt8]) -> Int
    let rawCompare: RawCompare
    /// Names the block in error messages (built only on error).
    let table: UInt64
    let blockOffset: UInt64?
    var name: String { blockOffset.map { "table \(table) block at \($0)" } ?? "table \(table) index" }
    package private(set) var key: [UInt8] = []
    /// The current value (copied out of the block on each access).
    package var value: [UInt8] { Array(block.data[valueOffset..<(valueOffset + valueLength)]) }
    private var valueOffset = 0
    private var valueLength = 0
    private var current: Int       // offset of the current entry; == restartsOffset when invalid
    private var nextOffset: Int

    /// `blockOffset` nil: the table's index block.
    package init(_ block: Block, table: UInt64, blockOffset: UInt64?, compare: @escaping ([UInt8], [UInt8]) -> Int,
                 rawCompare: @escaping RawCompare = InternalKey.compare) {
        self.block = block; self.compare = compare; self.rawCompare = rawCompare
        self.table = table; self.blockOffset = blockOffset
        current = block.restartsOffset; nextOffset = block.restartsOffset
    }

    package var isValid: Bool { current < block.restartsOffset }

    /// Calls `body` with the value bytes in place (no copy).
    package func withValue<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
        block.data.withUnsafeBytes { body(UnsafeRawBufferPointer(rebasing: $0[valueOffset..<(valueOffset + valueLength)])) }
    }

    /// Decodes the three varint lengths of the entry at `offset`: (shared, unshared, value
    /// length, offset of the key delta), or nil if malformed or running past `end`.
    @inline(__always)
    private static func header(_ d: UnsafeRawBufferPointer, at offset: Int, end: Int) -> (Int, Int, Int, Int)? {
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

    /// Decodes the entry at `offset` given the previous key.
    private func parse(at offset: Int) throws(LSMError) {
        let end = block.restartsOffset
        guard let (shared, unshared, vlen, p) = block.data.withUnsafeBytes({ Self.header($0, at: offset, end: end) }),
              shared <= key.count else {
            current = block.restartsOffset
            throw LSMError.corrupt("\(name): malformed entry at \(offset)")
        }
        key.removeSubrange(shared...)
        key.append(contentsOf: block.data[p..<(p + unshared)])
        guard key.count >= LSMFormat.internalKeyTrailerSize else { // every block key is an internal key
            current = block.restartsOffset
            throw LSMError.corrupt("\(name): short key at \(offset)")
        }
        valueOffset = p + unshared
        valueLength = vlen
        current = offset
        nextOffset = p + unshared + vlen
    }

    package func seekToFirst() throws(LSMError) {
        key.removeAll(keepingCapacity: true)
        if block.restartsOffset == 0 { current = 0; return } // empty block
        try parse(at: block.restart(0))
    }

    package func next() throws(LSMError) {
        guard isValid else { return }
        if nextOffset >= block.restartsOffset { current = block.restartsOffset; return }
        try parse(at: nextOffset)
    }

    /// Positions at the first entry with key >= target.
    package func seek(_ target: [UInt8]) throws(LSMError) {
        if block.restartsOffset == 0 { current = 0; return }
        let end = block.restartsOffset
        // Binary search over the restart points, comparing their (unshared) keys in place.
        var lo = 0, hi = block.numRestarts - 1
        var bad = -1
        target.withUnsafeBytes { t in
            block.data.withUnsafeBytes { d in
                while lo < hi { // last restart whose key < target
                    let mid = (lo + hi + 1) / 2
                    let off = block.restart(mid)
                    guard let (shared, unshared, _, p) = Self.header(d, at: off, end: end), shared == 0,
                          unshared >= LSMFormat.internalKeyTrailerSize else { bad = off; return }
                    if rawCompare(UnsafeRawBufferPointer(rebasing: d[p..<(p + unshared)]), t) < 0 { lo = mid } else { hi = mid - 1 }
                }
            }
        }
        if bad >= 0 {
            current = block.restartsOffset
            throw LSMError.corrupt("\(name): malformed entry at \(bad)")
        }
        key.removeAll(keepingCapacity: true)
        try parse(at: block.restart(lo))
        while isValid && keyCompare(target) < 0 { try next() }
    }

    /// `rawCompare(key, target)` without copying either.
    private func keyCompare(_ target: [UInt8]) -> Int {
        key.withUnsafeBytes { k in target.withUnsafeBytes { t in rawCompare(k, t) } }
    }
}
