import Testing
import Dispatch
import IMRDisk

/// Devices are shared by KVIMR's threads: concurrent I/O to distinct sectors must neither
/// crash nor mix up data, and the counters must add up.
@Suite struct ConcurrencyTests {
    func hammer(_ d: TrackDevice) throws {
        let threads = 8, perThread = 20
        DispatchQueue.concurrentPerform(iterations: threads) { t in
            for i in 0..<perThread {
                let track = 1 + 2 * (t % 4), sector = (t / 4) * perThread + i
                try? write(d, track, sector, pattern(t * 1000 + i, sectors: 1))
                _ = try? read(d, track, sector, sectors: 1)
            }
        }
        for t in 0..<threads {
            for i in 0..<perThread {
                let got = try read(d, 1 + 2 * (t % 4), (t / 4) * perThread + i, sectors: 1)
                #expect(same(got, pattern(t * 1000 + i, sectors: 1)))
            }
        }
        let c = d.counters()
        #expect(c.top.writes == UInt64(threads * perThread))
        #expect(c.top.reads == UInt64(2 * threads * perThread))
    }

    @Test func memoryDevice() throws { try hammer(MemoryTrackDevice(trackCount: 16)) }

    @Test func imageDevice() throws {
        let tmp = TempDir()
        let d = try ImageTrackDevice.create(path: tmp.file("c.img"), size: 64 << 20, policy: "kvimr")
        try hammer(d)
        try d.close()
    }

    @Test func faultyDevice() throws { try hammer(FaultyTrackDevice(MemoryTrackDevice(trackCount: 16))) }
}
