import LSMCommon

/// Every constant of the value log in one place (docs/format/vlog.md), and its record codec.
///
/// A segment is a KVIMR file of kind `.vlog` holding records back to back:
///
///     record := checksum: uint32 LE   masked CRC32C of everything after it (rest of header, key, value)
///               keyLength: uint32 LE
///               valueLength: uint32 LE
///               key: keyLength bytes
///               value: valueLength bytes
package enum VLogFormat {
    /// checksum (4) + key length (4) + value length (4).
    package static let headerSize = 12
    /// The longest `ValuePointer` encoding: varint64 + varint64 + varint32.
    package static let maxPointerSize = 10 + 10 + 5
    /// KVIMR level the segments are created with (KVIMR places `.vlog` files by kind).
    package static let segmentLevel = 0
    /// Limits a decoder accepts (the write path enforces smaller ones: `WriteLimits`).
    package static let maxKeyBytes = 1 << 20
    package static let maxValueBytes = 1 << 30

    /// The size of the record holding `keyCount` + `valueCount` bytes.
    package static func recordSize(keyCount: Int, valueCount: Int) -> Int { headerSize + keyCount + valueCount }

    /// Appends one record to `out`. Byte layout:
    ///   [masked crc32c(bytes 4..<end): 4 LE][key length: 4 LE][value length: 4 LE][key][value]
    package static func appendRecord(key: [UInt8], value: [UInt8], to out: inout [UInt8]) {
        appendHeader(key: key, value: value, to: &out)
        out.append(contentsOf: value)
    }

    /// Appends a record's header and key only (layout as in `appendRecord`; the checksum
    /// covers `value` too): the caller appends `value` right after them.
    package static func appendHeader(key: [UInt8], value: [UInt8], to out: inout [UInt8]) {
        let start = out.count
        out.appendLE(UInt32(0)) // checksum, filled in below
        out.appendLE(UInt32(key.count))
        out.appendLE(UInt32(value.count))
        out.append(contentsOf: key)
        var crc = out.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[(start + 4)...])) }
        crc = value.withUnsafeBytes { CRC32C.update(crc, $0) }
        out.withUnsafeMutableBytes { $0.storeBytes(of: CRC32C.mask(crc).littleEndian, toByteOffset: start, as: UInt32.self) }
    }

    /// One record as `encodeRecord` lays it out.
    package static func encodeRecord(key: [UInt8], value: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(recordSize(keyCount: key.count, valueCount: value.count))
        appendRecord(key: key, value: value, to: &out)
        return out
    }

    /// The parsed header of a record: where its key and value lie relative to the record start.
    package struct Header: Sendable, Equatable {
        package var storedChecksum: UInt32
        package var keyLength: Int
        package var valueLength: Int
        package var recordLength: Int { headerSize + keyLength + valueLength }
        package var keyRange: Range<Int> { headerSize..<(headerSize + keyLength) }
        package var valueRange: Range<Int> { (headerSize + keyLength)..<recordLength }
    }

    /// The header at the start of `bytes`, or nil if fewer than `headerSize` bytes or the lengths
    /// are beyond the decoder's limits. Says nothing about the checksum.
    package static func header(_ bytes: UnsafeRawBufferPointer) -> Header? {
        guard bytes.count >= headerSize else { return nil }
        let k = Int(bytes.readLE(UInt32.self, at: 4)), v = Int(bytes.readLE(UInt32.self, at: 8))
        guard k <= maxKeyBytes, v <= maxValueBytes else { return nil }
        return Header(storedChecksum: bytes.readLE(UInt32.self, at: 0), keyLength: k, valueLength: v)
    }

    /// Why a record failed to decode.
    package enum Damage: Error, Sendable, Equatable {
        case truncated          // shorter than its header says (or than a header)
        case badLengths         // lengths beyond the limits or not matching the pointer
        case checksumMismatch
        case keyMismatch
    }

    /// Checks the record that is exactly `bytes` (header, key and value, nothing more):
    /// lengths, checksum, and — when `expectedKey` is given — that its key is that key.
    package static func verify(_ bytes: UnsafeRawBufferPointer, expectedKey: [UInt8]?) -> Result<Header, Damage> {
        guard let h = header(bytes) else { return .failure(bytes.count < headerSize ? .truncated : .badLengths) }
        guard h.recordLength == bytes.count else {
            return .failure(h.recordLength > bytes.count ? .truncated : .badLengths)
        }
        let split = h.keyRange.upperBound
        return check(h, head: UnsafeRawBufferPointer(rebasing: bytes[..<split]),
                     value: UnsafeRawBufferPointer(rebasing: bytes[split...]), expectedKey: expectedKey)
    }

    /// `verify` of a record read in two places: `head` its header and key (exactly), `value`
    /// its value (exactly). For readers that put a value straight where it is wanted
    /// (`Engine.scanPlacing`); the checksum runs over both in record order.
    package static func verify(head: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer,
                               expectedKey: [UInt8]) -> Result<Header, Damage> {
        guard let h = header(head) else { return .failure(head.count < headerSize ? .truncated : .badLengths) }
        guard h.keyRange.upperBound == head.count, h.valueLength == value.count else { return .failure(.badLengths) }
        return check(h, head: head, value: value, expectedKey: expectedKey)
    }

    /// The checks both `verify`s share once the lengths fit: the checksum over the header's
    /// tail, the key and the value, then the key.
    private static func check(_ h: Header, head: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer,
                              expectedKey: [UInt8]?) -> Result<Header, Damage> {
        let crc = CRC32C.update(CRC32C.checksum(UnsafeRawBufferPointer(rebasing: head[4...])), value)
        guard CRC32C.mask(crc) == h.storedChecksum else { return .failure(.checksumMismatch) }
        if let expectedKey, !keyMatches(head, h, expectedKey) { return .failure(.keyMismatch) }
        return .success(h)
    }

    /// Checks a record's first bytes (`prefix`: its header and key at least) without its
    /// checksum: the header's lengths make a record of `recordLength` bytes and its key is
    /// `expectedKey`. For callers that must not read the value (WAL replay of sealed segments).
    package static func verifyPrefix(_ prefix: UnsafeRawBufferPointer, recordLength: Int,
                                     expectedKey: [UInt8]) -> Result<Header, Damage> {
        guard let h = header(prefix), h.recordLength == recordLength else { return .failure(.badLengths) }
        guard keyMatches(prefix, h, expectedKey) else { return .failure(.keyMismatch) }
        return .success(h)
    }

    /// Whether the key of the record starting `bytes` (header `h`) is `key`.
    private static func keyMatches(_ bytes: UnsafeRawBufferPointer, _ h: Header, _ key: [UInt8]) -> Bool {
        guard h.keyLength == key.count, h.keyRange.upperBound <= bytes.count else { return false }
        return key.withUnsafeBytes { compareBytes($0, UnsafeRawBufferPointer(rebasing: bytes[h.keyRange])) == 0 }
    }

    /// Decodes a whole record into (key, value), verifying it (see `verify`).
    package static func decodeRecord(_ bytes: [UInt8], expectedKey: [UInt8]? = nil) -> Result<(key: [UInt8], value: [UInt8]), Damage> {
        bytes.withUnsafeBytes { p in
            verify(p, expectedKey: expectedKey).map { h in
                (Array(p[h.keyRange]), Array(p[h.valueRange]))
            }
        }
    }
}
