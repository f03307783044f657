import IMRDisk
import KVIMR
import Testing

/// The WAL/manifest track reserve: tables and value logs stop short of it, WALs leave the
/// last track to manifests, manifests may take everything.
@Suite struct ReserveTests {
    @Test func reserveSizes() {
        #expect(TrackReserve.tracks(trackCount: 6) == 0)
        #expect(TrackReserve.tracks(trackCount: 16) == 2)
        #expect(TrackReserve.tracks(trackCount: 24) == 4)
        #expect(TrackReserve.tracks(trackCount: 5000) == TrackReserve.maxTracks)
    }

    @Test func tablesStopShortOfTheReserveWalsAndManifestsUseIt() throws {
        // 24 tracks (12 × 8 KiB bottoms, 12 × 6 KiB tops): 4 reserved.
        let (dev, k) = try makeKVIMR(smallGeometry(tracks: 24))
        #expect(k.stats().reservedTracks == 4)
        let t = try k.create(kind: .sstable, level: 0)
        var size = 0
        var failure: KVIMRError?
        while failure == nil {
            failure = kvimrError { try k.append(t, pattern(1000, seed: 1, from: size)); try k.sync([t]) }
            if failure == nil { size += 1000 }
        }
        #expect(failure?.kind == .noSpace)
        // The table stopped short of the reserve (the up-front byte check counts reserved
        // tracks at bottom capacity, so it may stop one track early).
        func freeTracks() -> Int { let st = k.stats(); return st.tracksTotal - st.bottomTracksUsed - st.topTracksUsed }
        #expect((4...5).contains(freeTracks()), "\(freeTracks())")
        #expect(k.stats().freeBytes == 0)
        let v = try k.create(kind: .vlog, level: 0)
        #expect(kvimrError { try k.append(v, pattern(9000, seed: 2)) }?.kind == .noSpace)

        // A WAL takes reserved tracks, but not the last one.
        let w = try k.create(kind: .wal, level: 0)
        var walSize = 0
        failure = nil
        while failure == nil {
            failure = kvimrError { try k.append(w, pattern(1000, seed: 3, from: walSize)); try k.sync([w]) }
            if failure == nil { walSize += 1000 }
        }
        #expect(failure?.kind == .noSpace)
        #expect((1...2).contains(freeTracks()), "\(freeTracks())")   // the last one is the manifests'
        #expect(try #require(k.extents(w)).count >= 2)
        // A manifest still gets the last track.
        let m = try k.create(kind: .manifest, level: 0)
        try k.append(m, pattern(500, seed: 4))
        try k.sync([m])
        #expect(try readAll(k, m) == pattern(500, seed: 4))
        #expect(freeTracks() <= 1)
        #expect(try readAll(k, w).prefix(walSize) == pattern(walSize, seed: 3)[...])
        // Everything synced survives a crash.
        let k2 = try KVIMR(device: dev.crashed(keepUnsynced: 0))
        #expect(try readAll(k2, m) == pattern(500, seed: 4))
        #expect(try readAll(k2, w) == pattern(walSize, seed: 3))
        #expect(k2.stats().reservedTracks == 4)
    }
}
