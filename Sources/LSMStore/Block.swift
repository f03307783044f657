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

/// Iterates the entries of a block in order; keys are compared with `compare`.
package final class BlockIterator {
    let block: Block
    let compare: ([UInt8], [UInt8]) -> Int
    /// Names the block in error messages (built only on error).
    let table: UInt64
    let blockOffset: UInt64?
    var name: String { blockOffset.map { "table \(table) block at \($0)" } ?? "table \(table) index" }
    package private(set) var key: [UInt8] = []
    package private(set) var value: [UInt8] = []
    private var current: Int       // offset of the current entry; == restartsOffset when invalid
    private var nextOffset: Int

    /// `blockOffset` nil: the table's index block.
    package init(_ block: Block, table: UInt64, blockOffset: UInt64?, compare: @escaping ([UInt8], [UInt8]) -> Int) {
        self.block = block; self.compare = compare; self.table = table; self.blockOffset = blockOffset
        current = block.restartsOffset; nextOffset = block.restartsOffset
    }

    package var isValid: Bool { current < block.restartsOffset }

    /// Decodes the entry at `offset` given the previous key; false if malformed.
    private func parse(at offset: Int) throws(LSMError) {
        var r = ByteReader(block.data, from: offset, to: block.restartsOffset)
        guard let shared = r.length(), let unshared = r.length(), let vlen = r.length(),
              shared <= key.count, let delta = r.bytes(unshared), let v = r.bytes(vlen) else {
            current = block.restartsOffset
            throw LSMError.corrupt("\(name): malformed entry at \(offset)")
        }
        key.removeSubrange(shared...)
        key.append(contentsOf: delta)
        guard key.count >= LSMFormat.internalKeyTrailerSize else { // every block key is an internal key
            current = block.restartsOffset
            throw LSMError.corrupt("\(name): short key at \(offset)")
        }
        value = v
        current = offset
        nextOffset = r.offset
    }

    package func seekToFirst() throws(LSMError) {
        key = []
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
        var lo = 0, hi = block.numRestarts - 1
        while lo < hi { // last restart whose key < target
            let mid = (lo + hi + 1) / 2
            key = []
            try parse(at: block.restart(mid))
            if compare(key, target) < 0 { lo = mid } else { hi = mid - 1 }
        }
        key = []
        try parse(at: block.restart(lo))
        while isValid && compare(key, target) < 0 { try next() }
    }
}
