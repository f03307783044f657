import KVIMR
import LSMCommon

/// Every on-disk constant of the engine in one place (docs/format/{wal,sstable,manifest}.md).
package enum LSMFormat {
    // MARK: Log format (WAL and manifest), docs/format/wal.md
    /// The log is a sequence of 32 KiB blocks; a record never straddles a block without
    /// being fragmented into FIRST/MIDDLE/LAST pieces.
    package static let logBlockSize = 32 * 1024
    /// checksum (4) + length (2) + type (1).
    package static let logHeaderSize = 7
    package enum RecordType: UInt8 {
        case zero = 0      // preallocated / zero-filled space
        case full = 1
        case first = 2
        case middle = 3
        case last = 4
    }
    /// WriteBatch header: sequence (8) + count (4).
    package static let batchHeaderSize = 12

    // MARK: Internal keys
    /// user key ++ fixed64LE(sequence << 8 | kind).
    package static let internalKeyTrailerSize = 8
    package static let maxSequence: UInt64 = (1 << 56) - 1
    /// The kind used in seek keys: sorts before every real kind of the same sequence.
    package static let seekKind: UInt8 = 0xFF

    // MARK: SSTable, docs/format/sstable.md
    /// Every block is followed by compression type (1) + masked CRC32C (4).
    package static let blockTrailerSize = 5
    package static let compressionNone: UInt8 = 0
    package static let restartInterval = 16
    /// Footer: filter, index and range-del handles (varints), zero padding to 36 bytes,
    /// masked CRC32C of those 36 bytes (4), magic (8).
    package static let footerHandlesSize = 36
    package static let footerSize = 48
    package static let tableMagic: UInt64 = 0x4C53_4D46_5354_4231 // "LSMFSTB1"
    /// Filter block: bit array ++ k (1 byte).
    package static let bloomSeed: UInt32 = 0xBC9F_1D34

    // MARK: Manifest, docs/format/manifest.md
    package enum EditTag: UInt64 {
        case logNumber = 2
        case nextFileNumber = 3
        case lastSequence = 4
        case deletedFile = 6
        case newFile = 7
        /// A value-log segment joins the store (vlog-core): docs/format/vlog.md.
        case vlogSegmentAdded = 10
        /// A value-log segment leaves the store (GC freed it): docs/format/vlog.md.
        case vlogSegmentRemoved = 11
        /// Value-log garbage found by a flush, compaction or GC (vlog-gc): docs/format/vlog.md.
        case vlogGarbage = 16
        /// A GC pass started on a segment (vlog-gc): docs/format/vlog.md.
        case vlogGCVictim = 17
    }
    /// KVIMR root record: magic (4) "LSMR", format version (4), manifest file number (8),
    /// masked CRC32C of the preceding 16 bytes (4).
    package static let rootMagic: UInt32 = 0x524D_534C // "LSMR" little-endian
    package static let rootVersion: UInt32 = 1
    package static let rootSize = 20
    /// A manifest larger than this is rewritten as a fresh snapshot.
    package static let manifestRollBytes: UInt64 = 4 << 20
}

/// The kind of an internal entry (low byte of the trailer).
package enum ValueKind: UInt8, Sendable {
    case delete = 0
    case put = 1
    /// Reserved: value is a pointer into the value log (WiscKey).
    case valuePointer = 2
    /// A range tombstone [user key, value): in WAL batches and SSTable range-del blocks.
    case rangeDelete = 3
}

/// Internal keys: `userKey ++ fixed64LE(seq << 8 | kind)`, ordered by user key ascending,
/// then by trailer descending (newest first).
package enum InternalKey {
    /// Byte layout: [user key bytes][8 bytes little-endian (sequence << 8 | kind)]
    package static func make(_ userKey: [UInt8], _ seq: UInt64, _ kind: UInt8) -> [UInt8] {
        var k = userKey
        k.reserveCapacity(userKey.count + 8)
        k.appendLE(seq << 8 | UInt64(kind))
        return k
    }
    /// Calls `body` with the internal key of `make` built in temporary memory (no array).
    @inline(__always)
    package static func withKey<R>(_ userKey: [UInt8], _ seq: UInt64, _ kind: UInt8,
                                   _ body: (UnsafeRawBufferPointer) -> R) -> R {
        withUnsafeTemporaryAllocation(byteCount: userKey.count + 8, alignment: 8) { k in
            userKey.withUnsafeBytes { if let b = $0.baseAddress { k.baseAddress!.copyMemory(from: b, byteCount: $0.count) } }
            k.storeBytes(of: (seq << 8 | UInt64(kind)).littleEndian, toByteOffset: userKey.count, as: UInt64.self)
            return body(UnsafeRawBufferPointer(k))
        }
    }
    package static func trailer(_ ikey: [UInt8]) -> UInt64 {
        ikey.readLE(UInt64.self, at: ikey.count - 8)
    }
    package static func sequence(_ ikey: [UInt8]) -> UInt64 { trailer(ikey) >> 8 }
    package static func kind(_ ikey: [UInt8]) -> UInt8 { UInt8(truncatingIfNeeded: trailer(ikey)) }
    package static func userKey(_ ikey: [UInt8]) -> [UInt8] { Array(ikey[0..<(ikey.count - 8)]) }

    /// Compares two internal keys (both at least 8 bytes).
    package static func compare(_ a: [UInt8], _ b: [UInt8]) -> Int {
        a.withUnsafeBytes { pa in b.withUnsafeBytes { pb in compare(pa, pb) } }
    }
    /// Compares two internal keys given as raw bytes (both at least 8 bytes).
    package static func compare(_ pa: UnsafeRawBufferPointer, _ pb: UnsafeRawBufferPointer) -> Int {
        let ua = UnsafeRawBufferPointer(rebasing: pa[0..<(pa.count - 8)])
        let ub = UnsafeRawBufferPointer(rebasing: pb[0..<(pb.count - 8)])
        let c = compareBytes(ua, ub)
        if c != 0 { return c }
        let ta = pa.readLE(UInt64.self, at: pa.count - 8)
        let tb = pb.readLE(UInt64.self, at: pb.count - 8)
        return ta > tb ? -1 : (ta < tb ? 1 : 0)
    }
    /// Compares the user-key part of internal key `ikey` with user key `user`.
    package static func compareUser(_ ikey: [UInt8], _ user: [UInt8]) -> Int {
        ikey.withUnsafeBytes { pa in
            user.withUnsafeBytes { pb in
                compareBytes(UnsafeRawBufferPointer(rebasing: pa[0..<(pa.count - 8)]), pb)
            }
        }
    }
    package static func sameUser(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        a.count == b.count && a.withUnsafeBytes { pa in
            b.withUnsafeBytes { pb in
                compareBytes(UnsafeRawBufferPointer(rebasing: pa[0..<(pa.count - 8)]),
                             UnsafeRawBufferPointer(rebasing: pb[0..<(pb.count - 8)])) == 0
            }
        }
    }
}

/// A bounds-checked little-endian reader: every accessor returns nil instead of trapping.
package struct ByteReader {
    package let bytes: [UInt8]
    package var offset: Int
    package let end: Int
    package init(_ bytes: [UInt8], from: Int = 0, to: Int? = nil) {
        self.bytes = bytes; self.offset = from; self.end = to ?? bytes.count
    }
    package var remaining: Int { end - offset }
    package var atEnd: Bool { offset >= end }
    package mutating func u8() -> UInt8? {
        guard offset < end else { return nil }
        defer { offset += 1 }
        return bytes[offset]
    }
    package mutating func u32() -> UInt32? {
        guard remaining >= 4 else { return nil }
        defer { offset += 4 }
        return bytes.readLE(UInt32.self, at: offset)
    }
    package mutating func u64() -> UInt64? {
        guard remaining >= 8 else { return nil }
        defer { offset += 8 }
        return bytes.readLE(UInt64.self, at: offset)
    }
    package mutating func varint() -> UInt64? {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while offset < end && shift <= 63 {
            let b = bytes[offset]; offset += 1
            result |= UInt64(b & 0x7F) << shift
            if b < 0x80 { return result }
            shift += 7
        }
        return nil
    }
    /// A varint that must fit comfortably in an Int (lengths, offsets).
    package mutating func length() -> Int? {
        guard let v = varint(), v <= UInt64(Int32.max) else { return nil }
        return Int(v)
    }
    package mutating func bytes(_ n: Int) -> [UInt8]? {
        guard n >= 0, remaining >= n else { return nil }
        defer { offset += n }
        return Array(bytes[offset..<(offset + n)])
    }
    package mutating func lengthPrefixed() -> [UInt8]? {
        guard let n = length() else { return nil }
        return bytes(n)
    }
}

extension Array where Element == UInt8 {
    mutating func appendLengthPrefixed(_ b: [UInt8]) {
        appendVarint(UInt64(b.count)); append(contentsOf: b)
    }
}
