import IMRDisk
import KVIMR
import LSMStore
import Testing

/// A memtable switch writes the frozen WAL and the value log out without a checkpoint, and a
/// flush's table goes without one of its own (the manifest edit's sync makes it durable): a
/// crash before any sync recovers only writes made (nothing corrupt), a sync after switches covers
/// every older WAL, and a synced write recorded in a WAL frozen before its sync is durable.
@Suite struct MemtableSwitchSyncTests {
    @Test func syncAfterSwitchesCoversOlderWALs() throws {
        let dev = try freshDevice()
        var o = smallOptions()
        o.valueLogThreshold = 64   // values of 200 bytes go to the value log
        let s = try openStore(dev, o)
        var model: [[UInt8]: [UInt8]] = [:]
        for i in 0..<600 {
            let v = value(i, version: 1, size: i % 3 == 0 ? 200 : 30)
            try s.put(key(i), v)
            model[key(i)] = v
        }
        // Unsynced: a crash recovers only what was written, nothing corrupt.
        let early = try openStore(dev.crashed(keepUnsynced: 0), o)
        let got = try dump(early)
        #expect(got.count <= 600)
        for (k, v) in got { #expect(model[k] == v) }
        try early.close()

        try s.sync()
        let synced = try openStore(dev.crashed(keepUnsynced: 0), o)
        #expect(same(try dump(synced), sortedModel(model)))
        try synced.close()
        try s.close()
    }

    @Test func syncedWriteInAFrozenWALIsDurable() throws {
        let dev = try freshDevice()
        let s = try openStore(dev)
        var b = WriteBatch()
        b.put(key(1), value(1, version: 1, size: 100))
        try s.write(b, sync: true)
        for i in 2..<400 { try s.put(key(i), value(i, version: 1, size: 100)) }   // several switches
        #expect(s.stats().flushes > 0)
        let crashed = try openStore(dev.crashed(keepUnsynced: 0))
        #expect(try crashed.get(key(1)) == value(1, version: 1, size: 100))
        try crashed.close()
        try s.close()
    }
}
