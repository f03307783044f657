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

    /// The next record, or nil at the end of the segment (or at a torn tail). The record is
    /// framed and checked in place in the chunk; only its key and value are copied out.
    package mutating func next() throws(LSMError) -> VLogRecord? {
        guard offset < size else { return nil }
        guard let at = try load(offset, count: VLogFormat.headerSize) else { return tail() }
        guard let h = chunk.withUnsafeBytes({ VLogFormat.header(UnsafeRawBufferPointer(rebasing: $0[at...])) }) else {
            throw LSMError.corrupt("value-log segment \(segment): impossible record lengths at offset \(offset)")
        }
        guard let from = try load(offset, count: h.recordLength) else { return tail() }
        let decoded = chunk.withUnsafeBytes { raw in
            let rec = UnsafeRawBufferPointer(rebasing: raw[from..<(from + h.recordLength)])
            return VLogFormat.verify(rec, expectedKey: nil).map { c in (Array(rec[c.keyRange]), Array(rec[c.valueRange])) }
        }
        guard case .success(let (k, v)) = decoded else {
            throw LSMError.corrupt("value-log segment \(segment): checksum mismatch in the record at offset \(offset)")
        }
        let p = ValuePointer(segment: segment, offset: offset, length: UInt32(h.recordLength))
        offset += UInt64(h.recordLength)
        return VLogRecord(pointer: p, key: k, value: v)
    }

    private mutating func tail() -> VLogRecord? {
        tornTail = size - offset
        offset = size
        return nil
    }

    /// Makes the chunk hold the `count` bytes at `at` and returns where they start in it, or
    /// nil if they pass the segment's end.
    private mutating func load(_ at: UInt64, count: Int) throws(LSMError) -> Int? {
        guard at + UInt64(count) <= size else { return nil }
        let chunkEnd = chunkStart + UInt64(chunk.count)
        if at < chunkStart || at + UInt64(count) > chunkEnd {
            let n = Int(min(size - at, UInt64(max(count, VLogSegmentReader.chunkBytes))))
            chunk = try kvimr.readExact(segment, at: at, count: n)
            chunkStart = at
        }
        return Int(at - chunkStart)
    }
}
