import Testing
import IMRDisk
import KVIMR

/// The write-behind queue while the drive fails (review finding 6 of session 3): memory stays
/// bounded, and a deleted file's failed write neither blocks checkpoints nor lands later.
@Suite struct WriteBehindFailureTests {
    /// Tracks of 32 KiB (64 sectors of 512 B), 7 MiB in all; two-phase queues one track per
    /// early write-out (the queue's cap is one track).
    let g = smallGeometry(tracks: 256, bottom: 64, top: 48)
    let track = 32 * 1024

    /// Was a bug: after a background write failed, the thread stopped and every later early
    /// write-out was queued behind it without waiting (the cap was checked only while the
    /// thread ran), and the buffer budget could not write anything out either, so appends
    /// kept buffering until the next sync: memory grew without bound while the drive failed.
    /// Now an append past the budget retries the queue and gets the error.
    @Test func appendsGetTheErrorOnceTheBudgetIsFullWhileTheDriveFails() throws {
        let (mem, faulty, k) = try makeKVIMR(g) { FaultyTrackDevice($0) }
        k.bufferBudgetBytes = 256 * 1024
        let f = try k.create(kind: .vlog, level: 0)
        let other = try k.create(kind: .wal, level: 0)
        let rule = faulty.inject(FaultRule([.writeTrack]))
        // Before F's write is queued: once its failure is known, this append (a second 256 KiB
        // buffer page, past the budget) would retry the queue and get the error.
        try k.append(other, [7])
        var accepted = pattern(track + 10, seed: 50)
        try k.append(f, accepted)   // one full track queued; its write fails
        #expect(throws: KVIMRError.self) { try k.sync([other]) }   // the failure is known now
        var refused: KVIMRError? = nil
        for i in 0..<100 {
            let chunk = pattern(track, seed: 51 + UInt64(i))
            do throws(KVIMRError) {
                try k.append(f, chunk)
                accepted += chunk
            } catch {
                refused = error
                break
            }
        }
        let err = try #require(refused, "appends went on buffering: \(accepted.count) bytes accepted")
        #expect(err.kind == .io)
        #expect(accepted.count <= 512 * 1024)
        #expect(k.peakBufferedBytes < 1 << 20, "buffers peaked at \(k.peakBufferedBytes) bytes")
        #expect(k.size(f) == UInt64(accepted.count), "a refused append changes nothing")
        #expect(try readAll(k, f) == accepted)
        // The drive recovers: everything accepted is stored, and appends go on.
        faulty.remove(rule)
        try k.append(f, [1, 2, 3])
        accepted += [1, 2, 3]
        try k.syncAll()
        #expect(try readAll(k, f) == accepted)
        let k2 = try KVIMR(device: mem.crashed())
        #expect(try readAll(k2, f) == accepted)
        #expect(try readAll(k2, other) == [7])
        try k2.close()
        try k.close()
    }

    /// Was a bug: a failed queued write of a file deleted since stayed at the head of the
    /// queue, so every later sync and checkpoint retried it — and failed while its track
    /// kept failing — though nothing needs those bytes (the file's tracks are freed). Its jobs
    /// are dropped at delete: syncs go on, and nothing is written to its old tracks.
    @Test func deletedFilesFailedWriteIsDroppedAndNeverWritten() throws {
        let (mem, faulty, k) = try makeKVIMR(g) { FaultyTrackDevice($0) }
        let a = try k.create(kind: .sstable, level: 1)
        let other = try k.create(kind: .wal, level: 0)
        let all = faulty.inject(FaultRule([.writeTrack]))
        try k.append(a, pattern(2 * track + 100, seed: 60))   // two full tracks queued
        let data = pattern(5000, seed: 61)
        try k.append(other, data)
        #expect(throws: KVIMRError.self) { try k.sync([other]) }
        // From now on only A's tracks fail.
        let aTracks = (k.extents(a) ?? []).map(\.track)
        try #require(aTracks.count >= 2)
        faulty.remove(all)
        for t in aTracks { faulty.inject(FaultRule([.writeTrack], track: t)) }
        let fired = faulty.injectedCount
        try k.delete(a)
        try k.sync([other])
        #expect(faulty.injectedCount == fired, "a write to the deleted file's tracks was tried")
        try k.syncAll()
        #expect(faulty.injectedCount == fired)
        #expect(try readAll(k, other) == data)
        let k2 = try KVIMR(device: mem.crashed())
        #expect(k2.size(a) == nil)
        #expect(try readAll(k2, other) == data)
        try k2.close()
        faulty.removeAllRules()
        try k.close()
    }

    /// A failure of another file's write stays (it is retried); only the deleted file's
    /// jobs go, and the survivor's bytes are stored once the drive recovers.
    @Test func deleteKeepsTheOtherFilesFailedWrites() throws {
        let (mem, faulty, k) = try makeKVIMR(g) { FaultyTrackDevice($0) }
        let a = try k.create(kind: .sstable, level: 1)
        let b = try k.create(kind: .sstable, level: 1)
        let rule = faulty.inject(FaultRule([.writeTrack]))
        let bData = pattern(track + 300, seed: 70)
        try k.append(b, bData)                                 // B's track fails first
        try k.append(a, pattern(track + 200, seed: 71))
        #expect(throws: KVIMRError.self) { try k.sync([b]) }
        try k.delete(a)
        #expect(throws: KVIMRError.self) { try k.sync([b]) }   // B's write is still failing
        faulty.remove(rule)
        try k.sync([b])
        #expect(try readAll(k, b) == bData)
        let k2 = try KVIMR(device: mem.crashed())
        #expect(k2.size(a) == nil)
        #expect(try readAll(k2, b) == bData)
        try k2.close()
        try k.close()
    }
}
