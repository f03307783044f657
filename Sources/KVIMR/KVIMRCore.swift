import IMRDisk

/// The state of an open KVIMR: the S2TMap, the allocator, the write buffers and the checkpoint
/// bookkeeping. Not thread-safe by itself; `KVIMR` keeps it behind a Mutex (device I/O happens
/// under that lock for now).
struct KVIMRCore: Sendable {
    let device: any TrackDevice
    let geometry: IMRGeometry
    let policy: any TrackAllocationPolicy
    let policyName: String
    let store: CheckpointStore
    let readOnly: Bool

    var map: S2TMap
    var alloc: AllocatorState
    var buffers: [FileNumber: FileBuffer] = [:]
    /// Bytes all write buffers may hold together before the largest are written out early
    /// (BufferBudget.swift); 0: no limit beyond the policy's per-file write-out.
    var bufferBudget: UInt64 = KVIMRCore.defaultBufferBudget
    var peakBuffered: UInt64 = 0
    /// Sequence number of the newest durable checkpoint.
    var sequence: UInt64
    /// True when the map (or a track it describes) changed since the last durable checkpoint.
    var dirty = false
    var checkpoints: UInt64 = 0
    var closed = false
    /// The merged-RMW journal region (nil on images without one).
    let journal: RMWJournal?
    var journalSequence: UInt64 = 0
    /// A merged RMW failed after its journal became durable and the tops could not be put back.
    var journalStuck = false
    var mergedRmwOps: UInt64 = 0
    /// Top tracks and bytes KVIMR itself read and rewrote in merged RMWs.
    var hostRmwTracks: UInt64 = 0
    var hostRmwBytes: UInt64 = 0
    /// Journal runs replayed at open (a merged RMW interrupted by a crash).
    var replayedJournalRuns = 0
    /// Read-only open over a pending journal: the journaled runs reads are served from.
    var overlayJournalRuns = 0
    /// Tracks only WAL and manifest files may take (`TrackReserve`): a full
    /// drive still has room for the engine to open (a new WAL and manifest) and log edits.
    let reservedTracks: Int
    /// Simulated drive time per kind of operation (`KVIMRStats.io`).
    var io = IOBreakdown()
    /// The category the next track writes are charged to (set per file by `flushBatch`).
    var ioCategory = "write ?"
    /// Full tracks of an early write-out are written by a background thread (`WriteBehind`).
    var asyncWriteOut = true
    let writeBehind: WriteBehind
    /// File bytes of each file's queued pieces not yet reaped as written (`reapWrites`).
    var inFlight: [FileNumber: [Range<UInt64>]] = [:]
    /// Write-buffer pages for reuse (10 MiB at most).
    let pagePool: PagePool

    init(device: any TrackDevice, policy: any TrackAllocationPolicy, policyName: String,
         readOnly: Bool) throws(KVIMRError) {
        self.geometry = device.geometry
        self.policy = policy
        self.policyName = policyName
        self.readOnly = readOnly
        reservedTracks = TrackReserve.tracks(trackCount: device.geometry.trackCount)
        store = try CheckpointStore(device: device)
        journal = RMWJournal(device: device)
        var reader: any TrackDevice = device
        if let journal {
            if !readOnly {
                // First repair any top track a crash caught inside a merged RMW.
                replayedJournalRuns = try journal.replay(on: device)
            } else if let (entries, data) = try journal.load(from: device), !entries.isEmpty {
                // Read-only: no replay (it writes); reads see the journaled top runs instead.
                let overlay = JournalOverlayDevice(base: device, entries: entries, data: data)
                overlayJournalRuns = overlay.runCount
                reader = overlay
            }
        }
        self.device = reader
        // Queued bytes: one early write-out's worth, within a quarter of the buffer budget.
        let writeOutBytes = KVIMRCore.writeOutBytes(tracks: policy.writeOutTracks, device.geometry)
        let pageBytes = FileBuffer.pageBytes(sectorSize: device.geometry.sectorSize)
        pagePool = PagePool(pageBytes: pageBytes, limit: max(1, (10 << 20) / pageBytes))
        writeBehind = WriteBehind(device: reader, limitBytes: min(writeOutBytes, Int(KVIMRCore.defaultBufferBudget / 4)))
        let loaded = try store.load(from: device)
        map = loaded.map
        sequence = loaded.sequence
        alloc = AllocatorState(geometry: geometry, used: map.files.values.flatMap { $0.extents.map(\.track) })
        for rec in map.files.values {
            for e in rec.extents { alloc.setLifetime(e.track, KVIMRPolicy.lifetimeClass(kind: rec.kind, level: rec.level)) }
            if !rec.sealed, let last = rec.extents.last { alloc.setOpen(last.track, true) }
        }
        if !readOnly {
            // Tracks written after the last durable checkpoint (lost in a crash) hold no valid
            // data any more: tell the drive, so it does not preserve them in RMW.
            for t in alloc.freeBottom.members { device.trim(t, sector: 0, count: geometry.sectors(of: t)) }
            for t in alloc.freeTop.members { device.trim(t, sector: 0, count: geometry.sectors(of: t)) }
            // Likewise the unused rest of each file's last track.
            for rec in map.files.values {
                guard let last = rec.extents.last else { continue }
                let end = last.firstSector + last.sectorCount
                device.trim(last.track, sector: end, count: geometry.sectors(of: last.track) - end)
            }
        }
    }

    // MARK: - guards

    func checkOpen() throws(KVIMRError) {
        if closed { throw KVIMRError(.io, "KVIMR is closed") }
    }

    func checkWritable() throws(KVIMRError) {
        try checkOpen()
        if readOnly { throw KVIMRError(.readOnly, "KVIMR is open read-only") }
    }

    func record(_ n: FileNumber) throws(KVIMRError) -> FileRecord {
        guard let rec = map.files[n] else { throw KVIMRError(.notFound, "no file \(n)") }
        return rec
    }

    /// Logical size: every appended byte, buffered or on tracks.
    func logicalSize(_ n: FileNumber) -> UInt64? {
        guard let rec = map.files[n] else { return nil }
        return buffers[n]?.end ?? rec.size
    }

    // MARK: - file lifecycle

    mutating func create(kind: FileKind, level: Int) throws(KVIMRError) -> FileNumber {
        try checkWritable()
        guard level >= 0 && level <= TrackMapFormat.maxLevel else {
            throw KVIMRError(.outOfRange, "level \(level) outside 0...\(TrackMapFormat.maxLevel)")
        }
        let n = map.nextFileNumber
        map.nextFileNumber += 1
        map.files[n] = FileRecord(number: n, kind: kind, level: level)
        dirty = true
        return n
    }

    mutating func append(_ n: FileNumber, _ bytes: UnsafeRawBufferPointer) throws(KVIMRError) {
        try append(n, bytes, UnsafeRawBufferPointer(start: nil, count: 0))
    }

    /// Appends `first` then `second`: both, or (refused up front) neither.
    mutating func append(_ n: FileNumber, _ first: UnsafeRawBufferPointer, _ second: UnsafeRawBufferPointer) throws(KVIMRError) {
        // Stored properties are read directly, not through `checkWritable()` or
        // `reservedBytes(leftBy:)`: calling a non-mutating method here copied the whole core
        // (a retain and a release of each of its references) on every append, and a copy of
        // the record would retain and release its extents array (together ~7% of a large-value
        // load's samples).
        if closed { throw KVIMRError(.io, "KVIMR is closed") }
        if readOnly { throw KVIMRError(.readOnly, "KVIMR is open read-only") }
        guard let at = map.files.index(forKey: n) else { throw KVIMRError(.notFound, "no file \(n)") }
        let (sealed, size, kind, owned) = map.files.values[at].appendFields(geometry)
        if sealed { throw KVIMRError(.sealed, "file \(n) is sealed") }
        let count = first.count + second.count
        guard count > 0 else { return }
        // Refuse up front what could never be placed, so a failed append changes nothing.
        let newEnd = (buffers[n]?.end ?? size) + UInt64(count)
        if newEnd > owned {
            let need = newEnd - owned
            let all = alloc.freeCapacityBytes + alloc.pendingCapacityBytes
            let keep = KVIMRCore.reservedBytes(leftBy: kind, reserved: reservedTracks, geometry)
            let available = all - min(all, keep)
            if need > available {
                throw KVIMRError(.noSpace, "no space for \(count) more bytes of \(kind) file \(n): needs \(need) bytes of new tracks, \(available) free")
            }
        }
        try admitAfterWriteFailure(count)
        if writeBehind.busy { reapWrites() }
        // Appended in place: taking the buffer out of the dictionary and storing it back would
        // copy every byte buffered so far on each append.
        if buffers[n] == nil { buffers[n] = FileBuffer(start: size, sectorSize: geometry.sectorSize, pool: pagePool) }
        if first.count > 0 { buffers[n]!.append(first) }
        if second.count > 0 { buffers[n]!.append(second) }
        // The policy's early write-out worth of tracks buffered (`writeOut` checks the same):
        // write full tracks out now. Failures here are not the append's: the bytes stay
        // buffered and the next sync reports the problem. (Tested here, not only in
        // `writeOut`, whose record and buffer copies cost every append past one track.)
        if newEnd - size >= UInt64(KVIMRCore.writeOutBytes(tracks: policy.writeOutTracks, geometry)) {
            _ = try? writeOut(n, includeTail: false)
        }
        enforceBufferBudget()
    }

    mutating func seal(_ n: FileNumber) throws(KVIMRError) {
        try checkWritable()
        var rec = try record(n)
        if !rec.sealed {
            rec.sealed = true
            map.files[n] = rec
            dirty = true
        }
        defer { if let last = map.files[n]?.extents.last { alloc.setOpen(last.track, false) } }
        // No more appends: the tail may be queued like full tracks (its last sector is a
        // padded copy), and the buffer goes once it is written (`reapWrites`).
        let queued = try writeOut(n, includeTail: true, queueTail: true)
        // Written now: the partial-sector copy is no longer needed.
        if !queued, !hasQueuedWrites(n), let buf = buffers[n], buf.end == map.files[n]?.size { buffers[n] = nil }
    }

    mutating func delete(_ n: FileNumber) throws(KVIMRError) {
        try checkWritable()
        guard let rec = map.files.removeValue(forKey: n) else { throw KVIMRError(.notFound, "no file \(n)") }
        buffers[n] = nil
        dropQueuedWrites(n)
        if let first = rec.extents.first, alloc.isUsed(first.track) {
            // Teach the allocator how long files of this kind and level live.
            alloc.observeLifetime(KVIMRPolicy.lifetimeClass(kind: rec.kind, level: rec.level), alloc.age(first.track))
        }
        for e in rec.extents { alloc.free(e.track) }
        dirty = true
    }

    mutating func setRoot(_ bytes: [UInt8]) throws(KVIMRError) {
        try checkWritable()
        guard bytes.count <= TrackMapFormat.maxRootBytes else {
            throw KVIMRError(.outOfRange, "root record of \(bytes.count) bytes exceeds \(TrackMapFormat.maxRootBytes)")
        }
        map.root = bytes
        dirty = true
        try checkpoint()
    }

    /// Bytes of reserved tracks a file of `kind` must leave free (counted at the larger
    /// track capacity).
    func reservedBytes(leftBy kind: FileKind) -> UInt64 {
        KVIMRCore.reservedBytes(leftBy: kind, reserved: reservedTracks, geometry)
    }

    /// `reservedBytes(leftBy:)` from the core's fields (`append` calls this one: a static
    /// call does not copy the core).
    static func reservedBytes(leftBy kind: FileKind, reserved: Int, _ geometry: IMRGeometry) -> UInt64 {
        UInt64(TrackReserve.floor(kind, reserved: reserved))
            * UInt64(max(geometry.bottomSectors, geometry.topSectors) * geometry.sectorSize)
    }

    /// Buffered bytes of a file past its stored size that trigger an early write-out (the
    /// policy's `writeOutTracks` bottom tracks); also one write-out's worth of queued bytes.
    static func writeOutBytes(tracks: Int, _ geometry: IMRGeometry) -> Int {
        max(tracks, 1) * geometry.bottomSectors * geometry.sectorSize
    }

    /// Whether a file of `kind` may take one more free track (see `TrackReserve.floor`).
    func mayAllocate(_ kind: FileKind) -> Bool {
        alloc.freeCount > TrackReserve.floor(kind, reserved: reservedTracks)
    }

    // MARK: - stats

    /// Runs `body` and charges the drive time it took to `category`.
    mutating func charged<T>(_ category: String, bytes: Int = 0,
                             _ body: (inout KVIMRCore) throws(KVIMRError) -> T) throws(KVIMRError) -> T {
        let before = device.counters()
        defer { io.charge(category, bytes: bytes, before: before, after: device.counters()) }
        return try body(&self)
    }

    func stats() -> KVIMRStats {
        let counters = device.counters()
        var buffered: UInt64 = 0, stored: UInt64 = 0
        for (n, rec) in map.files {
            stored += rec.size
            if let b = buffers[n] { buffered += b.end - rec.size }
        }
        return KVIMRStats(
            policy: policyName, files: map.files.count,
            bottomTracksUsed: alloc.bottomTracksInUse, topTracksUsed: alloc.topTracksInUse,
            tracksTotal: geometry.trackCount, bytesBuffered: buffered, bytesStored: stored,
            capacityBytes: geometry.trackBytes,
            freeBytes: alloc.freeCapacityBytes - min(alloc.freeCapacityBytes, reservedBytes(leftBy: .sstable)),
            rmwOps: counters.bottom.rmwOps + counters.top.rmwOps + hostRmwTracks, mergedRmwOps: mergedRmwOps,
            rmwBytes: counters.bottom.rmwBytes + counters.top.rmwBytes + hostRmwBytes,
            checkpoints: checkpoints, device: counters, reservedTracks: reservedTracks, io: io,
            journalRunsOverlaid: overlayJournalRuns)
    }

    func fileInfos() -> [KVIMRFileInfo] {
        map.sortedFiles.map {
            KVIMRFileInfo(number: $0.number, kind: $0.kind, level: $0.level,
                          size: buffers[$0.number]?.end ?? $0.size, sealed: $0.sealed)
        }
    }
}

extension FileRecord {
    /// Bytes the file's tracks can hold: its extents plus the unused rest of its last track.
    func ownedCapacity(_ geometry: IMRGeometry) -> UInt64 {
        var sectors = sectorCount
        if let last = extents.last {
            sectors += geometry.sectors(of: last.track) - (last.firstSector + last.sectorCount)
        }
        return UInt64(sectors) * UInt64(geometry.sectorSize)
    }

    /// What `append` checks — sealed, size, kind, owned capacity — read in place (called on
    /// the dictionary's storage, the record is not copied).
    @inline(__always)
    func appendFields(_ geometry: IMRGeometry) -> (Bool, UInt64, FileKind, UInt64) {
        (sealed, size, kind, ownedCapacity(geometry))
    }
}
