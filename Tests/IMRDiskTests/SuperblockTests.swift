import Testing
import IMRDisk
import LSMCommon

@Suite struct SuperblockTests {
    let sb = Superblock(geometry: IMRGeometry(trackCount: 100), policy: "kvimr",
                        uuid: Array(1...16), createdAt: 1_700_000_000)

    func decodeError(_ bytes: [UInt8]) -> DeviceError? {
        deviceError { () throws(DeviceError) in _ = try Superblock.decode(bytes) }
    }

    @Test func roundTrip() throws {
        let bytes = sb.encode()
        #expect(bytes.count == Superblock.size)
        #expect(same(Array(bytes[0..<8]), Array("LSMFSIMR".utf8)))
        #expect(bytes.readLE(UInt32.self, at: 8) == 1)
        #expect(bytes.readLE(UInt32.self, at: 16) == 4096)
        #expect(bytes.readLE(UInt32.self, at: 20) == 568)
        #expect(bytes.readLE(UInt32.self, at: 24) == 456)
        #expect(bytes.readLE(UInt64.self, at: 32) == 100)
        #expect(bytes.readLE(UInt64.self, at: 48) == sb.geometry.imageBytes)
        #expect(bytes.readLE(UInt32.self, at: 4092) == CRC32C.checksum(Array(bytes[0..<4092])))
        let back = try Superblock.decode(bytes)
        #expect(back == sb)
    }

    @Test func policyAtLimitAndTruncation() throws {
        var s = sb
        s.policy = String(repeating: "p", count: 31)
        #expect(try Superblock.decode(s.encode()).policy == s.policy)
        s.policy = String(repeating: "é", count: 20)   // 40 bytes: cut at a character boundary
        #expect(try Superblock.decode(s.encode()).policy == String(repeating: "é", count: 15))
        #expect(Superblock.validatePolicy(s.policy) != nil)
        #expect(Superblock.validatePolicy("") != nil)
        #expect(Superblock.validatePolicy("kvimr") == nil)
    }

    @Test func rejectsAllZero() {
        #expect(decodeError([UInt8](repeating: 0, count: 4096))?.message == "no lsmfs superblock: image is all zero")
        #expect(decodeError([UInt8](repeating: 0, count: 4096))?.kind == .invalidImage)
    }

    @Test func rejectsBadMagic() {
        var b = sb.encode(); b[0] = UInt8(ascii: "X")
        #expect(decodeError(b)?.message == "not an lsmfs image (bad magic)")
        #expect(decodeError(Array("hello world".utf8))?.message == "not an lsmfs image (bad magic)")
    }

    @Test func rejectsBadChecksum() {
        for pos in [12, 40, 81, 200, 4092] {
            var b = sb.encode(); b[pos] ^= 0x10
            let e = decodeError(b)
            #expect(e?.kind == .invalidImage)
            #expect(e?.message.contains("checksum mismatch") == true, "flip at \(pos): \(e?.message ?? "-")")
        }
    }

    @Test func rejectsUnknownVersion() {
        var s = sb; s.formatVersion = 7
        #expect(decodeError(s.encode())?.message.contains("unsupported lsmfs image format version 7") == true)
    }

    @Test func rejectsTruncatedBuffer() {
        #expect(decodeError(Array(sb.encode()[0..<100]))?.message.contains("truncated") == true)
    }

    @Test func rejectsAbsurdGeometry() {
        let bad: [IMRGeometry] = [
            IMRGeometry(sectorSize: 1000, trackCount: 10),
            IMRGeometry(sectorSize: 4096, bottomSectors: 0, trackCount: 10),
            IMRGeometry(trackCount: 1),
            IMRGeometry(trackCount: 10, metaZoneBytes: 4096),
            IMRGeometry(trackCount: 10, metaZoneBytes: 4096 * 3 + 1),
            IMRGeometry(bottomSectors: 1 << 20, topSectors: 1 << 20, trackCount: 1 << 31),
        ]
        for g in bad {
            #expect(Superblock.validate(g) != nil, "\(g)")
            let e = decodeError(Superblock(geometry: g, policy: "kvimr", uuid: [], createdAt: 0).encode())
            #expect(e?.kind == .invalidImage)
            #expect(e?.message.contains("absurd geometry") == true, "\(g): \(e?.message ?? "-")")
        }
        #expect(Superblock.validate(IMRGeometry(trackCount: 2)) == nil)
    }

    @Test func rejectsInconsistentImageSize() {
        var b = sb.encode()
        b.withUnsafeMutableBytes { $0.storeBytes(of: UInt64(12345).littleEndian, toByteOffset: 48, as: UInt64.self) }
        let crc = CRC32C.checksum(Array(b[0..<4092]))
        b.withUnsafeMutableBytes { $0.storeBytes(of: crc.littleEndian, toByteOffset: 4092, as: UInt32.self) }
        #expect(decodeError(b)?.message.contains("disagrees") == true)
    }

    @Test func formatConstantsAgree() {
        #expect(Superblock.size == IMRFormat.superblockSize)
        #expect(Superblock.currentVersion == IMRFormat.currentVersion)
        #expect(IMRFormat.magic.count == 8)
    }
}
