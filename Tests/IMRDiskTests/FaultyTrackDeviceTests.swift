import Testing
import IMRDisk

@Suite struct FaultyTrackDeviceTests {
    @Test func passesThroughWithoutRules() throws {
        let base = MemoryTrackDevice(trackCount: 8)
        let f = FaultyTrackDevice(base)
        try write(f, 1, 0, pattern(1, sectors: 2))
        #expect(same(try read(base, 1, 0, sectors: 2), pattern(1, sectors: 2)))
        #expect(same(try read(f, 1, 0, sectors: 2), pattern(1, sectors: 2)))
        try f.sync()
        #expect(f.superblock == base.superblock && f.counters() == base.counters())
        #expect(f.injectedCount == 0)
    }

    @Test func nthWriteFailsOnce() throws {
        let base = MemoryTrackDevice(trackCount: 8)
        let f = FaultyTrackDevice(base, rules: [.failNthWrite(3)])
        try write(f, 1, 0, pattern(1, sectors: 1))
        try writeMeta(f, 0, pattern(2, sectors: 1))
        let e = deviceError { () throws(DeviceError) in try write(f, 1, 1, pattern(3, sectors: 1)) }
        #expect(e?.kind == .injected && e?.errno == 5)
        #expect(allBytes(try read(base, 1, 1, sectors: 1), 0))   // nothing written
        try write(f, 1, 1, pattern(3, sectors: 1))                // the 4th goes through
        #expect(f.injectedCount == 1)
    }

    @Test func trackRuleAndRemoval() throws {
        let f = FaultyTrackDevice(MemoryTrackDevice(trackCount: 8))
        let id = f.inject(.failWrites(toTrack: 5))
        f.inject(.failReads(ofTrack: 6))
        for _ in 0..<3 {
            #expect(deviceError { () throws(DeviceError) in try write(f, 5, 0, pattern(1, sectors: 1)) }?.kind == .injected)
        }
        try write(f, 4, 0, pattern(1, sectors: 1))
        #expect(deviceError { () throws(DeviceError) in _ = try read(f, 6, 0, sectors: 1) }?.kind == .injected)
        f.remove(id)
        try write(f, 5, 0, pattern(1, sectors: 1))
        f.removeAllRules()
        _ = try read(f, 6, 0, sectors: 1)
    }

    @Test func tornWriteKeepsPrefix() throws {
        let base = MemoryTrackDevice(trackCount: 8)
        let f = FaultyTrackDevice(base, rules: [.tearNthWrite(1, keepSectors: 2)])
        let data = pattern(7, sectors: 5)
        #expect(deviceError { () throws(DeviceError) in try write(f, 3, 10, data) }?.kind == .injected)
        let got = try read(base, 3, 10, sectors: 5)
        #expect(same(got[0..<(2 * 4096)], data[0..<(2 * 4096)]))
        #expect(allBytes(got[(2 * 4096)...], 0))
    }

    @Test func syncFailsOnceAndUnsyncedStaysVolatile() throws {
        let base = MemoryTrackDevice(trackCount: 8)
        let f = FaultyTrackDevice(base, rules: [.failNextSync(errno: 28)])
        try write(f, 1, 0, pattern(1, sectors: 1))
        let e = deviceError { () throws(DeviceError) in try f.sync() }
        #expect(e?.errno == 28 && e?.kind == .injected)
        #expect(base.unsyncedWriteCount == 1)
        #expect(allBytes(try read(base.crashed(), 1, 0, sectors: 1), 0))
        try f.sync()
        #expect(base.unsyncedWriteCount == 0)
    }

    @Test func composedRulesCountIndependently() throws {
        let f = FaultyTrackDevice(MemoryTrackDevice(trackCount: 8))
        f.inject(FaultRule([.writeTrack], track: 2, skip: 1, times: 1))   // 2nd write to track 2
        f.inject(.failNthWrite(4))                                        // 4th write overall
        var failed: [Int] = []
        for i in 1...6 {
            let t = i <= 3 ? 2 : 1
            if deviceError({ () throws(DeviceError) in try write(f, t, 0, pattern(i, sectors: 1)) }) != nil { failed.append(i) }
        }
        #expect(failed == [2, 4])
    }

    @Test func randomFaultsAreReproducible() throws {
        func run(_ seed: UInt64) -> [Int] {
            let f = FaultyTrackDevice(MemoryTrackDevice(trackCount: 8), rules: [.failRandomly([.writeTrack], oneIn: 3, seed: seed)])
            return (0..<60).filter { i in
                deviceError { () throws(DeviceError) in try write(f, 1, 0, pattern(i, sectors: 1)) } != nil
            }
        }
        let a = run(42)
        #expect(a == run(42))
        #expect(a.count > 5 && a.count < 40)
        #expect(a != run(43))
    }
}

@Suite struct PowerLossTests {
    @Test func everythingFailsAfterTheNthWrite() throws {
        let base = MemoryTrackDevice(trackCount: 8)
        let f = FaultyTrackDevice(base, rules: [.powerLoss(afterWrites: 2)])
        _ = try read(f, 1, 0, sectors: 1)
        try write(f, 1, 0, pattern(1, sectors: 1))
        try f.sync()
        try writeMeta(f, 0, pattern(2, sectors: 1))
        #expect(deviceError { () throws(DeviceError) in try write(f, 1, 1, pattern(3, sectors: 1)) }?.kind == .injected)
        #expect(deviceError { () throws(DeviceError) in _ = try read(f, 1, 0, sectors: 1) }?.kind == .injected)
        #expect(deviceError { () throws(DeviceError) in try f.sync() }?.kind == .injected)
        let after = base.crashed()                   // the unsynced meta write is lost
        #expect(same(try read(after, 1, 0, sectors: 1), pattern(1, sectors: 1)))
        #expect(allBytes(try readMeta(after, 0, bytes: 4096), 0))
    }
}
