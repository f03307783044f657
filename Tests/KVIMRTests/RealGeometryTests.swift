import Glibc
import IMRDisk
import KVIMR
import Testing

/// The product's geometry (4 KiB sectors, 568/456-sector tracks, 16 MiB meta zone) on both the
/// in-memory drive and a real sparse image file.
@Suite struct RealGeometryTests {
    @Test func defaultGeometryInMemory() throws {
        let dev = MemoryTrackDevice(trackCount: 8)
        try KVIMR.format(device: dev)
        let k = try KVIMR(device: dev)
        let n = try k.create(kind: .sstable, level: 0)
        let size = 5 * 1024 * 1024 + 123              // two bottom tracks and a bit
        try k.append(n, pattern(size, seed: 11))
        try k.seal(n)
        try k.sync([n])
        #expect(try #require(k.extents(n)).map(\.track) == [0, 2, 4])
        try k.close()
        let k2 = try KVIMR(device: dev.reopened())
        #expect(try readAll(k2, n) == pattern(size, seed: 11))
        #expect(k2.stats().capacityBytes == dev.geometry.trackBytes)
    }

    @Test func imageFileRoundTrip() throws {
        let path = "/tmp/kvimr-test-\(getpid())-\(UInt64.random(in: 0...UInt64.max)).img"
        defer { unlink(path) }
        let dev = try ImageTrackDevice.create(path: path, size: 64 << 20, policy: "two-phase")
        try KVIMR.format(device: dev)
        let k = try KVIMR(device: dev)
        let wal = try k.create(kind: .wal, level: 0)
        var size = 0
        for i in 0..<50 {
            let chunk = pattern(1000 + i * 97, seed: 5, from: size)
            try k.append(wal, chunk)
            size += chunk.count
            if i % 10 == 9 { try k.sync([wal]) }
        }
        try k.setRoot(Array("manifest-7".utf8))
        try k.close()

        let again = try ImageTrackDevice.open(path: path)
        let k2 = try KVIMR(device: again)
        #expect(k2.root == Array("manifest-7".utf8))
        #expect(try readAll(k2, wal) == pattern(size, seed: 5))
        try k2.close()

        let ro = try KVIMR(device: try ImageTrackDevice.open(path: path, readOnly: true), readOnly: true)
        #expect(try readAll(ro, wal) == pattern(size, seed: 5))
        try ro.close()
    }
}
