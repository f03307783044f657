import LSMCommon
import LSMStore
import Testing

@Suite struct ChecksumTests {
    @Test func blockCRCMatchesLSMCommon() {
        #expect(BlockCRC.checksum(Array("123456789".utf8)) == 0xE306_9283) // the CRC32C check value
        var rng = SystemRandomNumberGenerator()
        for n in [0, 1, 7, 8, 9, 15, 16, 63, 64, 65, 4096, 4101] {
            let bytes = (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }
            #expect(BlockCRC.checksum(bytes) == CRC32C.checksum(bytes))
            #expect(bytes.withUnsafeBytes { BlockCRC.software(0, $0) } == CRC32C.checksum(bytes))
            // Extending in two pieces equals one pass.
            let cut = n / 3
            let two = bytes.withUnsafeBytes { p in
                BlockCRC.update(BlockCRC.update(0, UnsafeRawBufferPointer(rebasing: p[0..<cut])),
                                UnsafeRawBufferPointer(rebasing: p[cut...]))
            }
            #expect(two == CRC32C.checksum(bytes))
        }
    }
}
