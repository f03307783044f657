import IMRDisk
import KVIMR
import LSMStore
import Testing

/// A memtable switch that finds the drive full (the frozen WAL's buffered records have no track
/// to go to) fails with `.noSpace` and breaks nothing: the switch is done again by the next
/// write once there is room, a sync meanwhile makes the accepted records durable or reports the
/// error, and nothing acknowledged is lost. Any other failure of a switch still stops writes.
@Suite struct FullDriveSwitchTests {
    /// Takes every free track a WAL may take (all but the last): a file of kind `.wal` of its
    /// own, appended and synced until KVIMR refuses. Returns it (deleting it frees the drive).
    func fillDrive(_ kvimr: KVIMR) throws -> FileNumber {
        let filler = try kvimr.create(kind: .wal, level: 0)
        for chunk in [64 << 10, 4 << 10] {
            let bytes = [UInt8](repeating: 0xA5, count: chunk)
            while true {
                do throws(KVIMRError) {
                    try kvimr.append(filler, bytes)
                    try kvimr.sync([filler])
                } catch {
                    #expect(error.kind == .noSpace, "\(error)")
                    break
                }
            }
        }
        return filler
    }

    func expectDurable(_ dev: MemoryTrackDevice, _ model: [[UInt8]: [UInt8]], _ what: String,
                       _ o: LSMOptions = smallOptions()) throws {
        let crashed = try openStore(dev.crashed(keepUnsynced: 0), o)
        for (k, v) in model { #expect(try crashed.get(k) == v, "\(what): \(String(decoding: k, as: UTF8.self))") }
        try crashed.close()
    }

    @Test func noSpaceInASwitchIsDoneAgainOnceThereIsRoom() throws {
        let dev = try freshDevice(tracks: 60)
        let s = try openStore(dev)   // 100-byte values stay in the tree (no value log)
        var model: [[UInt8]: [UInt8]] = [:]
        var next = 0
        func put() throws(LSMError) {
            let v = value(next, version: 1, size: 100)
            try s.put(key(next), v)
            model[key(next)] = v
            next += 1
        }
        for _ in 0..<500 { try put() }   // a few tables and WALs
        try s.sync()
        s.waitForBackgroundWork()
        let filler = try fillDrive(s.kvimr)

        // Writes go on in the memtable until a switch must hand the WAL's records to a track.
        var failure: LSMError? = nil
        for _ in 0..<2_000 {
            do throws(LSMError) { try put() } catch { failure = error; break }
        }
        #expect(failure?.kind == .noSpace, "\(String(describing: failure))")
        #expect(s.memtableSwitchPending, "the noSpace did not come from a memtable switch")
        // Still full: writes and syncs report the full drive (the records accepted since the last
        // sync are not durable), and reads see every accepted write.
        #expect(lsmError({ try s.put(key(next), value(next, version: 1, size: 100)) })?.kind == .noSpace)
        #expect(lsmError({ try s.sync() })?.kind == .noSpace)
        for (k, v) in model { #expect(try s.get(k) == v) }

        // Room again. A sync while the switch waits makes the frozen WAL's records durable.
        try s.kvimr.delete(filler)
        try s.sync()
        #expect(s.memtableSwitchPending)
        try expectDurable(dev, model, "synced with the switch pending")
        // The next write does the switch first; writes and syncs work again. (Few enough writes
        // not to need the background flush, which retries its own noSpace on a timer.)
        for _ in 0..<40 { try put() }
        #expect(!s.memtableSwitchPending)
        try s.sync()
        try expectDurable(dev, model, "synced after the switch")
        let report = s.verify()
        #expect(report.problems.isEmpty, "\(report.problems)")
        try s.close()
        let again = try openStore(dev.reopened())
        for (k, v) in model { #expect(try again.get(k) == v, "reopened: \(String(decoding: k, as: UTF8.self))") }
        try again.close()
    }

    /// GC with a switch pending: `collectGarbage` freezes the memtable first and moves live
    /// values under the writer lock, so it does the switch again too; on the full drive it fails
    /// with `.noSpace` or frees what needs no room, and once there is room it works.
    @Test func gcDoesAPendingSwitch() throws {
        let dev = try freshDevice(tracks: 90)
        let s = try openStore(dev, gcOptions())   // values over 256 bytes go to the value log
        var model: [[UInt8]: [UInt8]] = [:]
        func put(_ i: Int, version: Int, size: Int) throws(LSMError) {
            let v = value(i, version: version, size: size)
            try s.put(key(i), v)
            model[key(i)] = v
        }
        for i in 0..<200 { try put(i, version: 1, size: 1000) }
        for i in stride(from: 0, to: 200, by: 2) { try put(i, version: 2, size: 1000) }   // garbage
        try s.flush()   // a fresh WAL with no track yet
        for i in 1000..<1020 { try put(i, version: 1, size: 100) }   // in the memtable and its WAL
        let filler = try fillDrive(s.kvimr)

        #expect(lsmError({ try s.flush() })?.kind == .noSpace)
        #expect(s.memtableSwitchPending)
        if let e = lsmError({ _ = try s.collectGarbage() }) { #expect(e.kind == .noSpace, "\(e)") }

        try s.kvimr.delete(filler)
        let result = try s.collectGarbage()
        #expect(!s.memtableSwitchPending)
        #expect(result.segmentsFreed > 0)
        for i in 1020..<1030 { try put(i, version: 1, size: 400) }
        try s.sync()
        #expect(same(try dump(s), sortedModel(model)))
        try expectDurable(dev, model, "after GC", gcOptions())
        try s.close()
    }

    /// A drive error while the switch writes the frozen WAL out is not retried: the WAL's state is
    /// unknown, so every later write and sync fails (until reopen), even once the drive works.
    @Test func ioErrorInASwitchStopsWrites() throws {
        let faulty = FaultyTrackDevice(try freshDevice())
        let kvimr = try KVIMR(device: faulty)
        kvimr.asyncWriteOut = false   // the switch's write-out reaches the drive before it returns
        let s = try LSMStore(kvimr: kvimr, options: smallOptions())
        for i in 0..<50 { try s.put(key(i), value(i, version: 1, size: 100)) }   // under one memtable
        s.waitForBackgroundWork()
        faulty.inject(.failRandomly([.writeTrack], oneIn: 1, seed: 1))
        let failure = lsmError { try s.flush() }   // freezes the memtable: a switch
        #expect(failure?.kind == .io, "\(String(describing: failure))")
        #expect(!s.memtableSwitchPending)
        faulty.removeAllRules()
        #expect(lsmError({ try s.put(key(99), value(99, version: 1, size: 100)) })?.kind == .io)
        #expect(lsmError({ try s.sync() })?.kind == .io)
        try? s.close()
    }
}
