import Glibc
import LSMStore
import Synchronization
import SystemPackage

/// Mount-time options of the filesystem layer.
public struct FSOptions: Sendable {
    public var readOnly = false
    /// Seconds between periodic store syncs (0 = off; then only fsync/sync/unmount persist).
    public var syncInterval: Double = 5
    public init() {}
}

/// The caller of an operation (from the FUSE request context).
public struct Caller: Sendable {
    public var uid: UInt32
    public var gid: UInt32
    /// Whether the filesystem checks this caller's permissions (mode bits, ownership, sticky
    /// directories: see Permissions.swift). Off when the kernel checks them
    /// (`default_permissions`) and for internal callers.
    public var checksAccess = false
    /// The caller's supplementary groups, asked only when a check needs them (reading them
    /// costs a /proc read); nil = none.
    public var supplementaryGroups: (@Sendable () -> [UInt32])?
    /// The caller's effective capability set (CapEff), asked only when a mode-bit or owner
    /// check denies a non-root caller (see Permissions.swift); nil = none. uid 0 has all.
    package var capabilities: (@Sendable () -> UInt64)?
    public init(uid: UInt32, gid: UInt32) { self.uid = uid; self.gid = gid }
    public init(uid: UInt32, gid: UInt32, checksAccess: Bool, supplementaryGroups: (@Sendable () -> [UInt32])? = nil) {
        self.uid = uid; self.gid = gid
        self.checksAccess = checksAccess; self.supplementaryGroups = supplementaryGroups
    }
    public static var process: Caller { Caller(uid: getuid(), gid: getgid()) }
}

/// One lock of the per-inode lock stripes.
final class StripeLock: Sendable {
    let mutex = Mutex(())
}

/// The lsmfs filesystem: inodes, dentries and file chunks as keys of an `LSMStore`
/// (docs/format/keys.md). Operation methods (`lookup`, `write`, `rename`, ...) return the reply
/// or throw the `Errno` the kernel should see; they are thread-safe.
///
/// Lock order (a thread only ever takes locks in this order, and never the reverse):
///   1. `namespaceLock` — held by every operation that changes dentries (create, mkdir, mknod,
///      symlink, link, unlink, rmdir, rename) for its whole duration; dentry reads outside it
///      (lookup, readdir) see the store's atomic batches;
///   2. inode stripe locks (`stripes[ino % stripeCount]`), several at once only in ascending
///      stripe index — held around every read-modify-write of an inode record or of a
///      file's chunks (write, truncate, setattr, buffer flushes, and the inode updates of
///      namespace ops). Reads take none (see `read`);
///   3. leaf locks: `tables` (handles, open counts, lookup counts, orphans), `inoAlloc`,
///      `dirty`, `xattrPresence`, `inodeCountCache`, `OpStats` — never held while taking another lock or calling the store.
///      A `dirty` entry is created, changed and removed only under its inode's stripe lock.
public final class FileSystem: Sendable {
    let store: LSMStore
    let options: FSOptions
    let chunkSize: Int

    let namespaceLock = Mutex(())
    static let stripeCount = 64
    let stripes: [StripeLock]
    let tables = Mutex(Tables())
    let inoAlloc: Mutex<InoAlloc>
    let opStats = OpStats()
    /// Write-back buffers of files being written (see DirtyFile).
    let dirty = Mutex(DirtyTable())
    let syncer = Mutex<PeriodicSync?>(nil)
    /// Which inodes hold xattrs (see XattrPresence); leaf lock, filled under the stripe lock.
    let xattrPresence = Mutex(XattrPresence())
    /// Set once at FUSE init when the kernel's writeback cache is on (see `registerOpen`).
    let writebackCache = Atomic<Bool>(false)
    /// Nearly-full drive detection for the write buffer (see LowSpaceProbe).
    let lowSpace = LowSpaceProbe()
    /// statfs's inode count (see InodeCountCache); leaf lock.
    let inodeCountCache = Mutex(InodeCountCache())
    /// Set once the filesystem record is known to be version 2 (chunk patches allowed, see
    /// `patchesAllowed`); a record is never written back to an older version.
    let patchFormat: Atomic<Bool>
    /// Set once the record is known to be version 3 (hole chunks, see `emptyBasesAllowed`).
    let emptyBaseFormat: Atomic<Bool>
    let mountedAt = TimeSpec.now()

    struct InoAlloc { var next: UInt64; var limit: UInt64 }

    /// Writes the root directory (inode 1) and the filesystem record into an empty store.
    public static func format(store: LSMStore) throws {
        if try store.get(Keys.record) != nil {
            throw FSError("the store already holds an lsmfs filesystem", errno: EEXIST)
        }
        let now = TimeSpec.now()
        var root = InodeRecord.new(mode: UInt32(S_IFDIR) | 0o755, uid: getuid(), gid: getgid(), now: now)
        root.nlink = 2
        root.parent = FSFormat.rootIno
        var batch = WriteBatch()
        batch.put(Keys.inode(FSFormat.rootIno), root.encode())
        batch.put(Keys.record, FSRecord(chunkSize: UInt32(FSFormat.chunkSize), inoLimit: FSFormat.firstIno).encode())
        try store.write(batch, sync: true)
    }

    /// Opens the filesystem held by `store`: checks the filesystem record, reclaims orphans left
    /// by a crash (unless read-only) and starts the periodic sync thread.
    public init(store: LSMStore, options: FSOptions) throws {
        guard let recBytes = try store.get(Keys.record) else {
            throw FSError("the image holds no lsmfs filesystem (run `lsmfs mkfs`)", errno: EINVAL)
        }
        guard let rec = FSRecord.decode(recBytes) else {
            throw FSError("unrecognised lsmfs filesystem record (bad magic or format version)", errno: EINVAL)
        }
        guard rec.chunkSize == UInt32(FSFormat.chunkSize) else {
            throw FSError("unsupported chunk size \(rec.chunkSize)", errno: EINVAL)
        }
        guard let rootBytes = try store.get(Keys.inode(FSFormat.rootIno)),
              InodeRecord.decode(rootBytes)?.isDirectory == true else {
            throw FSError("the root directory (inode 1) is missing or damaged", errno: EIO)
        }
        self.store = store
        self.options = options
        self.chunkSize = Int(rec.chunkSize)
        self.stripes = (0..<FileSystem.stripeCount).map { _ in StripeLock() }
        self.inoAlloc = Mutex(InoAlloc(next: rec.inoLimit, limit: rec.inoLimit))
        self.patchFormat = Atomic(rec.version >= 2)
        self.emptyBaseFormat = Atomic(rec.version >= FSFormat.emptyBaseVersion)
        if !options.readOnly {
            try FileSystem.reclaimOrphans(store)
        }
        if !options.readOnly && options.syncInterval > 0 {
            let s = PeriodicSync(interval: options.syncInterval) { [weak self] in
                do throws(Errno) { try self?.syncAll() } catch {
                    fsLog.error("periodic sync failed: \(error)")
                }
            }
            syncer.withLock { $0 = s }
        }
    }

    /// Flushes buffered chunks, then makes every accepted write durable. The store is synced
    /// even when some file's buffer could not be stored (what was stored becomes durable);
    /// that error is thrown afterwards.
    func syncAll() throws(Errno) {
        var flushError: Errno? = nil
        do throws(Errno) { try flushAllDirty() } catch { flushError = error }
        try kv("sync", { () throws(LSMError) in try store.sync() })
        if let flushError { throw flushError }
    }

    deinit {
        syncer.withLock { $0 }?.stop()
    }

    /// Stops the sync thread, flushes and closes the store.
    public func shutdown() throws {
        syncer.withLock { $0 }?.stop()
        if !options.readOnly {
            do throws(Errno) { try flushAllDirty() } catch {
                throw FSError("flushing buffered writes failed: \(error)", errno: error.rawValue)
            }
        }
        try store.close()
    }

    /// Deletes every inode marked orphan (unlinked while open before a crash or unmount).
    static func reclaimOrphans(_ store: LSMStore) throws {
        var orphans: [UInt64] = []
        try store.scan(from: Keys.orphansStart, to: Keys.orphansEnd) { key, _ in
            if let ino = Keys.ino(of: key) { orphans.append(ino) }
            return true
        }
        if orphans.isEmpty { return }
        var batch = WriteBatch()
        for ino in orphans { addReclaim(ino, to: &batch) }
        try store.write(batch)
        fsLog.info("reclaimed \(orphans.count) orphan inode(s)")
    }

    /// Deletes an inode with all its chunks, xattrs and its orphan marker.
    static func addReclaim(_ ino: UInt64, to batch: inout WriteBatch) {
        batch.deleteRange(Keys.chunk(ino, 0), Keys.chunksEnd(ino))
        batch.deleteRange(Keys.xattrStart(ino), Keys.xattrEnd(ino))
        batch.delete(Keys.inode(ino))
        batch.delete(Keys.orphan(ino))
    }

    // MARK: locks

    func withInodeLock<R>(_ ino: UInt64, _ body: () throws(Errno) -> R) throws(Errno) -> R {
        try withStripes([stripeIndex(ino)][...], body)
    }

    /// Takes the stripe locks of all `inos` (deduplicated, ascending) around `body`.
    func withInodeLocks<R>(_ inos: [UInt64], _ body: () throws(Errno) -> R) throws(Errno) -> R {
        let idx = Set(inos.map(stripeIndex)).sorted()
        return try withStripes(idx[...], body)
    }

    private func stripeIndex(_ ino: UInt64) -> Int { Int(ino % UInt64(FileSystem.stripeCount)) }

    private func withStripes<R>(_ idx: ArraySlice<Int>, _ body: () throws(Errno) -> R) throws(Errno) -> R {
        guard let first = idx.first else { return try body() }
        var result: Result<R, Errno>!
        stripes[first].mutex.withLock { _ in
            do throws(Errno) { result = .success(try withStripes(idx.dropFirst(), body)) } catch { result = .failure(error) }
        }
        return try result.get()
    }

    func withNamespaceLock<R>(_ body: () throws(Errno) -> R) throws(Errno) -> R {
        var result: Result<R, Errno>!
        namespaceLock.withLock { _ in
            do throws(Errno) { result = .success(try body()) } catch { result = .failure(error) }
        }
        return try result.get()
    }

    // MARK: helpers

    func requireWritable() throws(Errno) {
        if options.readOnly { throw .roFS }
    }

    /// The inode as the filesystem sees it: the stored record with the size/times of the
    /// file's buffered writes (`dirty`: that buffer, default: the current one).
    /// Without `snapshot` it first waits for a write-behind of the file to land (see
    /// DirtyFile: its batch carries an inode record, which must not overwrite one the caller
    /// writes), then takes the buffer's attributes before the store read (a flush landing in
    /// between then shows the same values twice, never none).
    func loadInode(_ ino: UInt64, dirty snapshot: DirtyAttrs?? = nil) throws(Errno) -> InodeRecord {
        let pending: DirtyAttrs?
        if let snapshot { pending = snapshot } else { waitForWriteBehind(ino); pending = dirtyEntry(ino) }
        guard let bytes = try kv("get inode \(ino)", { () throws(LSMError) in try store.get(Keys.inode(ino)) }) else {
            throw .noEnt
        }
        guard let rec = InodeRecord.decode(bytes) else {
            fsLog.error("inode \(ino): undecodable record (\(bytes.count) bytes)")
            throw .io
        }
        var r = rec
        if let d = pending { overlay(d, &r) }
        return r
    }

    func loadDentry(_ parent: UInt64, _ name: [UInt8]) throws(Errno) -> DentryRecord? {
        guard let bytes = try kv("get dentry", { () throws(LSMError) in try store.get(Keys.dentry(parent, name)) }) else {
            return nil
        }
        guard let d = DentryRecord.decode(bytes) else {
            fsLog.error("dentry in directory \(parent): undecodable record")
            throw .io
        }
        return d
    }

    func write(_ batch: WriteBatch, _ what: @autoclosure () -> String) throws(Errno) {
        try kv(what(), { () throws(LSMError) in try store.write(batch) })
    }

    /// Rejects names the kernel should never send and names over NAME_MAX.
    func checkName(_ name: [UInt8]) throws(Errno) {
        if name.isEmpty { throw .noEnt }
        if name.count > FSFormat.nameMax { throw .nameTooLong }
        if name.contains(0x2F) || name.contains(0) { throw .inval }
    }

    func isReserved(_ parent: UInt64, _ name: [UInt8]) -> Bool {
        parent == FSFormat.rootIno && (name == FSFormat.statsTextName || name == FSFormat.statsJSONName)
    }

    static func isPseudo(_ ino: UInt64) -> Bool {
        ino == FSFormat.statsTextIno || ino == FSFormat.statsJSONIno
    }

    func isEmptyDirectory(_ ino: UInt64) throws(Errno) -> Bool {
        var empty = true
        try kv("scan directory", { () throws(LSMError) in
            try store.scan(from: Keys.dirStart(ino), to: Keys.dirEnd(ino)) { _, _ in empty = false; return false }
        })
        return empty
    }

    /// Picks the next inode number; adds a filesystem-record update to `batch` when the
    /// reserved block is used up. Call `commitIno` once the batch is written. Namespace lock held.
    func reserveIno(_ batch: inout WriteBatch) -> (ino: UInt64, limit: UInt64) {
        let a = inoAlloc.withLock { $0 }
        var limit = a.limit
        if a.next >= a.limit {
            limit = a.next + FSFormat.inoReserveBlock
            batch.put(Keys.record, FSRecord(chunkSize: UInt32(chunkSize), inoLimit: limit).encode())
        }
        return (a.next, limit)
    }

    func commitIno(_ ino: UInt64, limit: UInt64) {
        inoAlloc.withLock { $0.next = ino + 1; $0.limit = limit }
    }

    /// Called by the FUSE layer when the kernel's writeback cache was negotiated.
    public func enableWritebackCache() { writebackCache.store(true, ordering: .relaxed) }
    public var usesWritebackCache: Bool { writebackCache.load(ordering: .relaxed) }

    /// Records one FUSE request (called by the daemon around each operation).
    public func recordOp(_ op: FSOp, nanos: UInt64, failed: Bool, bytes: UInt64 = 0) {
        opStats.record(op, nanos: nanos, failed: failed, bytes: bytes)
    }

    /// Snapshot of the per-operation counters (indexed by `FSOp.rawValue`).
    public func opCounters() -> [OpCounter] { opStats.snapshot() }
}
