import Testing
import IMRDisk

@Suite struct GeometryTests {
    @Test func defaults() {
        let g = IMRGeometry(trackCount: 10)
        #expect(g.sectorSize == 4096 && g.bottomSectors == 568 && g.topSectors == 456)
        #expect(g.metaZoneBytes == 16 << 20)
        #expect(g.isBottom(0) && g.isTop(1) && g.isBottom(8))
        #expect(g.capacity(of: 0) == 568 * 4096 && g.capacity(of: 1) == 456 * 4096)
    }

    @Test func offsets() {
        let g = IMRGeometry(trackCount: 5)
        let pair = UInt64(1024 * 4096)
        #expect(g.byteOffset(of: 0) == 16 << 20)
        #expect(g.byteOffset(of: 1) == (16 << 20) + 568 * 4096)
        #expect(g.byteOffset(of: 2) == (16 << 20) + pair)
        #expect(g.byteOffset(of: 3) == (16 << 20) + pair + 568 * 4096)
        #expect(g.imageBytes == (16 << 20) + 2 * pair + 568 * 4096)     // ends with a bottom track
        #expect(g.trackBytes == g.imageBytes - (16 << 20))
        for t in 0..<4 { #expect(g.byteOffset(of: t) + UInt64(g.capacity(of: t)) == g.byteOffset(of: t + 1)) }
    }

    @Test func fitting() throws {
        let g = try #require(IMRGeometry.fitting(imageBytes: 64 << 20))
        #expect(g.trackCount == 24)                  // 48 MiB of tracks = 12 pairs of 4 MiB
        #expect(g.imageBytes == 64 << 20)
        let odd = try #require(IMRGeometry.fitting(imageBytes: (64 << 20) + 568 * 4096))
        #expect(odd.trackCount == 25)
        let almost = try #require(IMRGeometry.fitting(imageBytes: (64 << 20) + 568 * 4096 - 1))
        #expect(almost.trackCount == 24)
        #expect(IMRGeometry.fitting(imageBytes: 16 << 20) == nil)
        #expect(IMRGeometry.fitting(imageBytes: (16 << 20) + 568 * 4096) == nil)   // one track is not a drive
        let big = try #require(IMRGeometry.fitting(imageBytes: 8 << 30))
        #expect(big.imageBytes <= 8 << 30 && (8 << 30) - big.imageBytes < 1024 * 4096)
    }

    @Test func neighbours() {
        let g = IMRGeometry(trackCount: 5)
        #expect(g.neighbours(ofBottom: 0) == [1])
        #expect(g.neighbours(ofBottom: 2) == [1, 3])
        #expect(g.neighbours(ofBottom: 4) == [3])
    }
}
