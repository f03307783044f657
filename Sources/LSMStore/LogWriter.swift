import KVIMR
import LSMCommon

/// Writes records in the log format (docs/format/wal.md) shared by the WAL and the manifest.
/// Not thread-safe: its owner serializes calls.
package struct LogWriter {
    package let file: FileNumber
    /// Bytes already used in the current 32 KiB block.
    package private(set) var blockOffset: Int
    package private(set) var bytesWritten: UInt64 = 0

    package init(file: FileNumber, existingSize: UInt64 = 0) {
        self.file = file
        self.blockOffset = Int(existingSize % UInt64(LSMFormat.logBlockSize))
    }

    /// Frames `payload` into fragments. Byte layout of each fragment:
    ///   [masked crc32c(type ++ data): 4 LE][length: 2 LE][type: 1][data: length]
    /// A block tail shorter than a header is zero-filled.
    package mutating func frame(_ payload: [UInt8]) -> [UInt8] {
        let blockSize = LSMFormat.logBlockSize, header = LSMFormat.logHeaderSize
        var out: [UInt8] = []
        out.reserveCapacity(payload.count + header * (payload.count / blockSize + 2))
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
        return out
    }

    /// Appends one record to the file (buffered by KVIMR until synced).
    package mutating func add(_ payload: [UInt8], kvimr: KVIMR) throws(LSMError) {
        let bytes = frame(payload)
        try kvimr.appendBytes(file, bytes)
        bytesWritten += UInt64(bytes.count)
    }
}

