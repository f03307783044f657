import CLSMChecksum

/// CRC32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of every structure lsmfs
/// writes: superblock, track-map checkpoints, RMW journal, WAL records, SSTable blocks, manifest
/// records. Uses the CPU's CRC32C instruction when there is one (CLSMChecksum, x86-64 SSE4.2:
/// about 10x faster than tables; from 256 bytes on, carry-less multiplication folding with
/// AVX-512 VPCLMULQDQ where available, about 5x faster again), else slicing-by-8 over one flat
/// table read through an unsafe pointer (no bounds checks, no nested arrays).
public enum CRC32C {
    /// 8 x 256 entries: table k maps a byte to its CRC contribution k bytes further on.
    nonisolated(unsafe) private static let table: UnsafePointer<UInt32> = {
        let t = UnsafeMutablePointer<UInt32>.allocate(capacity: 8 * 256)
        for i in 0..<256 {
            var c = UInt32(i)
            for _ in 0..<8 { c = (c & 1) != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
            t[i] = c
        }
        for k in 1..<8 {
            for i in 0..<256 {
                let prev = t[(k - 1) * 256 + i]
                t[k * 256 + i] = (prev >> 8) ^ t[Int(prev & 0xFF)]
            }
        }
        return UnsafePointer(t)
    }()

    /// Whether the hardware instruction is used.
    public static let hardware = lsm_crc32c_hw_available() != 0

    /// The crc32-instruction path without folding (tests compare the two); nil without
    /// the instruction.
    package static func threeWay(_ crc: UInt32, _ bytes: UnsafeRawBufferPointer) -> UInt32? {
        guard hardware else { return nil }
        guard let base = bytes.baseAddress else { return crc }
        return lsm_crc32c_hw3_extend(crc, base, bytes.count)
    }

    /// Extends `crc` (the value returned by an earlier call, or 0) over `bytes`.
    @inline(__always)
    public static func update(_ crc: UInt32, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
        guard let base = bytes.baseAddress else { return crc }
        if hardware { return lsm_crc32c_hw_extend(crc, base, bytes.count) }
        return software(crc, bytes)
    }

    /// The table-driven path (also checked against the hardware path by the tests).
    public static func software(_ crc: UInt32, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
        guard var p = bytes.baseAddress else { return crc }
        let t = table
        var c = ~crc
        var n = bytes.count
        while n >= 8 {
            let lo = UInt32(littleEndian: p.loadUnaligned(as: UInt32.self)) ^ c
            let hi = UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
            c = t[0x700 + Int(lo & 0xFF)] ^ t[0x600 + Int((lo >> 8) & 0xFF)]
              ^ t[0x500 + Int((lo >> 16) & 0xFF)] ^ t[0x400 + Int(lo >> 24)]
              ^ t[0x300 + Int(hi & 0xFF)] ^ t[0x200 + Int((hi >> 8) & 0xFF)]
              ^ t[0x100 + Int((hi >> 16) & 0xFF)] ^ t[Int(hi >> 24)]
            p += 8; n -= 8
        }
        while n > 0 {
            c = t[Int((c ^ UInt32(p.load(as: UInt8.self))) & 0xFF)] ^ (c >> 8)
            p += 1; n -= 1
        }
        return ~c
    }

    public static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 { update(0, bytes) }
    public static func checksum(_ bytes: [UInt8]) -> UInt32 { bytes.withUnsafeBytes { update(0, $0) } }
    public static func checksum<S: Sequence>(_ bytes: S) -> UInt32 where S.Element == UInt8 {
        checksum(Array(bytes))
    }

    static let maskDelta: UInt32 = 0xA282_EAD8
    /// LevelDB's masking: storing the CRC of data that itself contains CRCs is fragile, so
    /// stored checksums are rotated and offset.
    public static func mask(_ crc: UInt32) -> UInt32 { ((crc >> 15) | (crc << 17)) &+ maskDelta }
    public static func unmask(_ masked: UInt32) -> UInt32 {
        let rot = masked &- maskDelta
        return (rot >> 17) | (rot << 15)
    }
}
