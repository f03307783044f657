import IMRDisk
import KVIMR
import Testing

/// Properties every policy must keep, through the real KVIMR on the in-memory drive: no track
/// allocated twice, extents never overlap, a deleted file's tracks are not reused before a
/// checkpoint made the delete durable, everything written reads back (host-managed writes
/// never damage valid data), and the RMW accounting matches the drive's physics.
@Suite struct PolicyPropertyTests {
    /// Every named policy, and kvimr journaling every RMW (the merged path under the same load).
    static let policies = KVIMRPolicyName.allCases.map(\.rawValue) + ["kvimr-merge-always"]

    /// The allocator's running count of clean bottoms (kvimr's packing and scarcity rules read
    /// it instead of scanning the drive) equals a recount after every change of the free sets.
    @Test(arguments: 0..<8)
    func cleanBottomCountMatchesRecount(seed: Int) {
        var rng = TestRNG(seed: UInt64(seed) &* 977 &+ 5)
        let g = smallGeometry(tracks: rng.int(1...41))
        var s = AllocatorState(geometry: g, used: (0..<g.trackCount).filter { _ in rng.bool(30) })
        func recount(_ s: AllocatorState) -> Int { (0..<g.trackCount).filter { s.isCleanBottom($0) }.count }
        #expect(s.cleanBottomCount == recount(s))
        for _ in 0..<400 {
            let t = rng.int(0...(g.trackCount - 1))
            switch rng.int(0...9) {
            case 0...4: s.allocate(t)
            case 5...6: s.free(t)
            case 7: s.release(t)
            default: if rng.bool(30) { s.releasePending() }
            }
            #expect(s.cleanBottomCount == recount(s))
        }
    }

    @Test(arguments: policies, 0..<6)
    func randomWorkloadKeepsInvariants(policy: String, seed: Int) throws {
        var rng = TestRNG(seed: UInt64(seed * 31 + policy.count))
        let g = smallGeometry(tracks: rng.int(6...40))
        let (dev, k) = policy == "kvimr-merge-always" ? try makeMergingKVIMR(g) : try makeKVIMR(g, policy: policy)
        var model: [FileNumber: [UInt8]] = [:]
        var freedSinceCheckpoint = Set<Int>()
        var checkpoints = k.stats().checkpoints
        for _ in 0..<300 {
            let live = model.keys.sorted()
            let roll = rng.int(0...99)
            do {
                if roll < 15 || live.isEmpty {
                    let n = try k.create(kind: FileKind.allCases[rng.int(0...3)], level: rng.int(0...5))
                    model[n] = []
                } else if roll < 65 {
                    let n = live[rng.int(0...(live.count - 1))]
                    let chunk = pattern(rng.int(1...3 * g.bottomSectors * g.sectorSize), seed: n, from: model[n]!.count)
                    try k.append(n, chunk)
                    model[n]! += chunk
                } else if roll < 80 {
                    try k.sync(live.filter { _ in rng.bool(50) })
                } else {
                    let n = live[rng.int(0...(live.count - 1))]
                    let tracks = (k.extents(n) ?? []).map(\.track)
                    try k.delete(n)
                    model[n] = nil
                    freedSinceCheckpoint.formUnion(tracks)
                }
            } catch {
                #expect(error.kind == .noSpace, "unexpected \(error)")
            }
            let now = k.stats().checkpoints
            if now != checkpoints {
                checkpoints = now
                freedSinceCheckpoint.removeAll()
            }
            #expect(tracksAreExclusive(k))
            for f in k.files() {
                for e in k.extents(f.number) ?? [] {
                    #expect(!freedSinceCheckpoint.contains(e.track), "track \(e.track) reused before the delete was durable")
                    #expect(e.firstSector >= 0 && e.firstSector + e.sectorCount <= g.sectors(of: e.track))
                }
            }
        }
        _ = kvimrError { try k.syncAll() }
        for (n, bytes) in model {
            let got = try readAll(k, n)
            #expect(got == bytes, "\(policy): file \(n) reads back wrong")
        }
        let c = dev.counters()
        let chosen = KVIMRPolicyName(rawValue: policy)?.policy ?? mergingKVIMR
        if chosen.writeMode == .hostManaged && chosen.prefersMergedRMW(pairs: 2, tops: 2) {
            #expect(c.top.rmwOps == 0 && c.top.rmwBytes == 0, "a host-managed policy let the drive do RMW")
        }
    }

    /// Device-managed RMW accounting: a bottom rewrite under two valid tops costs exactly two
    /// top-track RMWs and the overlapped valid bytes, and the time of reading and rewriting them.
    @Test func deviceManagedRMWMatchesPhysics() throws {
        let g = smallGeometry(tracks: 5)
        let dev = MemoryTrackDevice(geometry: g)
        let ss = g.sectorSize
        let top = [UInt8](repeating: 7, count: g.topSectors * ss)
        try writeTrack(dev, 1, top, .hostManaged)
        try writeTrack(dev, 3, [UInt8](repeating: 8, count: 4 * ss), .hostManaged)   // sectors 0..<4 valid
        let before = dev.counters()
        try writeTrack(dev, 2, [UInt8](repeating: 9, count: g.bottomSectors * ss), .deviceManaged)
        let after = dev.counters()
        #expect(after.top.rmwOps - before.top.rmwOps == 2)
        #expect(after.top.rmwBytes - before.top.rmwBytes == UInt64((g.topSectors + 4) * ss))
        // The drive's RMW time (2 reads + 2 rewrites) is on the top tracks' account.
        #expect(after.top.busyNanos > before.top.busyNanos)
        #expect(after.top.writes == before.top.writes)       // host counters: host requests only
        var back = [UInt8](repeating: 0, count: g.topSectors * ss)
        try back.withUnsafeMutableBytes { p in try dev.readTrack(1, sector: 0, into: p) }
        #expect(back == top)
        // Host-managed: the same write really damages the valid tops, and costs no RMW.
        try writeTrack(dev, 2, [UInt8](repeating: 9, count: g.bottomSectors * ss), .hostManaged)
        #expect(dev.counters().top.rmwOps == after.top.rmwOps)
        try back.withUnsafeMutableBytes { p in try dev.readTrack(1, sector: 0, into: p) }
        #expect(back.allSatisfy { $0 == IMRFormat.damagePattern })
    }

    func writeTrack(_ d: MemoryTrackDevice, _ t: Int, _ bytes: [UInt8], _ mode: WriteMode) throws {
        try bytes.withUnsafeBytes { p in try d.writeTrack(t, sector: 0, from: p, mode: mode) }
    }

    @Test func threePhaseFillsEvenTopsFirst() {
        let g = smallGeometry(tracks: 16)
        var s = AllocatorState(geometry: g)
        let p = ThreePhasePolicy()
        var order: [Int] = []
        while let t = p.chooseTrack(s, for: TrackRequest(file: 1, kind: .sstable, level: 1)) {
            s.allocate(t); order.append(t)
        }
        #expect(order == [0, 2, 4, 6, 8, 10, 12, 14, 1, 5, 9, 13, 3, 7, 11, 15])
        var c = AllocatorState(geometry: g)
        var conv: [Int] = []
        while let t = ConventionalPolicy().chooseTrack(c, for: TrackRequest(file: 1, kind: .wal, level: 0)) {
            c.allocate(t); conv.append(t)
        }
        #expect(conv == Array(0..<16))
    }
}
