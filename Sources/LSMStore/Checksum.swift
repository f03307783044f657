import CLSMChecksum
import LSMCommon

/// CRC32C for the engine's hot paths (block verification on every cache miss, WAL framing):
/// the same function as `LSMCommon.CRC32C` (Castagnoli, reflected 0x82F63B78). It uses the
/// CPU's CRC32C instruction when there is one (CLSMChecksum, x86-64 SSE4.2: ~10x faster than
/// table lookups), else slicing-by-8 over one flat table read through an unsafe pointer (no
/// bounds checks, no nested arrays). Masking is LSMCommon's.
package enum BlockCRC {
    /// 8 × 256 entries: table k maps a byte to its CRC contribution k bytes further on.
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
    package static let hardware = lsm_crc32c_hw_available() != 0

    /// Extends `crc` (an earlier result, or 0) over `bytes`.
    package static func update(_ crc: UInt32, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
        guard let base = bytes.baseAddress else { return crc }
        if hardware { return lsm_crc32c_hw_extend(crc, base, bytes.count) }
        return software(crc, bytes)
    }

    /// The table-driven fallback (also checked against the hardware path by the tests).
    package static func software(_ crc: UInt32, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
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

    package static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 { update(0, bytes) }
    package static func checksum(_ bytes: [UInt8]) -> UInt32 { bytes.withUnsafeBytes { update(0, $0) } }
}
