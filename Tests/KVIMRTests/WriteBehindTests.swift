import Testing
import Glibc
import Dispatch
import Synchronization
import IMRDisk
import KVIMR

/// A device whose track writes wait at a gate while it is closed, or (`heldTrack`) only the
/// writes to one track (reads go through at once): the write-behind thread is then held with
/// chunks still queued, as a slow drive would hold it.
final class GatedTrackDevice: ForwardingTrackDevice, @unchecked Sendable {
    let base: MemoryTrackDevice
    private let state = Mutex((open: true, heldTrack: Int?.none, waiting: 0, written: 0))

    init(_ base: MemoryTrackDevice) { self.base = base }

    var isOpen: Bool {
        get { state.withLock { $0.open } }
        set { state.withLock { $0.open = newValue } }
    }
    /// Only writes to this track wait (the gate open or not).
    var heldTrack: Int? {
        get { state.withLock { $0.heldTrack } }
        set { state.withLock { $0.heldTrack = newValue } }
    }
    /// Track writes waiting at the closed gate.
    var waiting: Int { state.withLock { $0.waiting } }
    var written: Int { state.withLock { $0.written } }

    func writeTrack(_ track: Int, sector: Int, from buffer: UnsafeRawBufferPointer, mode: WriteMode) throws(DeviceError) {
        state.withLock { $0.waiting += 1 }
        while state.withLock({ !$0.open || $0.heldTrack == track }) { usleep(500) }
        state.withLock { $0.waiting -= 1 }
        try base.writeTrack(track, sector: sector, from: buffer, mode: mode)
        state.withLock { $0.written += 1 }
    }
}

/// A formatted in-memory drive seen through `wrap` (a gated, faulty or stalling device) and a
/// KVIMR open on the wrapper.
func makeKVIMR<D: TrackDevice>(_ g: IMRGeometry, policy: String = "two-phase",
                               through wrap: (MemoryTrackDevice) -> D) throws -> (MemoryTrackDevice, D, KVIMR) {
    let mem = MemoryTrackDevice(geometry: g, policy: policy)
    try KVIMR.format(device: mem)
    let dev = wrap(mem)
    return (mem, dev, try KVIMR(device: dev))
}

/// Waits (up to 10 s) until `condition` holds.
func eventually(_ condition: () -> Bool) -> Bool {
    for _ in 0..<10_000 {
        if condition() { return true }
        usleep(1000)
    }
    return condition()
}

/// The write-behind queue (WriteBehind.swift): early write-outs of full tracks are written by
/// a background thread; reads, syncs and crashes must see exactly what a synchronous write-out
/// gives.
@Suite struct WriteBehindTests {
    /// Tracks of 32 KiB (64 sectors of 512 B) under two-phase: every full track is written out
    /// early, so a few tracks of appends queue several chunks.
    let g = smallGeometry(tracks: 64, bottom: 64, top: 48)

    @Test func queuedTracksAreReadFromMemoryAndACrashLosesOnlyUnsyncedBytes() throws {
        let (mem, gated, k) = try makeKVIMR(g) { GatedTrackDevice($0) }
        let f = try k.create(kind: .vlog, level: 0)
        let synced = pattern(5000, seed: 1)
        try k.append(f, synced)
        try k.sync([f])

        gated.isOpen = false
        // One early write-out (the queue holds one track's worth under two-phase: more would
        // make the writer wait for the gate) plus a buffered tail.
        let more = pattern(32 * 1024 + 777, seed: 2, from: synced.count)
        for i in stride(from: 0, to: more.count, by: 4000) {
            try k.append(f, Array(more[i..<min(i + 4000, more.count)]))
        }
        #expect(eventually { gated.waiting > 0 }, "a full track should be queued and held at the gate")
        // Held: nothing of the new tracks is on the device, yet every byte reads back.
        #expect(try readAll(k, f) == synced + more)

        // Power loss now: the synced bytes survive, nothing after them does.
        let crashed = mem.crashed()
        let k2 = try KVIMR(device: crashed)
        #expect(k2.size(f) == UInt64(synced.count))
        #expect(try readAll(k2, f) == synced)
        try k2.close()

        // The gate opens: a sync waits for the queued tracks, then everything is durable.
        gated.isOpen = true
        try k.sync([f])
        #expect(gated.waiting == 0)
        let k3 = try KVIMR(device: mem.crashed())
        #expect(try readAll(k3, f) == synced + more)
        try k3.close()
        try k.close()
    }

    @Test func syncWaitsForEveryQueuedTrack() throws {
        let (mem, gated, k) = try makeKVIMR(g) { GatedTrackDevice($0) }
        let f = try k.create(kind: .wal, level: 0)
        gated.isOpen = false
        // The gate opens from another thread a little later: until then the writer waits for
        // room in the queue (one track's worth), then the sync for every queued track.
        DispatchQueue.global().async {
            _ = eventually { gated.waiting > 0 }
            usleep(50_000)
            gated.isOpen = true
        }
        let data = pattern(5 * 32 * 1024 + 100, seed: 3)
        try k.append(f, data)
        try k.sync([f])
        #expect(gated.isOpen)
        #expect(gated.waiting == 0)
        let k2 = try KVIMR(device: mem.crashed())
        #expect(try readAll(k2, f) == data)
        try k2.close()
        try k.close()
    }

    @Test func failedBackgroundWriteFailsTheSyncAndIsRetried() throws {
        let (mem, faulty, k) = try makeKVIMR(g) { FaultyTrackDevice($0) }
        let f = try k.create(kind: .vlog, level: 0)
        let head = pattern(1000, seed: 4)
        try k.append(f, head)
        try k.sync([f])
        // Every track write fails from now on: the queued ones, and their retry at the sync.
        let rule = faulty.inject(FaultRule([.writeTrack]))
        let data = pattern(4 * 32 * 1024, seed: 5, from: head.count)
        try k.append(f, data)   // a failed early write-out is not the append's error
        #expect(try readAll(k, f) == head + data)
        #expect(throws: KVIMRError.self) { try k.sync([f]) }
        #expect(throws: KVIMRError.self) { try k.sync([f]) }
        // Still readable from memory; a crash now keeps the synced head only.
        #expect(try readAll(k, f) == head + data)
        let lost = try KVIMR(device: mem.crashed())
        #expect(try readAll(lost, f) == head)
        try lost.close()
        // The drive recovers: the next sync writes the queue and everything is durable.
        faulty.remove(rule)
        try k.sync([f])
        let k2 = try KVIMR(device: mem.crashed())
        #expect(try readAll(k2, f) == head + data)
        try k2.close()
        try k.close()
    }

    /// Tracks larger than a buffer page (600 sectors of 512 B = 300 KiB > 256 KiB): chunks are
    /// written in pieces that cross page boundaries; the bytes come back the same with the
    /// write-behind on and off, through a reopen and after crashes at every device write.
    @Test(arguments: [true, false])
    func chunksSpanningPagesRoundTrip(async: Bool) throws {
        let big = smallGeometry(tracks: 24, bottom: 600, top: 480, metaBytes: 4096 + 256 * 1024)
        let mem = MemoryTrackDevice(geometry: big, policy: "two-phase")
        try KVIMR.format(device: mem)
        let k = try KVIMR(device: mem)
        k.asyncWriteOut = async
        let f = try k.create(kind: .sstable, level: 1)
        var data: [UInt8] = []
        var piece = 3001
        while data.count < 1_400_000 {
            let p = pattern(piece, seed: 6, from: data.count)
            try k.append(f, p)
            data += p
            piece = piece * 7 % 65_521 + 1
        }
        #expect(try readAll(k, f) == data)
        try k.sync([f])
        let k2 = try KVIMR(device: mem.crashed())
        #expect(try readAll(k2, f) == data)
        try k2.close()
        try k.close()
        let k3 = try KVIMR(device: mem.reopened())
        #expect(try readAll(k3, f) == data)
        try k3.close()
    }

    /// A power loss after any number of the device writes of an unsynced write-out (queued
    /// chunks written in the background, in order): the file reopens at its synced size with
    /// its synced bytes, whatever was written after.
    @Test func crashAtEveryWriteOfAQueuedWriteOut() throws {
        let mem = MemoryTrackDevice(geometry: g, policy: "two-phase")
        try KVIMR.format(device: mem)
        let k = try KVIMR(device: mem)
        let f = try k.create(kind: .vlog, level: 0)
        let synced = pattern(40_000, seed: 7)
        try k.append(f, synced)
        try k.sync([f])
        try k.append(f, pattern(5 * 32 * 1024, seed: 8, from: synced.count))
        k.asyncWriteOut = false   // waits for the queue: every queued chunk is on the device, unsynced
        let writes = mem.unsyncedWriteCount
        for keep in 0...writes {
            for tear in [false, true] {
                let k2 = try KVIMR(device: mem.crashed(keepUnsynced: keep, tearLast: tear))
                #expect(k2.size(f) == UInt64(synced.count))
                #expect(try readAll(k2, f) == synced)
                try k2.close()
            }
        }
        try k.close()
    }
}
