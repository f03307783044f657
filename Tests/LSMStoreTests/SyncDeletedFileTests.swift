import Testing
import KVIMR
import IMRDisk
import LSMStore

/// The WAL group commit lists the files to sync under the writer lock and syncs them after it:
/// a flush may delete the WAL meanwhile (its records are then in a synced table). The sync
/// must then sync what is left instead of failing — it used to fail, and a failed WAL sync
/// stops every later write (`randomizedAgainstModel(seed: 3)` hit it under load:
/// "sync files [102, 100]: no file 100").
@Suite struct SyncDeletedFileTests {
    @Test func syncSkipsFilesDeletedSinceListing() throws {
        let dev = try freshDevice()
        let kvimr = try KVIMR(device: dev)
        let kept = try kvimr.create(kind: .wal, level: 0)
        let gone = try kvimr.create(kind: .wal, level: 0)
        try kvimr.append(kept, [UInt8](repeating: 1, count: 5000))
        try kvimr.append(gone, [UInt8](repeating: 2, count: 5000))
        try kvimr.delete(gone)
        #expect(throws: KVIMRError.self) { try kvimr.sync([kept, gone]) }
        try kvimr.syncFilesSkippingDeleted([kept, gone])
        try kvimr.syncFilesSkippingDeleted([gone])
        // What was synced survives a crash.
        let after = try KVIMR(device: dev.crashed())
        #expect(after.size(kept) == 5000)
        #expect(after.size(gone) == nil)
    }
}
