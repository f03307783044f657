import Testing
import IMRDisk

@Suite struct MemoryTrackDeviceTests {
    @Test func startsFormattedAndZero() throws {
        let d = MemoryTrackDevice(trackCount: 4000, policy: "kvimr")
        #expect(d.superblock.policy == "kvimr")
        #expect(d.geometry.trackCount == 4000)
        #expect(d.metaCapacity == IMRGeometry.defaultMetaZoneBytes - 4096)
        #expect(allBytes(try read(d, 3999, 455, sectors: 1), 0))
        #expect(allBytes(try readMeta(d, 0, bytes: 8192), 0))
        #expect(d.storedSectorCount == 0)
    }

    @Test func readBackAndSparse() throws {
        let d = MemoryTrackDevice(trackCount: 4000)
        let a = pattern(1, sectors: 3)
        try write(d, 2500, 10, a)
        #expect(same(try read(d, 2500, 10, sectors: 3), a))
        #expect(same(try read(d, 2500, 11, sectors: 1), Array(a[4096..<8192])))
        #expect(d.storedSectorCount == 3)
        let m = pattern(2, sectors: 2)
        try writeMeta(d, 4096, m)
        #expect(same(try readMeta(d, 4096, bytes: 8192), m))
        #expect(allBytes(try readMeta(d, 0, bytes: 4096), 0))
    }

    @Test func boundsAndAlignment() {
        let d = MemoryTrackDevice(trackCount: 10)
        let one = pattern(0, sectors: 1)
        #expect(deviceError { () throws(DeviceError) in try write(d, 10, 0, one) }?.kind == .outOfRange)
        #expect(deviceError { () throws(DeviceError) in try write(d, -1, 0, one) }?.kind == .outOfRange)
        #expect(deviceError { () throws(DeviceError) in try write(d, 1, 456, one) }?.kind == .outOfRange)   // top: 456 sectors
        #expect(deviceError { () throws(DeviceError) in try write(d, 0, 567, one) } == nil)               // bottom: 568
        #expect(deviceError { () throws(DeviceError) in try write(d, 0, 567, pattern(0, sectors: 2)) }?.kind == .outOfRange)
        #expect(deviceError { () throws(DeviceError) in try write(d, 0, 0, [1, 2, 3]) }?.kind == .outOfRange)
        #expect(deviceError { () throws(DeviceError) in try writeMeta(d, 100, one) }?.kind == .outOfRange)
        #expect(deviceError { () throws(DeviceError) in try writeMeta(d, d.metaCapacity, one) }?.kind == .outOfRange)
        #expect(deviceError { () throws(DeviceError) in try writeMeta(d, d.metaCapacity - 4096, one) } == nil)
    }

    @Test func closedRejectsEverything() throws {
        let d = MemoryTrackDevice(trackCount: 4)
        try d.close()
        #expect(deviceError { () throws(DeviceError) in _ = try read(d, 0, 0, sectors: 1) }?.kind == .closed)
        #expect(deviceError { () throws(DeviceError) in try write(d, 0, 0, pattern(0, sectors: 1)) }?.kind == .closed)
        #expect(deviceError { () throws(DeviceError) in try d.sync() }?.kind == .closed)
        #expect(deviceError { () throws(DeviceError) in try d.close() }?.kind == .closed)
        #expect(deviceError { () throws(DeviceError) in _ = try readMeta(d, 0, bytes: 4096) }?.kind == .closed)
    }

    @Test func crashKeepsSyncedDropsUnsynced() throws {
        let d = MemoryTrackDevice(trackCount: 8)
        let a = pattern(1, sectors: 4), b = pattern(2, sectors: 4), m = pattern(3, sectors: 1)
        try write(d, 1, 0, a)
        try writeMeta(d, 0, m)
        try d.sync()
        #expect(d.unsyncedWriteCount == 0)
        try write(d, 1, 0, b)           // overwrite synced data
        try write(d, 2, 0, b)           // new data
        try writeMeta(d, 0, pattern(4, sectors: 1))
        #expect(d.unsyncedWriteCount == 3)
        #expect(same(try read(d, 1, 0, sectors: 4), b))

        let c0 = d.crashed()
        #expect(same(try read(c0, 1, 0, sectors: 4), a))
        #expect(allBytes(try read(c0, 2, 0, sectors: 4), 0))
        #expect(same(try readMeta(c0, 0, bytes: 4096), m))
        #expect(c0.unsyncedWriteCount == 0)
        #expect(c0.superblock == d.superblock)

        let c1 = d.crashed(keepUnsynced: 1)
        #expect(same(try read(c1, 1, 0, sectors: 4), b))
        #expect(allBytes(try read(c1, 2, 0, sectors: 4), 0))
        #expect(same(try readMeta(c1, 0, bytes: 4096), m))

        let c3 = d.crashed(keepUnsynced: 99)
        #expect(same(try read(c3, 2, 0, sectors: 4), b))
        #expect(same(try readMeta(c3, 0, bytes: 4096), pattern(4, sectors: 1)))
        // the original is untouched by crashing copies
        #expect(same(try read(d, 1, 0, sectors: 4), b))
        #expect(d.unsyncedWriteCount == 3)
    }

    @Test func tearAtSectorBoundary() throws {
        let d = MemoryTrackDevice(trackCount: 8)
        let old = pattern(1, sectors: 6), new = pattern(2, sectors: 6)
        try write(d, 3, 10, old)
        try d.sync()
        try write(d, 3, 10, new)
        let torn = d.crashed(keepUnsynced: 1, tearLast: true)
        let got = try read(torn, 3, 10, sectors: 6)
        #expect(same(Array(got[0..<(3 * 4096)]), Array(new[0..<(3 * 4096)])))
        #expect(same(Array(got[(3 * 4096)...]), Array(old[(3 * 4096)...])))
        for k in 0...6 {
            let t = d.crashed(keepUnsynced: 1, keepSectorsOfLast: k)
            let g = try read(t, 3, 10, sectors: 6)
            #expect(same(Array(g[0..<(k * 4096)]), Array(new[0..<(k * 4096)])))
            #expect(same(Array(g[(k * 4096)...]), Array(old[(k * 4096)...])))
        }
    }

    @Test func seededCrashIsDeterministicAndAPrefix() throws {
        let d = MemoryTrackDevice(trackCount: 8)
        let data = pattern(9, sectors: 20)
        for w in 0..<5 {      // five writes of four sectors each
            try write(d, 1, 4 * w, Array(data[(w * 4 * 4096)..<((w + 1) * 4 * 4096)]))
        }
        var survivors = Set<Int>()
        for seed in UInt64(0)..<64 {
            let x = d.crashed(seed: seed), y = d.crashed(seed: seed)
            let gx = try read(x, 1, 0, sectors: 20), gy = try read(y, 1, 0, sectors: 20)
            #expect(same(gx, gy))
            // a prefix of the sectors survives, in write order
            var n = 0
            while n < 20 && !allBytes(gx[(n * 4096)..<((n + 1) * 4096)], 0) { n += 1 }
            #expect(same(gx[0..<(n * 4096)], data[0..<(n * 4096)]))
            #expect(allBytes(gx[(n * 4096)...], 0))
            survivors.insert(n)
        }
        #expect(survivors.contains(0) && survivors.contains(20))
        #expect(survivors.contains { $0 % 4 != 0 }, "some seed tears a write mid-way")
    }

    @Test func countersAndValidity() throws {
        let d = MemoryTrackDevice(trackCount: 8)
        try write(d, 1, 0, pattern(1, sectors: 4))
        try write(d, 2, 0, pattern(1, sectors: 2))
        _ = try read(d, 1, 0, sectors: 1)
        try writeMeta(d, 0, pattern(1, sectors: 1))
        _ = try readMeta(d, 0, bytes: 4096)
        try d.sync()
        d.trim(1, sector: 0, count: 1)
        let c = d.counters()
        #expect(c.top.writes == 1 && c.top.bytesWritten == 4 * 4096)
        #expect(c.bottom.writes == 1 && c.bottom.bytesWritten == 2 * 4096)
        #expect(c.top.reads == 1 && c.top.bytesRead == 4096)
        #expect(c.metaReads == 1 && c.metaWrites == 1 && c.syncs == 1)
        #expect(c.validTopSectors == 3 && c.validBottomSectors == 2)
        #expect(!d.isValid(1, sector: 0) && d.isValid(1, sector: 1))
        #expect(c.top.busyNanos > 0 && c.bottom.busyNanos > 0)
    }
}
