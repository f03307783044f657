import LSMCommon

/// Parses a log file (docs/format/wal.md) into its records.
///
/// Damage at the end of the log (a record cut short or never completed by a crash) is a torn
/// tail: the records before it are returned and the rest is dropped. Damage followed by any
/// intact record is a corrupt middle and fails with `.corrupt` — data after it was acknowledged
/// and replaying around the hole would break atomicity.
package enum LogReader {
    package static func records(_ data: [UInt8], name: String) throws(LSMError) -> [[UInt8]] {
        let blockSize = LSMFormat.logBlockSize, header = LSMFormat.logHeaderSize
        var records: [[UInt8]] = []
        var pending: [UInt8]? = nil
        var pos = 0
        func damaged(_ at: Int, next: Int?, _ why: String) throws(LSMError) -> [[UInt8]] {
            if intactRecordExists(data, after: at, candidate: next) {
                throw LSMError.corrupt("\(name): corrupt record at offset \(at) (\(why)) followed by intact records")
            }
            return records // torn tail: drop the rest
        }
        while pos < data.count {
            let leftover = blockSize - pos % blockSize
            if leftover < header { pos += leftover; continue }
            guard let frag = fragment(data, at: pos) else {
                return try damaged(pos, next: nil, "bad header or checksum")
            }
            let next = pos + header + frag.length
            switch frag.type {
            case .full:
                if pending != nil { return try damaged(pos, next: next, "FULL inside a fragmented record") }
                records.append(Array(data[(pos + header)..<next]))
            case .first:
                if pending != nil { return try damaged(pos, next: next, "FIRST inside a fragmented record") }
                pending = Array(data[(pos + header)..<next])
            case .middle:
                guard pending != nil else { return try damaged(pos, next: next, "MIDDLE without FIRST") }
                pending!.append(contentsOf: data[(pos + header)..<next])
            case .last:
                guard var p = pending else { return try damaged(pos, next: next, "LAST without FIRST") }
                p.append(contentsOf: data[(pos + header)..<next])
                records.append(p)
                pending = nil
            case .zero:
                return try damaged(pos, next: nil, "zero record")
            }
            pos = next
        }
        return records // a pending incomplete record is a torn tail
    }

    struct Fragment { var type: LSMFormat.RecordType; var length: Int }

    /// The fragment at `pos` if its header is sane and its checksum matches.
    static func fragment(_ data: [UInt8], at pos: Int) -> Fragment? {
        let header = LSMFormat.logHeaderSize
        guard pos + header <= data.count else { return nil }
        let stored = data.readLE(UInt32.self, at: pos)
        let length = Int(data.readLE(UInt16.self, at: pos + 4))
        guard let type = LSMFormat.RecordType(rawValue: data[pos + 6]) else { return nil }
        if type == .zero { return length == 0 && stored == 0 ? Fragment(type: .zero, length: 0) : nil }
        let blockLeft = LSMFormat.logBlockSize - pos % LSMFormat.logBlockSize
        guard header + length <= blockLeft, pos + header + length <= data.count else { return nil }
        let crc = data.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[(pos + 6)..<(pos + header + length)])) }
        guard CRC32C.mask(crc) == stored else { return nil }
        return Fragment(type: type, length: length)
    }

    /// Whether an intact non-zero fragment starts at `candidate` or at any later block boundary.
    static func intactRecordExists(_ data: [UInt8], after pos: Int, candidate: Int?) -> Bool {
        if let c = candidate, c < data.count, let f = fragment(data, at: c), f.type != .zero { return true }
        var b = (pos / LSMFormat.logBlockSize + 1) * LSMFormat.logBlockSize
        while b < data.count {
            if let f = fragment(data, at: b), f.type != .zero { return true }
            b += LSMFormat.logBlockSize
        }
        return false
    }
}
