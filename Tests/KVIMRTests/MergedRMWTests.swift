import IMRDisk
import KVIMR
import Testing

/// Merged RMW of the kvimr policy: a bottom write that meets valid top data reads it once,
/// journals it, writes the bottom host-managed (the drive really damages the tops) and
/// rewrites the tops. A crash at any device operation of it, keeping any prefix of the unsynced
/// writes (the last one possibly torn), loses no valid top data.
@Suite struct MergedRMWTests {
    /// Builds the 5-track scene (B0 T1 B2 T3 B4): files on B0, B4 and the tops T1, T3; B2 freed.
    /// The next bottom write (B2) meets valid data on both neighbours. Returns the files left
    /// with their contents.
    func scene(_ k: KVIMR, _ g: IMRGeometry) throws -> [FileNumber: [UInt8]] {
        let bt = g.bottomSectors * g.sectorSize, tt = g.topSectors * g.sectorSize
        var files: [FileNumber: [UInt8]] = [:]
        var middle: FileNumber = 0
        for (i, size) in [bt, bt, bt, tt - 100, tt - 7].enumerated() {
            let n = try k.create(kind: .sstable, level: 1 + i % 3)
            let bytes = pattern(size, seed: UInt64(i + 1))
            try k.append(n, bytes)
            try k.seal(n)
            try k.sync([n])
            files[n] = bytes
            if i == 1 { middle = n }
        }
        #expect(k.extents(middle)?.map(\.track) == [2])
        #expect(Set(files.keys.compactMap { k.extents($0)?.first?.track }) == [0, 1, 2, 3, 4])
        try k.delete(middle)
        files[middle] = nil
        try k.syncAll()                                    // the checkpoint releases B2
        return files
    }

    @Test func mergedRMWPreservesTopsAndCountsThem() throws {
        let g = smallGeometry(tracks: 5)
        let (dev, k) = try makeMergingKVIMR(g)
        let others = try scene(k, g)
        let before = k.stats()
        let w = try k.create(kind: .sstable, level: 2)
        try k.append(w, pattern(g.bottomSectors * g.sectorSize, seed: 5))
        try k.sync([w])
        #expect(k.extents(w)?.map(\.track) == [2])
        let after = k.stats()
        #expect(after.mergedRmwOps == before.mergedRmwOps + 1)
        #expect(after.rmwOps == before.rmwOps + 2)          // T1 and T3, once each
        #expect(dev.counters().top.rmwOps == 0)             // the drive did none itself
        for (n, bytes) in others { #expect(try readAll(k, n) == bytes) }
        #expect(try readAll(k, w) == pattern(g.bottomSectors * g.sectorSize, seed: 5))
    }

    /// Every crash point of the merged RMW (device-operation budget) × every prefix of the
    /// unsynced writes kept × the last kept write whole or torn after 0...20 sectors: about a
    /// thousand crash states over the variants; none loses valid data.
    @Test(arguments: 0..<4)
    func crashAnywhereInMergedRMW(variant: Int) throws {
        let g = smallGeometry(tracks: 5, bottom: 16 + 4 * variant, top: 12 + 3 * variant)
        var states = 0
        for budget in 1...30 {
            let (mem, dev, k, others, w) = try mergedRMWScene(g) { CrashingDevice($0) }
            let wBefore = [UInt8]()
            let extra = pattern(g.bottomSectors * g.sectorSize, seed: 5)
            dev.setBudget(budget)
            var completed = true
            do {
                try k.append(w, extra)
                try k.sync([w])
            } catch { completed = false }
            for keep in 0...mem.unsyncedWriteCount {
                for tear in [nil, 0, 1, 3, 7, 12, 20] as [Int?] {
                    states += 1
                    let k2 = try KVIMR(device: mem.crashed(keepUnsynced: keep, keepSectorsOfLast: tear))
                    for (n, bytes) in others { #expect(try readAll(k2, n) == bytes, "budget \(budget) keep \(keep)") }
                    let got = try readAll(k2, w)
                    let full = wBefore + extra
                    #expect(got.count >= wBefore.count && got == Array(full.prefix(got.count)))
                    if completed { #expect(got == full) }
                    #expect(tracksAreExclusive(k2))
                }
            }
        }
        #expect(states > 200)
    }

    /// EIO inside the merged RMW (the rewrite of a top fails) reaches the caller as EIO; the top
    /// data is put back at once when the retry works, else by the journal replay at the next
    /// open. Nothing else is damaged either way.
    @Test(arguments: [1, 1000])
    func eioInMergedRMW(failures: Int) throws {
        let g = smallGeometry(tracks: 5)
        let (mem, faulty, k, others, w) = try mergedRMWScene(g) { FaultyTrackDevice($0) }
        let wBefore = [UInt8]()
        faulty.inject(FaultRule([.writeTrack], track: 3, times: failures, effect: .fail(errno: 5)))
        let e = kvimrError { try k.append(w, pattern(g.bottomSectors * g.sectorSize, seed: 5)); try k.sync([w]) }
        #expect(e?.kind == .io && e?.errno == 5)
        faulty.removeAllRules()
        if failures == 1 {
            // The tops were put back at once; the failed sync left W's bytes buffered.
            for (n, bytes) in others { #expect(try readAll(k, n) == bytes) }
            #expect(try readAll(k, w) == wBefore + pattern(g.bottomSectors * g.sectorSize, seed: 5))
        }
        let k2 = try KVIMR(device: mem.crashed(keepUnsynced: mem.unsyncedWriteCount))
        for (n, bytes) in others { #expect(try readAll(k2, n) == bytes) }
        #expect(try readAll(k2, w) == wBefore)
    }
}

/// The cost-based default: a single bottom under two valid tops is cheaper left to the drive's
/// RMW than journaled; the data is preserved either way.
@Suite struct MergeChoiceTests {
    @Test func singleBottomGoesToTheDrive() throws {
        let g = smallGeometry(tracks: 5)
        let (dev, k) = try makeKVIMR(g, policy: "kvimr")
        let others = try MergedRMWTests().scene(k, g)
        let before = dev.counters()
        let w = try k.create(kind: .sstable, level: 2)
        try k.append(w, pattern(g.bottomSectors * g.sectorSize, seed: 5))
        try k.sync([w])
        #expect(k.stats().mergedRmwOps == 0)
        #expect(dev.counters().top.rmwOps - before.top.rmwOps == 2)
        for (n, bytes) in others { #expect(try readAll(k, n) == bytes) }
    }

    @Test func mergingPaysForLongRunsOnly() {
        #expect(!KVIMRPolicy.mergingPays(pairs: 2, tops: 2))     // one bottom
        #expect(!KVIMRPolicy.mergingPays(pairs: 4, tops: 3))     // two adjacent bottoms
        #expect(KVIMRPolicy.mergingPays(pairs: 8, tops: 5))      // four adjacent bottoms
        #expect(!KVIMRPolicy().prefersMergedRMW(pairs: 2, tops: 2))
        #expect(mergingKVIMR.prefersMergedRMW(pairs: 2, tops: 2))
        #expect(TwoPhasePolicy().prefersMergedRMW(pairs: 2, tops: 2))
    }
}
