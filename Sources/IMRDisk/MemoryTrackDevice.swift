import LSMCommon
import Synchronization

/// A crashable in-memory drive for tests: `crashed()` returns the device as a host crash
/// would leave it — every write covered by a completed `sync()`, plus (optionally, chosen by
/// the seed) some of the later writes, the last of which may be torn at a sector boundary.
///
/// Storage is sparse: one buffer per written sector (tracks and meta zone), so a drive of
/// thousands of tracks costs memory only for what was written. Every write since the last
/// `sync()` is kept in an undo log (the sectors' previous contents), which is how `crashed`
/// rebuilds any prefix of the unsynced writes. The device starts formatted: the superblock is
/// in memory and the meta zone reads as zeros. `trim` is drive metadata, not data: it is not in
/// the crash log, and a crashed device counts every stored sector as valid again.
public final class MemoryTrackDevice: TrackDevice, @unchecked Sendable {
    private let state: Mutex<MemoryDriveState>
    private let sb: Superblock

    /// A fresh, formatted in-memory drive (default: 64 tracks of the default geometry).
    public convenience init(trackCount: Int = 64, policy: String = "two-phase",
                            bottomSectors: Int = IMRGeometry.defaultBottomSectors,
                            topSectors: Int = IMRGeometry.defaultTopSectors) {
        let g = IMRGeometry(bottomSectors: bottomSectors, topSectors: topSectors, trackCount: trackCount)
        self.init(geometry: g, policy: policy)
    }

    /// A fresh drive of any geometry (e.g. a small meta zone or 512-byte sectors for tests).
    /// An invalid geometry is a programming error of the test that asks for it.
    public init(geometry: IMRGeometry, policy: String = "two-phase", uuid: [UInt8]? = nil, createdAt: UInt64 = 0) {
        if let why = Superblock.validate(geometry) { preconditionFailure("MemoryTrackDevice: \(why)") }
        let id = uuid ?? (0..<16).map { _ in UInt8.random(in: 0...255) }
        self.sb = Superblock(geometry: geometry, policy: policy, uuid: id, createdAt: createdAt)
        self.state = Mutex(MemoryDriveState(geometry: geometry))
    }

    private init(superblock: Superblock, state: MemoryDriveState) {
        self.sb = superblock
        self.state = Mutex(state)
    }

    /// The state after a crash now. `keepUnsynced`: how many of the unsynced writes (in order)
    /// survive; `tearLast`: the last surviving one keeps only a prefix of its sectors (half of
    /// them, rounded down — so a one-sector write torn is a write lost).
    public func crashed(keepUnsynced: Int = 0, tearLast: Bool = false) -> MemoryTrackDevice {
        crash(keepUnsynced, tearLast ? .half : .none)
    }

    /// Like `crashed(keepUnsynced:tearLast:)`, tearing the last surviving write after exactly
    /// `keepSectorsOfLast` of its sectors (nil: not torn).
    public func crashed(keepUnsynced: Int, keepSectorsOfLast: Int?) -> MemoryTrackDevice {
        crash(keepUnsynced, keepSectorsOfLast.map { .after($0) } ?? .none)
    }

    private func crash(_ keep: Int, _ tear: MemoryDriveState.Tear) -> MemoryTrackDevice {
        let after = state.withLock { $0.afterCrash(keep: keep, tear: tear) }
        return MemoryTrackDevice(superblock: sb, state: after)
    }

    /// A crash chosen by `seed`: keeps a random prefix of the unsynced writes and tears its last
    /// write at a random sector boundary half of the time. Same seed, same writes → same result.
    public func crashed(seed: UInt64) -> MemoryTrackDevice {
        var rng = SplitMix64(seed: seed)
        let after = state.withLock { s in
            let keep = Int(rng.next() % UInt64(s.log.count + 1))
            let tear = rng.next() & 1 == 1
            return s.afterCrash(keep: keep, tear: tear ? .random(rng.next()) : .none)
        }
        return MemoryTrackDevice(superblock: sb, state: after)
    }

    /// Number of writes (track or meta) not yet covered by a sync.
    public var unsyncedWriteCount: Int { state.withLock { $0.log.count } }

    /// Sectors currently stored (for tests asserting that memory follows what was written).
    public var storedSectorCount: Int { state.withLock { $0.tracks.count + $0.meta.count } }

    /// Whether `sector` of `track` is marked as holding valid data.
    public func isValid(_ track: Int, sector: Int) -> Bool {
        state.withLock { $0.model.validity.isValid(track, sector) }
    }

    /// Marks sectors valid without writing them (the host rebuilding validity after a restart).
    public func markValid(_ track: Int, sector: Int, count: Int) {
        guard let r = TrackIOCheck.clip(sb.geometry, track: track, sector: sector, count: count) else { return }
        state.withLock { $0.model.markValid(track: track, range: r) }
    }

    public var superblock: Superblock { sb }
    public var metaCapacity: Int { sb.geometry.metaZoneBytes - Superblock.size }

    public func readTrack(_ track: Int, sector: Int, into buffer: UnsafeMutableRawBufferPointer) throws(DeviceError) {
        let g = sb.geometry
        let count = try TrackIOCheck.sectors(g, track: track, sector: sector, byteCount: buffer.count)
        try state.withLock { (s) throws(DeviceError) in
            guard !s.closed else { throw TrackIOCheck.closed }
            s.readSectors(track: track, sector: sector, count: count, into: buffer)
            s.model.read(track: track, range: sector..<(sector + count))
        }
    }

    public func writeTrack(_ track: Int, sector: Int, from buffer: UnsafeRawBufferPointer, mode: WriteMode) throws(DeviceError) {
        let g = sb.geometry
        let count = try TrackIOCheck.sectors(g, track: track, sector: sector, byteCount: buffer.count)
        try state.withLock { (s) throws(DeviceError) in
            guard !s.closed else { throw TrackIOCheck.closed }
            s.writeTrack(track: track, sector: sector, count: count, from: buffer, mode: mode)
        }
    }

    public func trim(_ track: Int, sector: Int, count: Int) {
        guard let r = TrackIOCheck.clip(sb.geometry, track: track, sector: sector, count: count) else { return }
        state.withLock { s in
            if !s.closed { s.model.trim(track: track, range: r) }
        }
    }

    public func readMeta(offset: Int, into buffer: UnsafeMutableRawBufferPointer) throws(DeviceError) {
        try TrackIOCheck.meta(sb.geometry, offset: offset, byteCount: buffer.count, capacity: metaCapacity)
        try state.withLock { (s) throws(DeviceError) in
            guard !s.closed else { throw TrackIOCheck.closed }
            s.readMeta(offset: offset, into: buffer)
            s.model.meta(write: false, offset: offset, bytes: buffer.count)
        }
    }

    public func writeMeta(offset: Int, from buffer: UnsafeRawBufferPointer) throws(DeviceError) {
        try TrackIOCheck.meta(sb.geometry, offset: offset, byteCount: buffer.count, capacity: metaCapacity)
        try state.withLock { (s) throws(DeviceError) in
            guard !s.closed else { throw TrackIOCheck.closed }
            s.writeMeta(offset: offset, from: buffer)
            s.model.meta(write: true, offset: offset, bytes: buffer.count)
        }
    }

    public func sync() throws(DeviceError) {
        try state.withLock { (s) throws(DeviceError) in
            guard !s.closed else { throw TrackIOCheck.closed }
            s.log.removeAll()
            s.model.counters.syncs += 1
        }
    }

    public func counters() -> DeviceCounters { state.withLock { $0.model.snapshot() } }

    public func close() throws(DeviceError) {
        try state.withLock { (s) throws(DeviceError) in
            guard !s.closed else { throw TrackIOCheck.closed }
            s.log.removeAll()
            s.model.counters.syncs += 1
            s.closed = true
        }
    }

    /// A device holding everything this one holds now, as if synced and cleanly reopened
    /// (counters reset). Works on a closed device too — "reopen the image".
    public func reopened() -> MemoryTrackDevice {
        let copy = state.withLock { s in
            var c = MemoryDriveState(geometry: sb.geometry)
            c.tracks = s.tracks; c.meta = s.meta
            c.rebuildValidity()
            return c
        }
        return MemoryTrackDevice(superblock: sb, state: copy)
    }
}
