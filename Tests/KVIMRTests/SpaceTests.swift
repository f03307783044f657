import IMRDisk
import KVIMR
import Testing

@Suite struct SpaceTests {
    @Test func deletedTracksAreReusedOnlyAfterACheckpoint() throws {
        // 6 tracks: bottoms 0, 2, 4 (8 KiB), tops 1, 3, 5 (6 KiB).
        let (dev, k) = try makeKVIMR(smallGeometry(tracks: 6))
        let a = try k.create(kind: .sstable, level: 1)
        try k.append(a, pattern(16384, seed: 1))        // two full bottom tracks
        try k.sync([a])
        let aTracks = Set(try #require(k.extents(a)).map(\.track))
        #expect(aTracks == [0, 2])

        try k.delete(a)
        #expect(k.stats().freeBytes == UInt64(8192 + 3 * 6144))  // a's tracks are pending, not free
        let b = try k.create(kind: .sstable, level: 1)
        try k.append(b, pattern(8192 + 6144, seed: 2))
        try k.seal(b)                                    // written out, no checkpoint yet
        let bTracks = Set(try #require(k.extents(b)).map(\.track))
        #expect(bTracks.isDisjoint(with: aTracks))
        #expect(bTracks == [4, 1])

        // A crash now must bring back the old map: a names its old tracks, untouched.
        let crashed = try KVIMR(device: dev.crashed(keepUnsynced: 1000))
        #expect(try readAll(crashed, a) == pattern(16384, seed: 1))

        try k.sync([b])                                  // the checkpoint drops a: its tracks are free
        #expect(k.stats().freeBytes == UInt64(2 * 8192 + 2 * 6144))
        let c = try k.create(kind: .sstable, level: 2)
        try k.append(c, pattern(8192, seed: 3))
        try k.sync([c])
        #expect(try #require(k.extents(c)).map(\.track) == [0])
        #expect(try readAll(k, b) == pattern(8192 + 6144, seed: 2))
        #expect(try readAll(k, c) == pattern(8192, seed: 3))
    }

    @Test func noSpaceThenDeleteThenSuccess() throws {
        let (dev, k) = try makeKVIMR(smallGeometry(tracks: 4))   // 2 × 8 KiB + 2 × 6 KiB = 28 KiB
        let a = try k.create(kind: .vlog, level: 0)
        var size = 0
        var failure: KVIMRError?
        while failure == nil {
            failure = kvimrError { try k.append(a, pattern(1000, seed: 5, from: size)) }
            if failure == nil { size += 1000 }
        }
        #expect(failure?.kind == .noSpace)
        #expect(failure?.errno == 28)
        #expect(size == 28000)                          // every track used, last 672 bytes left
        try k.sync([a])
        #expect(try readAll(k, a) == pattern(size, seed: 5))
        #expect(k.stats().freeBytes == 0)

        let b = try k.create(kind: .sstable, level: 0)
        #expect(kvimrError { try k.append(b, [1, 2, 3]) }?.kind == .noSpace)
        #expect(k.size(b) == 0)                         // a failed append changes nothing
        // What was written stays readable after a reopen too.
        try k.close()
        let dev2 = dev.reopened()
        let k2 = try KVIMR(device: dev2)
        #expect(try readAll(k2, a) == pattern(size, seed: 5))

        try k2.delete(a)
        try k2.append(b, pattern(20000, seed: 6))       // space pending a checkpoint counts
        try k2.sync([b])                                // the sync checkpoints, then reuses a's tracks
        #expect(try readAll(k2, b) == pattern(20000, seed: 6))
        try k2.close()
        let k3 = try KVIMR(device: dev2.reopened())
        #expect(k3.files().map(\.number) == [b])
        #expect(try readAll(k3, b) == pattern(20000, seed: 6))
    }

    @Test func noSpaceAtSyncWhenBufferedFilesCompete() throws {
        let (_, k) = try makeKVIMR(smallGeometry(tracks: 2))     // one 8 KiB bottom, one 6 KiB top
        let a = try k.create(kind: .sstable, level: 0)
        let b = try k.create(kind: .sstable, level: 0)
        let c = try k.create(kind: .sstable, level: 0)
        try k.append(a, pattern(5000, seed: 1))
        try k.append(b, pattern(5000, seed: 2))
        try k.append(c, pattern(5000, seed: 3))          // each fits alone; not all three
        try k.sync([a, b])
        let e = kvimrError { try k.sync([c]) }
        #expect(e?.kind == .noSpace)
        #expect(try readAll(k, a) == pattern(5000, seed: 1))
        #expect(try readAll(k, b) == pattern(5000, seed: 2))
        #expect(try readAll(k, c) == pattern(5000, seed: 3))   // still buffered, still readable
        try k.delete(a)
        try k.sync([c])
        #expect(try readAll(k, c) == pattern(5000, seed: 3))
    }

    @Test func mapThatOutgrowsItsSlotFailsClearly() throws {
        // Meta capacity 2 KiB → two 1 KiB slots → at most 960 bytes of payload.
        let (_, k) = try makeKVIMR(smallGeometry(metaBytes: 4096 + 2048))
        var error: KVIMRError?
        var created: [FileNumber] = []
        for _ in 0..<400 where error == nil {
            let n = try k.create(kind: .sstable, level: 3)
            created.append(n)
            error = kvimrError { try k.sync([n]) }
        }
        let e = try #require(error)
        #expect(e.kind == .noSpace)
        #expect(e.message.contains("outgrows"))
        // Dropping files makes the map fit again.
        for n in created.prefix(created.count / 2) { try k.delete(n) }
        try k.syncAll()
    }
}
