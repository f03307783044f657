import Testing
import Glibc
import Dispatch
import Synchronization
import IMRDisk
import KVIMR

/// Opens `dev`'s gate 200 ms from now, from another thread.
private func releaseLater(_ dev: GatedTrackDevice) {
    DispatchQueue.global().async {
        usleep(200_000)
        dev.isOpen = true
    }
}

/// Host-managed, two tracks per early write-out: a file's first track is a top, its next a
/// bottom far from it (so the batch is queued, and reordered bottoms first).
struct ReviewTopFirstPolicy: TrackAllocationPolicy {
    var name: String { "kvimr" }
    var writeMode: WriteMode { .hostManaged }
    var writeOutTracks: Int { 2 }
    func chooseTrack(_ state: AllocatorState, for request: TrackRequest) -> Int? {
        request.ownTracks.isEmpty ? state.freeTop.first() : state.freeBottom.members.last
    }
}

/// Review of the KVIMR write-behind (bb97309, 36c410b): whatever the background thread has
/// not written yet must still be read from memory, and nothing may land over newer data.
@Suite struct WriteBehindReviewTests {
    /// Tracks of 32 KiB (64 sectors of 512 B) under two-phase (bottoms first, one track per
    /// early write-out): an append of exactly one track's bytes is queued whole.
    let g = smallGeometry(tracks: 64, bottom: 64, top: 48)

    /// Was a bug (fixed: the buffer goes only once no queued write of the file is left):
    /// `KVIMRCore.seal` dropped the file's buffer whenever its own write-out queued nothing
    /// and `buf.end == rec.size`, without asking whether earlier queued chunks of the file are
    /// still unwritten. An early write-out that took every byte (the file ends on a track end)
    /// leaves exactly that state; reads then go to tracks the write-behind thread has not
    /// written yet (an SSTable's footer, a vLog segment's last records).
    @Test
    func sealAfterAWriteOutOfEveryByteStillReadsQueuedBytes() throws {
        let (mem, dev, k) = try makeKVIMR(g) { GatedTrackDevice($0) }
        let f = try k.create(kind: .sstable, level: 1)
        dev.isOpen = false
        let data = pattern(32 * 1024, seed: 31)
        try k.append(f, data)
        #expect(eventually { dev.waiting > 0 }, "the full track should be queued and held")
        // Every byte was planned onto the track (nothing left past the record's size).
        try #require(k.stats().bytesBuffered == 0)
        // The drive catches up a little later (a fixed seal may wait for it; at HEAD the read
        // below runs long before).
        releaseLater(dev)
        try k.seal(f)
        #expect(try readAll(k, f) == data)
        #expect(eventually { dev.isOpen })
        try k.sync([f])
        #expect(try readAll(k, f) == data)
        let k2 = try KVIMR(device: mem.crashed())
        #expect(try readAll(k2, f) == data)
        try k2.close()
        try k.close()
    }

    /// Was a bug (same fix): a second `seal` of a file whose tail the first seal queued drops the
    /// buffer before the tail is written.
    @Test
    func secondSealWhileTheTailIsQueuedStillReadsIt() throws {
        let (_, dev, k) = try makeKVIMR(g) { GatedTrackDevice($0) }
        let f = try k.create(kind: .vlog, level: 0)
        let data = pattern(1000, seed: 32)
        try k.append(f, data)
        dev.isOpen = false
        try k.seal(f)   // the tail (one whole sector + a padded one) is queued
        #expect(eventually { dev.waiting > 0 })
        releaseLater(dev)
        try k.seal(f)
        #expect(try readAll(k, f) == data)
        #expect(eventually { dev.isOpen })
        try k.sync([f])
        try k.close()
    }

    /// Was a bug (fixed: `reapWrites` drops only up to the first byte a queued piece still
    /// carries): a host-managed batch is queued bottoms first (`KVIMRCore.enqueue`), but each
    /// job keeps `fileEnd` = the end of its own piece in file order, and `reapWrites` drops the
    /// buffer's prefix up to the `fileEnd` of every completed job. A bottom piece later in the
    /// file than a top piece completes first, so the top's bytes leave the buffer while its
    /// write is still queued: reads of them hit a track not written yet.
    @Test
    func reorderedHostManagedBatchKeepsQueuedTopBytesReadable() throws {
        let mem = MemoryTrackDevice(geometry: g, policy: "kvimr")
        try KVIMR.format(device: mem)
        let dev = GatedTrackDevice(mem)
        let k = try KVIMR(device: dev, allocationPolicy: ReviewTopFirstPolicy())
        let f = try k.create(kind: .vlog, level: 0)
        dev.heldTrack = 1   // the file's first track, the top
        let data = pattern(24 * 1024 + 32 * 1024 + 10_000, seed: 35)
        try k.append(f, data)
        let ext = k.extents(f) ?? []
        try #require(ext.map(\.track).count == 2 && ext[0].track == 1 && ext[1].track % 2 == 0,
                     "expected a top then a bottom: \(ext)")
        #expect(eventually { dev.waiting > 0 }, "the top's write should be held")
        _ = k.stats()   // reaps the completed bottom write
        #expect(try readRange(k, f, at: 0, count: 24 * 1024) == Array(data[0..<(24 * 1024)]))
        #expect(try readAll(k, f) == data)
        dev.heldTrack = nil
        try k.sync([f])
        #expect(try readAll(k, f) == data)
        let k2 = try KVIMR(device: mem.crashed(), allocationPolicy: ReviewTopFirstPolicy())
        #expect(try readAll(k2, f) == data)
        try k2.close()
        try k.close()
    }

    /// A file's tracks freed (`delete`) while its early write-out is still queued: a sync of
    /// another file waits for the queue before anything is reused, so the old queued write can
    /// never land over the new file's bytes, before or after a crash.
    @Test func deleteWithQueuedWritesNeverLetsTheOldWriteLandOverNewData() throws {
        let (mem, dev, k) = try makeKVIMR(g) { GatedTrackDevice($0) }
        let a = try k.create(kind: .sstable, level: 1)
        dev.isOpen = false
        try k.append(a, pattern(32 * 1024 + 100, seed: 33))
        #expect(eventually { dev.waiting > 0 })
        let oldTracks = Set((k.extents(a) ?? []).map(\.track))
        try k.delete(a)
        DispatchQueue.global().async {
            usleep(30_000)
            dev.isOpen = true
        }
        // New files fill the drive's first tracks again once a checkpoint released A's.
        var files: [(FileNumber, [UInt8])] = []
        for i in 0..<6 {
            let b = try k.create(kind: .sstable, level: 1)
            let bytes = pattern(20_000 + 3000 * i, seed: 40 + UInt64(i))
            try k.append(b, bytes)
            try k.sync([b])
            files.append((b, bytes))
        }
        #expect(dev.isOpen, "the first sync must have waited for the queued write")
        #expect(files.contains { !Set((k.extents($0.0) ?? []).map(\.track)).isDisjoint(with: oldTracks) },
                "a freed track should have been reused (else this test checks nothing)")
        for (b, bytes) in files { #expect(try readAll(k, b) == bytes) }
        #expect(tracksAreExclusive(k))
        let k2 = try KVIMR(device: mem.crashed())
        for (b, bytes) in files { #expect(try readAll(k2, b) == bytes) }
        #expect(k2.size(a) == nil)
        try k2.close()
        try k.close()
    }

    /// A background write that fails is not acknowledged by any later sync (of this file or
    /// another) until a retry succeeds; reads stay served from memory meanwhile.
    @Test func failedQueuedWriteFailsEverySyncUntilRetried() throws {
        let (mem, faulty, k) = try makeKVIMR(g) { FaultyTrackDevice($0) }
        let f = try k.create(kind: .vlog, level: 0)
        let other = try k.create(kind: .wal, level: 0)
        let rule = faulty.inject(FaultRule([.writeTrack]))
        let data = pattern(2 * 32 * 1024 + 10, seed: 34)
        try k.append(f, data)
        try k.append(other, [1, 2, 3])
        #expect(throws: KVIMRError.self) { try k.sync([other]) }
        #expect(throws: KVIMRError.self) { try k.syncAll() }
        #expect(try readAll(k, f) == data)
        let lost = try KVIMR(device: mem.crashed())
        #expect(lost.size(f) == nil || lost.size(f) == 0)
        try lost.close()
        faulty.remove(rule)
        try k.syncAll()
        let k2 = try KVIMR(device: mem.crashed())
        #expect(try readAll(k2, f) == data)
        #expect(try readAll(k2, other) == [1, 2, 3])
        try k2.close()
        try k.close()
    }
}
