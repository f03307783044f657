import IMRDisk

/// What a read-only open sees when a merged RMW was interrupted: the durable journal holds the
/// valid top-track runs the crash may have damaged, and a read-only open may not replay it
/// (that writes). So KVIMR reads through this wrapper: a track read overlapping a journaled run
/// gets the journaled bytes for those sectors, everything else comes from the drive. Writes are
/// refused (a read-only KVIMR issues none). The next read-write open replays the journal.
final class JournalOverlayDevice: TrackDevice, @unchecked Sendable {
    // Immutable after init: the runs and their bytes, per track.
    private let base: any TrackDevice
    private let runs: [Int: [(sector: Int, bytes: [UInt8])]]
    /// Journaled runs being served instead of the drive's sectors.
    let runCount: Int

    init(base: any TrackDevice, entries: [JournalEntry], data: [UInt8]) {
        self.base = base
        let ss = base.geometry.sectorSize
        var byTrack: [Int: [(sector: Int, bytes: [UInt8])]] = [:]
        var at = 0
        for e in entries {
            let len = e.sectorCount * ss
            guard at + len <= data.count else { break }
            byTrack[e.track, default: []].append((e.firstSector, Array(data[at..<(at + len)])))
            at += len
        }
        runs = byTrack
        runCount = entries.count
    }

    var superblock: Superblock { base.superblock }
    var metaCapacity: Int { base.metaCapacity }

    func readTrack(_ track: Int, sector: Int, into buffer: UnsafeMutableRawBufferPointer) throws(DeviceError) {
        try base.readTrack(track, sector: sector, into: buffer)
        guard let saved = runs[track] else { return }
        let ss = base.geometry.sectorSize
        let want = sector..<(sector + buffer.count / ss)
        for run in saved {
            let have = run.sector..<(run.sector + run.bytes.count / ss)
            let lo = max(want.lowerBound, have.lowerBound), hi = min(want.upperBound, have.upperBound)
            guard lo < hi else { continue }
            run.bytes.withUnsafeBytes { src in
                let from = (lo - run.sector) * ss, to = (lo - sector) * ss, n = (hi - lo) * ss
                UnsafeMutableRawBufferPointer(rebasing: buffer[to..<(to + n)])
                    .copyMemory(from: UnsafeRawBufferPointer(rebasing: src[from..<(from + n)]))
            }
        }
    }

    func writeTrack(_ track: Int, sector: Int, from buffer: UnsafeRawBufferPointer, mode: WriteMode) throws(DeviceError) {
        throw DeviceError(.io, errno: 30, "read-only open with a pending merged-RMW journal: no writes")
    }
    func trim(_ track: Int, sector: Int, count: Int) {}
    func readMeta(offset: Int, into buffer: UnsafeMutableRawBufferPointer) throws(DeviceError) {
        try base.readMeta(offset: offset, into: buffer)
    }
    func writeMeta(offset: Int, from buffer: UnsafeRawBufferPointer) throws(DeviceError) {
        throw DeviceError(.io, errno: 30, "read-only open with a pending merged-RMW journal: no writes")
    }
    func sync() throws(DeviceError) {}
    func counters() -> DeviceCounters { base.counters() }
    func close() throws(DeviceError) { try base.close() }
}
