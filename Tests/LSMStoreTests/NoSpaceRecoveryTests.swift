import IMRDisk
import KVIMR
import LSMStore
import Testing

/// A store on a full drive opens again: recovery needs no table track (a replayed memtable
/// without room for its L0 table waits in memory, its WALs kept) and finds its new WAL and
/// manifest in KVIMR's reserve.
@Suite struct NoSpaceRecoveryTests {
    @Test func fullDriveReopensWithEverythingSynced() throws {
        var dev = try freshDevice(tracks: 40)
        var written = 0
        var synced = 0    // keys below this were synced: they survive anything
        var deferredOpens = 0
        for round in 0..<4 {
            let s = try openStore(dev)
            if round > 0 && s.kvimr.files().filter({ $0.kind == .wal }).count > 1 { deferredOpens += 1 }
            written = synced
            for i in stride(from: 0, to: synced, by: 11) {
                #expect(try s.get(key(i)) == value(i, version: 0, size: 900), "round \(round) key \(i)")
            }
            var failure: LSMError? = nil
            for i in written..<(written + 100_000) {
                do throws(LSMError) {
                    try s.put(key(i), value(i, version: 0, size: 900))
                    written = i + 1
                    if i % 16 == 0 { try s.sync(); synced = written }
                } catch { failure = error; break }
            }
            #expect(failure?.kind == .noSpace, "\(String(describing: failure))")
            try? s.close()
            dev = dev.crashed(keepUnsynced: 0)
        }
        // The last state: the store opens read-write and keeps every synced key.
        let s = try openStore(dev)
        for i in 0..<synced where i % 7 == 0 || i == synced - 1 {
            #expect(try s.get(key(i)) == value(i, version: 0, size: 900), "key \(i)")
        }
        let report = s.verify()
        #expect(report.problems.isEmpty, "\(report.problems)")
        #expect(report.orphanFiles.isEmpty, "kept WALs reported as orphans: \(report.orphanFiles)")
        try? s.close()
        #expect(deferredOpens > 0, "no open had to defer its flush")
    }
}
