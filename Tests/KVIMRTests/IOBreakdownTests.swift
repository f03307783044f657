import IMRDisk
import KVIMR
import Testing

/// `KVIMRStats.io`: the drive's simulated time split by operation kind adds up to the drive's
/// busy time, and each kind lands in its category (the drive's own RMW apart from the write).
@Suite struct IOBreakdownTests {
    /// B0 T1 B2 T3 B4 filled, B2 freed and rewritten under valid tops: device-managed RMW.
    func run(policy: String) throws -> (IOBreakdown, DeviceCounters) {
        let g = smallGeometry(tracks: 5)
        let (dev, k) = policy == "kvimr-merge-always" ? try makeMergingKVIMR(g) : try makeKVIMR(g, policy: policy)
        let opened = dev.counters()   // format and open (checkpoint load) are not attributed
        let others = try MergedRMWTests().scene(k, g)
        let w = try k.create(kind: .sstable, level: 3)
        try k.append(w, pattern(g.bottomSectors * g.sectorSize, seed: 9))
        try k.sync([w])
        for n in others.keys { _ = try readAll(k, n) }
        var c = dev.counters()
        c.bottom.busyNanos -= opened.bottom.busyNanos; c.top.busyNanos -= opened.top.busyNanos
        c.metaBusyNanos -= opened.metaBusyNanos
        c.seekNanos -= opened.seekNanos; c.rotationNanos -= opened.rotationNanos; c.transferNanos -= opened.transferNanos
        return (k.stats().io, c)
    }

    @Test(arguments: ["two-phase", "kvimr", "kvimr-merge-always"])
    func categoriesAddUpToBusyTime(policy: String) throws {
        let (io, c) = try run(policy: policy)
        #expect(io.totalBusyNanos == c.totalBusyNanos)
        let seek = io.entries.values.reduce(0) { $0 + $1.seekNanos }
        let rot = io.entries.values.reduce(0) { $0 + $1.rotationNanos }
        let xfer = io.entries.values.reduce(0) { $0 + $1.transferNanos }
        #expect(seek + rot + xfer == c.totalBusyNanos)
        #expect(c.seekNanos + c.rotationNanos + c.transferNanos == c.totalBusyNanos)
        #expect((io.entries["write L3"]?.ops ?? 0) >= 1)
        #expect((io.entries["checkpoint"]?.busyNanos ?? 0) > 0)
        #expect(io.entries.keys.contains { $0.hasPrefix("read L") })
        if policy == "kvimr-merge-always" {
            #expect(io.entries["RMW drive"] == nil)
            #expect((io.entries["RMW merged"]?.ops ?? 0) == 1)
        } else {
            // The drive's RMW around the bottom write, counted apart from it.
            let rmw = try #require(io.entries["RMW drive"])
            #expect(rmw.busyNanos == c.rmwBusyNanos && rmw.ops == c.rmwOps && rmw.ops == 2)
            #expect(io.entries["RMW merged"] == nil)
        }
    }

    @Test func sinceSubtracts() throws {
        let (io, _) = try run(policy: "two-phase")
        #expect(io.since(io).entries.isEmpty)
        #expect(io.since(IOBreakdown()) == io)
    }
}
