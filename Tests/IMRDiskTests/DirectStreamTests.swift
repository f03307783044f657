import Testing
import Glibc
import IMRDisk

/// Streams read through O_DIRECT windows (`prefetch` then `readTrackBytes(streaming: true)`)
/// return the bytes last written, whatever was prefetched before the write.
@Suite struct DirectStreamTests {
    func streamRead(_ d: ImageTrackDevice, _ track: Int, _ sector: Int, skip: Int, count: Int) throws(DeviceError) -> [UInt8] {
        var buf = [UInt8](repeating: 0xEE, count: count)
        try buf.withUnsafeMutableBytes { (p) -> Result<Void, DeviceError> in
            Result { () throws(DeviceError) in try d.readTrackBytes(track, sector: sector, skip: skip, into: p, streaming: true) }
        }.get()
        return buf
    }

    @Test func prefetchedStreamsSeeEveryWrite() throws {
        let tmp = TempDir(), p = tmp.file("a.img")
        let d = try ImageTrackDevice.create(path: p, size: 256 << 20, policy: "kvimr")
        defer { try? d.close() }
        let ss = d.geometry.sectorSize
        let first = pattern(1, sectors: 64, sectorSize: ss)
        try write(d, 0, 0, first)
        try write(d, 2, 0, pattern(2, sectors: 16, sectorSize: ss))

        // Prefetched, then read at odd offsets and lengths (inside one window).
        d.prefetch(0, sector: 0, count: 64)
        d.waitForPrefetches()
        var got = try streamRead(d, 0, 3, skip: 100, count: 10_000)
        #expect(got == Array(first[(3 * ss + 100)..<(3 * ss + 100 + 10_000)]))

        // A write into the window: the stream sees the new bytes (the window is dropped).
        let second = pattern(3, sectors: 2, sectorSize: ss)
        try write(d, 0, 10, second)
        got = try streamRead(d, 0, 9, skip: 0, count: 4 * ss)
        var expected = Array(first[(9 * ss)..<(13 * ss)])
        expected.replaceSubrange(ss..<(3 * ss), with: second)
        #expect(got == expected)

        // Prefetched again after the write, and a write to another track leaves it alone.
        d.prefetch(0, sector: 0, count: 64)
        d.waitForPrefetches()
        try write(d, 2, 0, pattern(4, sectors: 16, sectorSize: ss))
        got = try streamRead(d, 0, 9, skip: 0, count: 4 * ss)
        #expect(got == expected)
        // A read past what was prefetched (and the unprefetched track) falls back to pread.
        #expect(try streamRead(d, 2, 0, skip: 0, count: ss) == Array(pattern(4, sectors: 16, sectorSize: ss)[0..<ss]))

        // Many writes while prefetching: every read still sees the last write.
        for round in 0..<20 {
            d.prefetch(0, sector: 0, count: 64)
            let b = pattern(100 + round, sectors: 1, sectorSize: ss)
            try write(d, 0, round, b)
            d.waitForPrefetches()
            #expect(try streamRead(d, 0, round, skip: 0, count: ss) == b, "round \(round)")
        }
        try d.close()
        #expect(deviceError { () throws(DeviceError) in _ = try streamRead(d, 0, 0, skip: 0, count: 16) }?.kind == .closed)
    }

    @Test func usesODirectWhereTheFilesystemHasIt() throws {
        let tmp = TempDir(), p = tmp.file("a.img")
        let d = try ImageTrackDevice.create(path: p, size: 64 << 20, policy: "kvimr")
        defer { try? d.close() }
        // Where the directory's filesystem takes O_DIRECT (ext4 here; not tmpfs) the device
        // uses it; elsewhere it falls back to page-cache advice.
        let fd = open(p, O_RDONLY | 0o40000 /* O_DIRECT (x86_64, arm64: 0o200000) */)
        #if arch(x86_64)
        #expect(d.usesDirectStream == (fd >= 0))
        #endif
        if fd >= 0 { close(fd) }
    }
}
