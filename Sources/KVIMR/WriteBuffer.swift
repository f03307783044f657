/// The buffered tail of one file: bytes `[start, end)` of the file, kept in memory.
///
/// Invariant (with the file's record `rec`): `start <= rec.size <= end`. Bytes below `start`
/// are on tracks; bytes in `[start, rec.size)` are on tracks *and* still buffered (the partial
/// last sector, so a later write-out can rewrite that sector whole); bytes in `[rec.size, end)`
/// exist only here.
struct FileBuffer: Sendable {
    var start: UInt64
    var bytes: [UInt8] = []

    init(start: UInt64) { self.start = start }

    var end: UInt64 { start + UInt64(bytes.count) }

    mutating func append(_ p: UnsafeRawBufferPointer) { bytes.append(contentsOf: p) }

    /// Memory the buffer holds (its allocation, not just its bytes).
    var memoryBytes: UInt64 { UInt64(bytes.capacity) }

    /// Forgets the bytes below `offset` (no-op if `offset <= start`). A buffer left mostly
    /// empty gets a right-sized allocation, so written-out tracks do not stay resident.
    mutating func dropPrefix(upTo offset: UInt64) {
        guard offset > start else { return }
        let n = Int(min(offset, end) - start)
        let left = bytes.count - n
        if bytes.capacity > 2 * left + (64 << 10) {
            bytes = Array(bytes[n...])
        } else {
            bytes.removeFirst(n)
        }
        start += UInt64(n)
    }

    /// Puts `prefix` (the bytes just below `start`) back in front.
    mutating func prepend(_ prefix: [UInt8]) {
        bytes.insert(contentsOf: prefix, at: 0)
        start -= UInt64(prefix.count)
    }

    /// Copies bytes `[offset, offset + dst.count)` (all inside the buffer) into `dst`.
    func copy(from offset: UInt64, into dst: UnsafeMutableRawBufferPointer) {
        precondition(offset >= start && offset + UInt64(dst.count) <= end)
        guard dst.count > 0 else { return }
        let from = Int(offset - start)
        bytes.withUnsafeBytes { src in
            dst.copyMemory(from: UnsafeRawBufferPointer(rebasing: src[from..<(from + dst.count)]))
        }
    }
}
