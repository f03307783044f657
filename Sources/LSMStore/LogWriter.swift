import KVIMR
import LSMCommon

/// Writes records in the log format (docs/format/wal.md) shared by the WAL and the manifest.
/// Not thread-safe: its owner serializes calls.
package struct LogWriter {
    package let file: FileNumber
    /// Bytes already used in the current 32 KiB block.
    package private(set) var blockOffset: Int
    /// Bytes of the log so far, including those still in `pending`.
    package private(set) var bytesWritten: UInt64 = 0
    /// Framed bytes not yet handed to KVIMR (`addBuffered`); `flush` hands them over. KVIMR
    /// keeps appended bytes in memory until a sync anyway, so buffering them here first loses
    /// nothing on a crash and saves one KVIMR call (and its locking) per record.
    private var pending: [UInt8] = []
    /// `addBuffered` hands the buffer to KVIMR once it holds this much.
    package static let bufferLimit = 256 << 10

    package init(file: FileNumber, existingSize: UInt64 = 0) {
        self.file = file
        self.blockOffset = Int(existingSize % UInt64(LSMFormat.logBlockSize))
    }

    /// Frames `payload` into fragments. Byte layout of each fragment:
    ///   [masked crc32c(type ++ data): 4 LE][length: 2 LE][type: 1][data: length]
    /// A block tail shorter than a header is zero-filled.
    package mutating func frame(_ payload: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        frame(payload, into: &out)
        return out
    }

    /// Appends the fragments of `payload` to `out` (layout as in `frame(_:)`).
    package mutating func frame(_ payload: [UInt8], into out: inout [UInt8]) {
        let blockSize = LSMFormat.logBlockSize, header = LSMFormat.logHeaderSize
        let need = out.count + payload.count + header * (payload.count / blockSize + 2)
        if need > out.capacity { out.reserveCapacity(max(need, 2 * out.capacity)) } // geometric growth
        var pos = 0
        var begin = true
        repeat {
            let leftover = blockSize - blockOffset
            if leftover < header {
                out.append(contentsOf: repeatElement(0, count: leftover))
                blockOffset = 0
            }
            let avail = blockSize - blockOffset - header
            let n = min(avail, payload.count - pos)
            let end = pos + n == payload.count
            let type: LSMFormat.RecordType = begin && end ? .full : begin ? .first : end ? .last : .middle
            var crc = withUnsafeBytes(of: type.rawValue) { CRC32C.update(0, $0) }
            crc = payload.withUnsafeBytes { CRC32C.update(crc, UnsafeRawBufferPointer(rebasing: $0[pos..<(pos + n)])) }
            out.appendLE(CRC32C.mask(crc))
            out.appendLE(UInt16(n))
            out.append(type.rawValue)
            out.append(contentsOf: payload[pos..<(pos + n)])
            blockOffset += header + n
            pos += n
            begin = false
        } while pos < payload.count
    }

    /// Appends one record to the file (buffered by KVIMR until synced).
    package mutating func add(_ payload: [UInt8], kvimr: KVIMR) throws(LSMError) {
        try flush(kvimr: kvimr)
        let bytes = frame(payload)
        try kvimr.appendBytes(file, bytes)
        bytesWritten += UInt64(bytes.count)
    }

    /// Appends one record to the in-memory buffer, handing the buffer to KVIMR once it is
    /// large. If that hand-over fails, this record is taken back out (the log is as before the
    /// call, apart from earlier buffered records, which stay pending).
    package mutating func addBuffered(_ payload: [UInt8], kvimr: KVIMR) throws(LSMError) {
        let saved = (pending.count, blockOffset)
        var buf = pending   // moved out and back: frame(into:) mutates self too
        pending = []
        frame(payload, into: &buf)
        pending = buf
        let added = pending.count - saved.0
        bytesWritten += UInt64(added)
        guard pending.count >= LogWriter.bufferLimit else { return }
        do throws(LSMError) { try flush(kvimr: kvimr) } catch {
            pending.removeSubrange(saved.0...)
            blockOffset = saved.1
            bytesWritten -= UInt64(added)
            throw error
        }
    }

    /// Hands the buffered records to KVIMR (before a sync or seal of the file).
    package mutating func flush(kvimr: KVIMR) throws(LSMError) {
        guard !pending.isEmpty else { return }
        try kvimr.appendBytes(file, pending)
        pending.removeAll(keepingCapacity: true)
    }
}

