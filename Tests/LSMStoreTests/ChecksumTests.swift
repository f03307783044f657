import LSMCommon
import Testing

@Suite struct ChecksumTests {
    /// The hardware path (when this CPU has one) and the table path agree, on the standard check
    /// value, on lengths around the 8-byte stride and the three-way blocks (3 × 256, 3 × 8192
    /// bytes), and when extended piece by piece (so also from unaligned starts).
    @Test func hardwareAndTablePathsAgree() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283) // the CRC32C check value
        var rng = SystemRandomNumberGenerator()
        for n in [0, 1, 7, 8, 9, 15, 16, 63, 64, 65, 767, 768, 769, 4096, 4101, 16_412, 24_575, 24_576, 24_583, 70_001] {
            let bytes = (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let soft = bytes.withUnsafeBytes { CRC32C.software(0, $0) }
            #expect(CRC32C.checksum(bytes) == soft)
            let cut = n / 3
            let two = bytes.withUnsafeBytes { p in
                CRC32C.update(CRC32C.update(0, UnsafeRawBufferPointer(rebasing: p[0..<cut])),
                              UnsafeRawBufferPointer(rebasing: p[cut...]))
            }
            #expect(two == soft)
        }
    }

    /// The folding path (VPCLMULQDQ, from 256 bytes), the three-way crc32 path and the table
    /// path agree on random lengths around the fold's 256-byte steps and beyond, from every
    /// alignment mod 64, from random starting CRCs.
    @Test func foldingAndThreeWayPathsAgree() {
        var rng = SystemRandomNumberGenerator()
        let pool = (0..<(80 << 10)).map { _ in UInt8.random(in: 0...255, using: &rng) }
        var lengths = [255, 256, 257, 263, 264, 511, 512, 513, 767, 768, 1023, 1024, 1040, 16_396, 16_412, 65_536]
        for _ in 0..<300 { lengths.append(Int.random(in: 0...3000, using: &rng)) }
        for _ in 0..<40 { lengths.append(Int.random(in: 3000...70_000, using: &rng)) }
        pool.withUnsafeBytes { p in
            for (i, n) in lengths.enumerated() {
                let off = i % 64
                let bytes = UnsafeRawBufferPointer(rebasing: p[off..<(off + n)])
                let start = UInt32.random(in: 0...UInt32.max, using: &rng)
                let soft = CRC32C.software(start, bytes)
                #expect(CRC32C.update(start, bytes) == soft, "length \(n) at offset \(off)")
                if let three = CRC32C.threeWay(start, bytes) { #expect(three == soft, "length \(n) at offset \(off)") }
            }
        }
        // RFC 3720's iSCSI vectors (32 bytes), and long runs of them against the table path.
        #expect(CRC32C.checksum([UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)
        #expect(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)) == 0x62A8_AB43)
        #expect(CRC32C.checksum((0..<32).map { UInt8($0) }) == 0x46DD_794E)
        for byte: UInt8 in [0, 0xFF] {
            let run = [UInt8](repeating: byte, count: 16_412)
            #expect(CRC32C.checksum(run) == run.withUnsafeBytes { CRC32C.software(0, $0) })
        }
    }
}
