import IMRDisk
import KVIMR
import Testing

/// A read-only open cannot replay a pending merged-RMW journal (that writes). It must still read
/// correctly: reads of journaled top runs are served from the journal, so a crash inside a
/// merged RMW damages nothing a read-only open (fsck, a read-only mount) sees.
@Suite struct ReadOnlyJournalTests {
    @Test func readOnlyOpenServesJournaledTops() throws {
        let g = smallGeometry(tracks: 5)
        var overlaid = 0
        for budget in 1...30 {
            let (mem, dev, k, others, w) = try mergedRMWScene(g) { CrashingDevice($0) }
            dev.setBudget(budget)
            _ = kvimrError { try k.append(w, pattern(g.bottomSectors * g.sectorSize, seed: 5)); try k.sync([w]) }
            // Every unsynced write survives: the bottom write that damaged the tops included.
            let crashed = mem.crashed(keepUnsynced: mem.unsyncedWriteCount)
            let ro = try KVIMR(device: crashed, readOnly: true)
            overlaid += ro.stats().journalRunsOverlaid
            for (n, bytes) in others { #expect(try readAll(ro, n) == bytes, "budget \(budget)") }
            // Read-only stays read-only: nothing written, the journal still pending.
            #expect(kvimrError { _ = try ro.create(kind: .wal, level: 0) }?.kind == .readOnly)
            // The next read-write open replays it and reads the same.
            let rw = try KVIMR(device: crashed.reopened())
            for (n, bytes) in others { #expect(try readAll(rw, n) == bytes, "budget \(budget) after replay") }
        }
        // Some crash points left a durable journal behind (the case under test happened).
        #expect(overlaid > 0)
    }
}
