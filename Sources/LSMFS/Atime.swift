import Glibc
import LSMStore
import SystemPackage

extension FileSystem {
    /// relatime (Linux's default): an access updates atime only when atime is not newer than
    /// mtime or ctime, or is a day old — so `mutt`/`tmpwatch` style checks work while a file
    /// read over and over costs one inode write a day.
    static func relatimeDue(_ rec: InodeRecord, now: TimeSpec) -> Bool {
        rec.atime <= rec.mtime || rec.atime <= rec.ctime || now.sec - rec.atime.sec >= 86_400
    }

    /// Records an access of `ino` (read of a file, listing of a directory) under relatime.
    /// `rec` is the record the operation saw (the cheap check); O_NOATIME handles and read-only
    /// mounts skip it. Failures are logged, not returned: the read itself succeeded.
    func touchAtime(_ ino: UInt64, seen rec: InodeRecord, flags: Int32 = 0) {
        if options.readOnly || flags & 0o1000000 != 0 /* O_NOATIME */ { return }
        let now = TimeSpec.now()
        guard FileSystem.relatimeDue(rec, now: now) else { return }
        do throws(Errno) {
            try withInodeLock(ino) { () throws(Errno) in
                // A file with buffered writes is being written right now: leave its buffer
                // alone (an access while writing is recorded by a later read after the flush).
                if dirtyEntry(ino) != nil { return }
                var r = try loadInode(ino)
                guard FileSystem.relatimeDue(r, now: now) else { return }
                r.atime = now
                var batch = WriteBatch()
                batch.put(Keys.inode(ino), r.encode())
                try write(batch, "atime of \(ino)")
            }
        } catch {
            if error != .noEnt { fsLog.warning("atime update of inode \(ino) failed: \(error)") }
        }
    }
}

/// The cached number of inodes (for statfs's f_files); refreshed by a scan of the inode keys
/// when older than `InodeCountCache.maxAge` seconds.
struct InodeCountCache {
    var count: UInt64 = 0
    var takenAt: Int64 = -1_000_000
    static let maxAge: Int64 = 2
}

extension FileSystem {
    /// Inodes in use (files, directories, links, nodes, pending orphans); at most `maxAge`
    /// seconds stale. A scan of the 'I' keys: cheap next to the data, and statfs is rare.
    func inodeCount() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        let now = Int64(ts.tv_sec)
        let c = inodeCountCache.withLock { $0 }
        if now - c.takenAt < InodeCountCache.maxAge { return c.count }
        var n: UInt64 = 0
        do {
            try store.scan(from: [FSFormat.inodePrefix], to: [FSFormat.inodePrefix + 1]) { _, _ in n += 1; return true }
        } catch {
            return c.count
        }
        inodeCountCache.withLock { $0 = InodeCountCache(count: n, takenAt: now) }
        return n
    }
}
