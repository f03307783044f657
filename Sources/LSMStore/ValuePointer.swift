import LSMCommon

/// Where a value-log record lies (docs/format/vlog.md, "Pointer"): the tree keeps this as the
/// value of an entry of kind `ValueKind.valuePointer` (memtable, WAL batches, SSTables alike).
package struct ValuePointer: Sendable, Hashable, Comparable {
    /// KVIMR file number of the segment.
    package var segment: UInt64
    /// Offset of the record's first (header) byte in the segment.
    package var offset: UInt64
    /// The whole record: header + key + value.
    package var length: UInt32

    package init(segment: UInt64, offset: UInt64, length: UInt32) {
        self.segment = segment; self.offset = offset; self.length = length
    }

    /// One past the record's last byte.
    package var end: UInt64 { offset + UInt64(length) }

    /// Byte layout: [varint64 segment][varint64 offset][varint32 length] (at most 25 bytes).
    package func encode() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(VLogFormat.maxPointerSize)
        encode(into: &out)
        return out
    }

    /// Appends the encoding (layout as in `encode()`).
    package func encode(into out: inout [UInt8]) {
        out.appendVarint(segment)
        out.appendVarint(offset)
        out.appendVarint(UInt64(length))
    }

    /// The pointer encoded in `bytes`, or nil if they are not exactly one well-formed pointer
    /// (truncated, trailing bytes, a length that does not fit 32 bits or is shorter than a header).
    package static func decode(_ bytes: UnsafeRawBufferPointer) -> ValuePointer? {
        var at = 0
        guard let s = bytes.readVarint(at: &at), let o = bytes.readVarint(at: &at),
              let l = bytes.readVarint(at: &at), at == bytes.count,
              l <= UInt64(UInt32.max), l >= UInt64(VLogFormat.headerSize) else { return nil }
        let (_, overflow) = o.addingReportingOverflow(l)
        guard !overflow else { return nil }
        return ValuePointer(segment: s, offset: o, length: UInt32(l))
    }

    package static func decode(_ bytes: [UInt8]) -> ValuePointer? {
        bytes.withUnsafeBytes { decode($0) }
    }

    /// Segment, then offset: the order in which a batch of reads walks the log.
    package static func < (a: ValuePointer, b: ValuePointer) -> Bool {
        a.segment != b.segment ? a.segment < b.segment : a.offset < b.offset
    }
}
