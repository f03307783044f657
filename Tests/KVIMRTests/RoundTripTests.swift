import IMRDisk
import KVIMR
import Testing

@Suite struct RoundTripTests {
    @Test func appendReadAcrossTrackBoundaries() throws {
        let (_, k) = try makeKVIMR()
        let n = try k.create(kind: .sstable, level: 1)
        // Odd-sized appends so chunks straddle sectors and tracks (bottom 8 KiB, top 6 KiB).
        var written = 0
        for size in [1, 511, 513, 4000, 8192, 12345, 3, 20000, 777] {
            try k.append(n, pattern(size, seed: 7, from: written))
            written += size
            #expect(k.size(n) == UInt64(written))
            // Everything appended so far reads back, buffered or not.
            #expect(try readAll(k, n) == pattern(written, seed: 7))
        }
        try k.sync([n])
        #expect(try readAll(k, n) == pattern(written, seed: 7))
        // Reads at arbitrary offsets and lengths, including ones that end at or pass EOF.
        for (off, len) in [(0, 1), (511, 2), (8191, 2), (8192, 8192), (20000, 30000), (written - 5, 100), (written, 10)] {
            let got = try readRange(k, n, at: off, count: len)
            let end = min(written, off + len)
            #expect(got == Array(pattern(written, seed: 7)[off..<end]))
        }
        let past = kvimrError { _ = try readRange(k, n, at: written + 1, count: 1) }
        #expect(past?.kind == .outOfRange)
        // The file spans several tracks, each owned by it alone.
        let extents = try #require(k.extents(n))
        #expect(extents.count >= 6)
        #expect(tracksAreExclusive(k))
    }

    @Test func syncedTailIsRewrittenByLaterAppends() throws {
        let (dev, k) = try makeKVIMR()
        let n = try k.create(kind: .wal, level: 0)
        var data: [UInt8] = []
        // WAL-like: many small appends, each followed by a sync (the last sector is rewritten).
        for i in 0..<60 {
            let chunk = pattern(37 + i * 11, seed: UInt64(i))
            data += chunk
            try k.append(n, chunk)
            try k.sync([n])
            if i % 7 == 0 { #expect(try readAll(k, n) == data) }
        }
        try k.close()
        let dev2 = dev.reopened()
        let k2 = try KVIMR(device: dev2)
        #expect(try readAll(k2, n) == data)
        // A reopened file continues from the middle of its last sector.
        let more = pattern(3000, seed: 99)
        try k2.append(n, more)
        try k2.sync([n])
        #expect(try readAll(k2, n) == data + more)
        try k2.close()
        let k3 = try KVIMR(device: dev2.reopened())
        #expect(try readAll(k3, n) == data + more)
    }

    @Test func reopenAfterCloseKeepsEverything() throws {
        let (dev, k) = try makeKVIMR()
        var expected: [FileNumber: [UInt8]] = [:]
        for i in 0..<12 {
            let n = try k.create(kind: FileKind.allCases[i % 4], level: i % 5)
            let bytes = pattern(i * 3001 + 17, seed: UInt64(i))
            try k.append(n, bytes)
            if i % 3 == 0 { try k.seal(n) }
            expected[n] = bytes
        }
        try k.setRoot([1, 2, 3, 4])
        try k.close()
        #expect(kvimrError { _ = try k.create(kind: .wal, level: 0) } != nil)

        let k2 = try KVIMR(device: dev.reopened())
        #expect(k2.root == [1, 2, 3, 4])
        #expect(k2.files().count == 12)
        for info in k2.files() {
            #expect(try readAll(k2, info.number) == expected[info.number])
            #expect(info.sealed == ((info.number - 1) % 3 == 0))
            #expect(info.level == Int(info.number - 1) % 5)
        }
        // Numbers are never reused: the next file gets a fresh one.
        let fresh = try k2.create(kind: .manifest, level: 0)
        #expect(fresh == 13)
        #expect(tracksAreExclusive(k2))
    }

    @Test func manyFiles() throws {
        let (dev, k) = try makeKVIMR(smallGeometry(tracks: 400))
        var live: [FileNumber: Int] = [:]
        for i in 0..<300 {
            let n = try k.create(kind: .sstable, level: i % 7)
            try k.append(n, pattern(100 + i, seed: n))
            live[n] = 100 + i
            if i % 4 == 3 {
                let victim = live.keys.sorted()[i % live.count]
                try k.delete(victim)
                live[victim] = nil
            }
            if i % 50 == 49 { try k.syncAll() }
        }
        try k.close()
        let k2 = try KVIMR(device: dev.reopened())
        #expect(Set(k2.files().map(\.number)) == Set(live.keys))
        for (n, len) in live { #expect(try readAll(k2, n) == pattern(len, seed: n)) }
        #expect(tracksAreExclusive(k2))
        let s = k2.stats()
        #expect(s.files == live.count)
        #expect(s.bottomTracksUsed + s.topTracksUsed == live.count)
    }

    @Test func sealedAndUnknownFilesAndReadOnly() throws {
        let (dev, k) = try makeKVIMR()
        let n = try k.create(kind: .sstable, level: 2)
        try k.append(n, pattern(1000, seed: 1))
        try k.seal(n)
        #expect(kvimrError { try k.append(n, [1]) }?.kind == .sealed)
        #expect(kvimrError { try k.append(999, [1]) }?.kind == .notFound)
        #expect(kvimrError { try k.delete(999) }?.kind == .notFound)
        #expect(kvimrError { _ = try readRange(k, 999, at: 0, count: 1) }?.kind == .notFound)
        #expect(k.size(999) == nil)
        #expect(kvimrError { try k.setRoot([UInt8](repeating: 0, count: 4097)) }?.kind == .outOfRange)
        try k.close()

        let ro = try KVIMR(device: dev.reopened(), readOnly: true)
        #expect(try readAll(ro, n) == pattern(1000, seed: 1))
        #expect(kvimrError { _ = try ro.create(kind: .wal, level: 0) }?.kind == .readOnly)
        #expect(kvimrError { try ro.delete(n) }?.kind == .readOnly)
        #expect(kvimrError { try ro.setRoot([]) }?.kind == .readOnly)
        #expect(kvimrError { try ro.syncAll() }?.kind == .readOnly)
        #expect(ro.files().count == 1)
    }

    @Test func statsFollowTheData() throws {
        let (_, k) = try makeKVIMR()
        let before = k.stats()
        #expect(before.policy == "two-phase")
        #expect(before.tracksTotal == 64)
        #expect(before.reservedTracks == 4)                       // WAL/manifest only
        #expect(before.freeBytes == before.capacityBytes - 4 * 8192)
        let n = try k.create(kind: .vlog, level: 0)
        try k.append(n, pattern(20000, seed: 3))
        let mid = k.stats()
        #expect(mid.bytesBuffered + mid.bytesStored == 20000)
        try k.sync([n])
        let after = k.stats()
        #expect(after.bytesBuffered == 0)
        #expect(after.bytesStored == 20000)
        #expect(after.checkpoints >= 1)
        // 20000 bytes on 8 KiB bottom tracks: three tracks, all bottom (two-phase).
        #expect(after.bottomTracksUsed == 3 && after.topTracksUsed == 0)
        #expect(after.freeBytes == after.capacityBytes - 3 * 8192 - 4 * 8192)
        #expect(after.device.bottom.writes > 0 && after.device.syncs >= 2)
    }
}
