import KVIMR
import LSMCommon

/// One record of a segment as `VLogSegmentReader` finds it.
package struct VLogRecord: Sendable {
    /// The pointer that addresses this record.
    package var pointer: ValuePointer
    package var key: [UInt8]
    package var value: [UInt8]
}

/// Walks a value-log segment's records in order (GC and fsck). Reads the segment in large
/// chunks. A record cut short by the segment's end is a torn tail (the head when the store
/// crashed): it ends the walk and sets `tornTail`. A record whose lengths are impossible or
/// whose checksum fails is `.corrupt` (nothing after it can be trusted to be framed).
package struct VLogSegmentReader {
    package let segment: UInt64
    package let size: UInt64
    private let kvimr: KVIMR
    private var chunk: [UInt8] = []
    private var chunkStart: UInt64 = 0
    /// Offset of the next record.
    package private(set) var offset: UInt64 = 0
    /// Bytes at the end that do not form a whole record (0 unless the walk ended on a torn tail).
    package private(set) var tornTail: UInt64 = 0
    static let chunkBytes = 1 << 20

    package init(kvimr: KVIMR, segment: UInt64) throws(LSMError) {
        guard let size = kvimr.size(segment) else { throw LSMError(.io, "value-log segment \(segment) does not exist") }
        self.kvimr = kvimr; self.segment = segment; self.size = size
    }

    /// The next record, or nil at the end of the segment (or at a torn tail).
    package mutating func next() throws(LSMError) -> VLogRecord? {
        guard offset < size else { return nil }
        guard let head = try bytes(at: offset, count: VLogFormat.headerSize) else { return tail() }
        guard let h = head.withUnsafeBytes({ VLogFormat.header($0) }) else {
            throw LSMError.corrupt("value-log segment \(segment): impossible record lengths at offset \(offset)")
        }
        guard let rec = try bytes(at: offset, count: h.recordLength) else { return tail() }
        let p = ValuePointer(segment: segment, offset: offset, length: UInt32(h.recordLength))
        switch VLogFormat.decodeRecord(rec) {
        case .success(let (k, v)):
            offset += UInt64(h.recordLength)
            return VLogRecord(pointer: p, key: k, value: v)
        case .failure:
            throw LSMError.corrupt("value-log segment \(segment): checksum mismatch in the record at offset \(offset)")
        }
    }

    private mutating func tail() -> VLogRecord? {
        tornTail = size - offset
        offset = size
        return nil
    }

    /// `count` bytes at `at`, or nil if they pass the segment's end.
    private mutating func bytes(at: UInt64, count: Int) throws(LSMError) -> [UInt8]? {
        guard at + UInt64(count) <= size else { return nil }
        let chunkEnd = chunkStart + UInt64(chunk.count)
        if at < chunkStart || at + UInt64(count) > chunkEnd {
            let n = Int(min(size - at, UInt64(max(count, VLogSegmentReader.chunkBytes))))
            chunk = try kvimr.readExact(segment, at: at, count: n)
            chunkStart = at
        }
        let from = Int(at - chunkStart)
        return Array(chunk[from..<(from + count)])
    }
}
