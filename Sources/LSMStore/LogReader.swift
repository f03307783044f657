import LSMCommon

/// Parses a log file (docs/format/wal.md) into its records.
///
/// A log cut short by a crash is a torn tail: the records before the cut are returned and the
/// rest is dropped. Anything else is corruption and fails with `.corrupt`: a checksum mismatch
/// on a record the file holds whole (KVIMR never exposes bytes it did not finish writing, so a
/// complete record with a bad checksum was damaged, not torn — dropping it would silently lose
/// an acknowledged write or manifest edit), fragments out of order, and any damage followed by
/// an intact record (replaying around a hole would break atomicity).
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
        func corrupt(_ at: Int, _ why: String) -> LSMError {
            LSMError.corrupt("\(name): corrupt record at offset \(at) (\(why))")
        }
        while pos < data.count {
            let leftover = blockSize - pos % blockSize
            if leftover < header { pos += leftover; continue }
            guard let frag = fragment(data, at: pos) else {
                guard isCutShort(data, at: pos) else { throw corrupt(pos, "bad header or checksum") }
                return try damaged(pos, next: nil, "cut short")
            }
            let next = pos + header + frag.length
            switch frag.type {
            case .full:
                if pending != nil { throw corrupt(pos, "FULL inside a fragmented record") }
                records.append(Array(data[(pos + header)..<next]))
            case .first:
                if pending != nil { throw corrupt(pos, "FIRST inside a fragmented record") }
                pending = Array(data[(pos + header)..<next])
            case .middle:
                guard pending != nil else { throw corrupt(pos, "MIDDLE without FIRST") }
                pending!.append(contentsOf: data[(pos + header)..<next])
            case .last:
                guard var p = pending else { throw corrupt(pos, "LAST without FIRST") }
                p.append(contentsOf: data[(pos + header)..<next])
                records.append(p)
                pending = nil
            case .zero:
                // Zero-filled space to the end of the file is an unwritten tail.
                guard data[pos...].allSatisfy({ $0 == 0 }) else { throw corrupt(pos, "zero record") }
                return records
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

    /// Whether the (unreadable) fragment at `pos` is one a crash cut short: its header or its
    /// data runs past the end of the file. If the bytes the file does hold check out against
    /// the stored checksum, or intact fragments run from somewhere after its header exactly to
    /// the end of the file, the record was whole and its length field is what was damaged.
    /// (The price: a torn record whose unfinished payload happens to end in well-formed log
    /// fragments reaching exactly to the cut — a log stored as data, cut at a record
    /// boundary of its own — is reported as corrupt instead of dropped; never the reverse.)
    static func isCutShort(_ data: [UInt8], at pos: Int) -> Bool {
        let header = LSMFormat.logHeaderSize
        if pos + header > data.count { return true }
        let length = Int(data.readLE(UInt16.self, at: pos + 4))
        let blockLeft = LSMFormat.logBlockSize - pos % LSMFormat.logBlockSize
        guard pos + header + length > data.count, header + length <= blockLeft else { return false }
        let crc = data.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[(pos + 6)...])) }
        if CRC32C.mask(crc) == data.readLE(UInt32.self, at: pos) { return false }
        for c in (pos + header)..<data.count where chainsToEnd(data, from: c) { return false }
        return true
    }

    /// Whether intact non-ZERO fragments start at `c` and follow one another (across block
    /// tails) exactly to the end of `data`.
    static func chainsToEnd(_ data: [UInt8], from c: Int) -> Bool {
        let blockSize = LSMFormat.logBlockSize, header = LSMFormat.logHeaderSize
        var p = c
        while p < data.count {
            let left = blockSize - p % blockSize
            if left < header { p += left; continue }
            guard let f = fragment(data, at: p), f.type != .zero else { return false }
            p += header + f.length
        }
        return p == data.count
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
