// The public API of KVIMR: the seam the engine uses (signatures fixed by the lead).
import IMRDisk
import Synchronization

/// What a file of the engine is; KVIMR places files by kind and LSM level.
public enum FileKind: UInt8, Sendable, CaseIterable {
    case wal = 1
    case manifest = 2
    case sstable = 3
    case vlog = 4
}

public typealias FileNumber = UInt64

public struct KVIMRError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        case io          // device failure (underlying DeviceError message kept)
        case noSpace     // no free track for the data (ENOSPC)
        case notFound    // unknown file number
        case sealed      // append to a sealed file
        case corrupt     // track map checkpoint unreadable
        case outOfRange  // read past the end of a file
        case readOnly
    }
    public var kind: Kind
    public var message: String
    public init(_ kind: Kind, _ message: String) { self.kind = kind; self.message = message }
    public var description: String { message }
    /// The errno a filesystem should report for this error.
    public var errno: Int32 {
        switch kind {
        case .noSpace: return 28 // ENOSPC
        case .notFound: return 2 // ENOENT
        case .readOnly: return 30 // EROFS
        default: return 5 // EIO
        }
    }
}

public struct KVIMRFileInfo: Sendable, Equatable {
    public var number: FileNumber
    public var kind: FileKind
    public var level: Int
    public var size: UInt64
    public var sealed: Bool
}

public struct KVIMRStats: Sendable {
    public var policy: String
    public var files: Int
    public var bottomTracksUsed: Int
    public var topTracksUsed: Int
    public var tracksTotal: Int
    public var bytesBuffered: UInt64
    public var bytesStored: UInt64        // sum of file sizes on tracks
    public var capacityBytes: UInt64      // track capacity of the drive
    public var freeBytes: UInt64          // capacity of free tracks, less the WAL/manifest reserve
    public var rmwOps: UInt64
    public var mergedRmwOps: UInt64
    public var rmwBytes: UInt64
    public var checkpoints: UInt64
    public var device: DeviceCounters
    /// Tracks kept for WAL and manifest files (`TrackReserve`).
    public var reservedTracks: Int = 0
    /// Simulated drive time per kind of operation since open.
    public var io = IOBreakdown()
    /// Read-only open after a crash inside a merged RMW: top-track runs of the pending journal
    /// that reads are served from (the drive may hold damaged sectors there until a read-write
    /// open replays the journal).
    public var journalRunsOverlaid: Int = 0
}

/// The KVIMR middleware: a file API for the engine whose bytes KVIMR places on IMR tracks.
///
/// - `create` returns a new file number (never reused in this image).
/// - `append` buffers bytes in the write buffer (full tracks may be written out early).
/// - `sync(files)` returns once those files' bytes *and* the track map naming them are durable.
/// - `read` serves bytes whether they are still buffered or on tracks.
/// - `delete` frees the file's tracks; the caller promises that whatever drops the file
///   (a manifest edit) is already durable. Freed tracks are reused only after the next
///   durable track-map checkpoint.
/// - `root` is a small opaque record (≤ 4 KiB) stored in the track-map checkpoint: the engine
///   keeps its manifest's file number there (superblock → track map → manifest → WAL).
/// Thread-safe: one Mutex guards the map, the allocator and the buffers (device I/O happens
/// under it, except the write-behind thread's writes of queued full tracks: `WriteBehind`).
public final class KVIMR: Sendable {
    private let core: Mutex<KVIMRCore>
    private let dev: any TrackDevice
    private let policy: String
    /// Files being read in order, and how far ahead of them the device was asked to prefetch.
    private let readAhead = Mutex(ReadAhead())

    /// Writes an empty track map to a freshly created device: checkpoint 1 (no files, empty
    /// root, next file number 1) into slot A, slot B cleared, then a device sync.
    public static func format(device: TrackDevice) throws(KVIMRError) {
        let store = try CheckpointStore(device: device)
        try store.write(S2TMap(), sequence: TrackMapFormat.firstSequence, to: device)
        try store.clear(slot: 1 - TrackMapFormat.slotIndex(forSequence: TrackMapFormat.firstSequence), on: device)
        do { try device.sync() } catch { throw KVIMRError(.io, "device sync: \(error.message)") }
    }

    /// Opens: loads the newest valid track-map checkpoint. `policy` overrides the superblock's.
    /// An unknown or not yet implemented policy name fails with `.outOfRange` listing the
    /// valid names; an unformatted meta zone with `.corrupt` "no track map: image not formatted".
    public init(device: TrackDevice, policy: String? = nil, readOnly: Bool = false) throws(KVIMRError) {
        let name = policy ?? device.superblock.policy
        let chosen = try KVIMRPolicyName.policy(named: name)
        dev = device
        self.policy = chosen.name
        core = Mutex(try KVIMRCore(device: device, policy: chosen, policyName: chosen.name, readOnly: readOnly))
    }

    /// Opens with a policy object instead of a name (tests and experiments: e.g. a `KVIMRPolicy`
    /// with non-default options); the image's own policy name is ignored.
    public init(device: TrackDevice, allocationPolicy: any TrackAllocationPolicy, readOnly: Bool = false) throws(KVIMRError) {
        dev = device
        self.policy = allocationPolicy.name
        core = Mutex(try KVIMRCore(device: device, policy: allocationPolicy, policyName: allocationPolicy.name, readOnly: readOnly))
    }

    deinit {
        // Dropped without `close` (a crash, in tests): queued writes are lost like the buffers,
        // and the thread is gone before the device is released.
        core.withLock { c in c.writeBehind.stop() }
    }

    public var device: TrackDevice { dev }
    public var policyName: String { policy }

    public func create(kind: FileKind, level: Int) throws(KVIMRError) -> FileNumber {
        try core.withLock { c throws(KVIMRError) in try c.create(kind: kind, level: level) }
    }
    public func append(_ file: FileNumber, _ bytes: UnsafeRawBufferPointer) throws(KVIMRError) {
        try core.withLock { c throws(KVIMRError) in try c.append(file, bytes) }
    }
    /// Appends `first` then `second` as one append (both or, on a refusal, neither): e.g. a
    /// record's header and its value without joining them in a scratch buffer first.
    public func append(_ file: FileNumber, _ first: UnsafeRawBufferPointer, _ second: UnsafeRawBufferPointer) throws(KVIMRError) {
        try core.withLock { c throws(KVIMRError) in try c.append(file, first, second) }
    }
    /// No more appends; lets KVIMR write the tail out.
    public func seal(_ file: FileNumber) throws(KVIMRError) {
        try core.withLock { c throws(KVIMRError) in try c.seal(file) }
    }
    public func sync(_ files: [FileNumber]) throws(KVIMRError) {
        try core.withLock { c throws(KVIMRError) in try c.sync(files) }
    }
    /// Writes the files' buffered bytes to their tracks (queued for the write-behind thread)
    /// without a checkpoint: they become durable with the next checkpoint, whoever takes it. So
    /// no later checkpoint can make durable bytes appended (to any file) after this call
    /// without these: the ordering of a sync at the cost of a track write.
    public func writeOut(_ files: [FileNumber]) throws(KVIMRError) {
        try core.withLock { c throws(KVIMRError) in
            try c.checkWritable()
            for n in files {
                guard c.map.files[n] != nil else { throw KVIMRError(.notFound, "no file \(n)") }
                // Queued like a sealed file's tail (its last sector a padded copy); a later
                // write-out rewrites that sector whole, after it in queue order.
                try c.writeOut(n, includeTail: true, queueTail: true)
            }
        }
    }
    /// Everything buffered becomes durable.
    public func syncAll() throws(KVIMRError) {
        try core.withLock { c throws(KVIMRError) in try c.syncAll() }
    }
    public func size(_ file: FileNumber) -> UInt64? {
        core.withLock { c in c.logicalSize(file) }
    }
    /// Reads up to `buffer.count` bytes at `offset`; returns the count read (short only at EOF).
    ///
    /// The track reads run without the core lock (concurrent readers, e.g. the kernel's parallel
    /// read-ahead requests, would otherwise queue behind each other's pread): the read is planned
    /// under the lock (bytes still buffered copied then), its track pieces read after, and the
    /// lock taken again to confirm nothing could have changed those bytes meanwhile (`ReadPlan`);
    /// if something could (the file was deleted, a merged RMW ran), the read is done again
    /// under the lock. Sequential readers get the file's next extents prefetched (`ReadAhead`).
    public func read(_ file: FileNumber, at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(KVIMRError) -> Int {
        try read(file, ranges: [(offset, buffer)])[0]
    }

    /// Reads several ranges of `file`, each as `read(_:at:into:)` would (the count read, short
    /// only at EOF), planned under one lock and confirmed once: for a caller that wants a
    /// file's bytes in separate places — the value log placing each record's value straight
    /// into its reader's buffer and its header beside (`Engine.scanPlacing`). The ranges are
    /// read in the order given (pass them in file order: the read-ahead sees one stream).
    public func read(_ file: FileNumber, ranges: [(offset: UInt64, buffer: UnsafeMutableRawBufferPointer)]) throws(KVIMRError) -> [Int] {
        var bytes = 0
        for r in ranges { bytes += r.buffer.count }
        let plans = try core.withLock { c throws(KVIMRError) -> [ReadPlan] in
            try c.checkOpen()
            let rec = try c.record(file)
            var plans: [ReadPlan] = []
            plans.reserveCapacity(ranges.count)
            for r in ranges { plans.append(try c.planRead(rec, at: r.offset, into: r.buffer)) }
            if plans.allSatisfy({ $0.pieces.isEmpty }) {
                // All from memory: an operation and its bytes, no drive time (no snapshot needed).
                let none = DeviceCounters()
                c.io.charge(plans.first?.category ?? "", bytes: bytes, before: none, after: none)
            }
            return plans
        }
        guard let first = plans.first(where: { !$0.pieces.isEmpty }) else { return plans.map(\.count) }
        // In-order readers: the next extents are prefetched, this read skips the kernel's
        // read-ahead (it would run past the file's extents into never-written tracks).
        // Not SSTables: the engine reads their blocks at random for gets (two reads within
        // `ReadAhead.slack` of each other looked like a stream: a POSIX_FADV_WILLNEED of MiBs
        // on every third point read), and a compaction's whole-table reads keep the kernel's.
        var streaming = false
        if first.record.kind != .sstable, let image = first.device as? ImageTrackDevice {
            var lo = UInt64.max, hi: UInt64 = 0   // the span the ranges read, for the stream
            for (r, plan) in zip(ranges, plans) { lo = min(lo, r.offset); hi = max(hi, r.offset + UInt64(plan.count)) }
            let (ahead, inOrder) = readAhead.withLock { $0.note(file, offset: lo, end: hi) }
            streaming = inOrder
            if let ahead { ReadAhead.prefetch(ahead, of: first.record, on: image) }
        }
        let before = first.device.counters()
        var failure: KVIMRError?
        do {
            for (r, plan) in zip(ranges, plans) where !plan.pieces.isEmpty {
                try KVIMRCore.readPieces(plan.pieces, from: plan.device, into: r.buffer, streaming: streaming)
            }
        } catch { failure = error }
        let after = first.device.counters()
        let trusted = core.withLock { c in c.confirmUnlockedRead(first, bytes: bytes, before: before, after: after) }
        guard trusted else {
            return try core.withLock { c throws(KVIMRError) -> [Int] in
                try c.checkOpen()
                let rec = try c.record(file)
                let category = IOBreakdown.category("read", kind: rec.kind, level: rec.level)
                return try c.charged(category, bytes: bytes) { (c: inout KVIMRCore) throws(KVIMRError) -> [Int] in
                    var counts: [Int] = []
                    for r in ranges { counts.append(try c.read(rec, at: r.offset, into: r.buffer)) }
                    return counts
                }
            }
        }
        if let failure { throw failure }
        return plans.map(\.count)
    }
    public func delete(_ file: FileNumber) throws(KVIMRError) {
        try core.withLock { c throws(KVIMRError) in try c.delete(file) }
        readAhead.withLock { $0.forget(file) }
    }
    public func files() -> [KVIMRFileInfo] {
        core.withLock { c in c.fileInfos() }
    }
    /// Where a file's bytes lie on the drive (for `lsmfs dump`, fsck and tests); nil if unknown.
    public func extents(_ file: FileNumber) -> [TrackExtent]? {
        core.withLock { c in c.map.files[file]?.extents }
    }

    public var root: [UInt8] { core.withLock { c in c.map.root } }
    /// Stores `root` and makes it durable (with a checkpoint) before returning.
    public func setRoot(_ bytes: [UInt8]) throws(KVIMRError) {
        try core.withLock { c throws(KVIMRError) in try c.setRoot(bytes) }
    }

    public func stats() -> KVIMRStats { core.withLock { c in c.reapWrites(); return c.stats() } }

    /// Whether early write-outs of full tracks are written by a background thread while the
    /// caller goes on (default true; `WriteBehind`). Off: they are written before `append`
    /// returns. Turning it off waits for the queued writes.
    public var asyncWriteOut: Bool {
        get { core.withLock { c in c.asyncWriteOut } }
        set {
            core.withLock { c in
                c.asyncWriteOut = newValue
                if !newValue { try? c.drainWrites() }
            }
        }
    }

    /// Bytes the write buffers of all files may hold together before the largest are written
    /// out early (BufferBudget.swift); 0: no limit beyond the policy's per-file write-out.
    public var bufferBudgetBytes: UInt64 {
        get { core.withLock { c in c.bufferBudget } }
        set { core.withLock { c in c.bufferBudget = newValue } }
    }
    /// The most memory the write buffers held at once since open.
    public var peakBufferedBytes: UInt64 { core.withLock { c in c.peakBuffered } }
    /// Syncs everything and closes the device.
    public func close() throws(KVIMRError) {
        try core.withLock { c throws(KVIMRError) in try c.close() }
    }
}

extension KVIMR {
    /// Convenience for two-part `[UInt8]` appends (`append(_:_:_:)`).
    public func append(_ file: FileNumber, _ first: [UInt8], _ second: [UInt8]) throws(KVIMRError) {
        var failure: KVIMRError?
        first.withUnsafeBytes { a in
            second.withUnsafeBytes { b in
                do throws(KVIMRError) { try append(file, a, b) } catch { failure = error }
            }
        }
        if let failure { throw failure }
    }

    /// Convenience for `[UInt8]` appends.
    public func append(_ file: FileNumber, _ bytes: [UInt8]) throws(KVIMRError) {
        var failure: KVIMRError?
        bytes.withUnsafeBytes { p in
            do throws(KVIMRError) { try append(file, p) } catch { failure = error }
        }
        if let failure { throw failure }
    }
}
