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
}
