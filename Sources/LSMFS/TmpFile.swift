import Glibc
import LSMStore
import SystemPackage

/// open(dir, O_TMPFILE) as ext4 does it: a regular file with no name, open from birth.
///
/// The inode is written as an open orphan — record with nlink 0 plus its `O` marker, in one
/// batch — so the paths that keep unlinked-while-open files already cover it: the last
/// release deletes it with its chunks (`release`), and a crash leaves the marker for the next
/// mount to reclaim (`reclaimOrphans`). A `link` of it (linkat(fd, "", dir, name,
/// AT_EMPTY_PATH), sent by the kernel only while the file is I_LINKABLE, i.e. opened without
/// O_EXCL) turns it into an ordinary file: nlink 1, marker deleted, in the link's batch.
extension FileSystem {
    /// O_TMPFILE's bits in open flags (__O_TMPFILE | O_DIRECTORY, asm-generic and x86).
    package static let tmpfileFlags: Int32 = 0o20000000 | O_DIRECTORY

    /// Creates and opens a nameless regular file in directory `parent` (write and search
    /// permission needed there, as for create; owner and group as `newInodeRecord`). `flags`
    /// are the open flags (O_WRONLY or O_RDWR required; O_EXCL makes it never linkable).
    /// Returns its attributes (nlink 0) and the file handle; takes one kernel lookup reference.
    package func tmpfile(_ parent: UInt64, mode: UInt32, flags: Int32, caller: Caller) throws(Errno) -> (attr: FileAttr, fh: UInt64) {
        try requireWritable()
        if flags & O_ACCMODE == O_RDONLY { throw .inval }
        let openFlags = flags & ~FileSystem.tmpfileFlags
        return try withNamespaceLock { () throws(Errno) -> (attr: FileAttr, fh: UInt64) in
            var batch = WriteBatch()
            let (ino, limit) = reserveIno(&batch)
            let now = TimeSpec.now()
            return try withInodeLocks([parent, ino]) { () throws(Errno) -> (attr: FileAttr, fh: UInt64) in
                let dir = try loadInode(parent)
                guard dir.isDirectory else { throw .notDir }
                if dir.nlink == 0 { throw .noEnt }  // directory removed
                try requireAccess(dir, caller, [.write, .exec])
                var rec = newInodeRecord(mode: UInt32(S_IFREG) | (mode & 0o7777), caller: caller, in: dir, now: now)
                rec.nlink = 0
                batch.put(Keys.inode(ino), rec.encode())
                batch.put(Keys.orphan(ino), [])
                try write(batch, "tmpfile")
                inodeCreated(ino, limit: limit)
                incLookup(ino)
                let fh = registerOpen(ino, flags: openFlags)
                tables.withLock { t in
                    t.orphans.insert(ino)
                    if flags & O_EXCL == 0 { t.linkableTmpfiles.insert(ino) }
                }
                return (rec.attr(ino: ino), fh)
            }
        }
    }

    /// Under `link`'s locks: whether nameless `ino` (nlink 0) may get a name — an open
    /// O_TMPFILE file opened without O_EXCL, not linked before. If so it stops being an
    /// orphan in memory; the caller deletes its `O` marker in the link's batch and calls
    /// `tmpfileLinkFailed` if that batch is not written.
    func claimLinkableTmpfile(_ ino: UInt64) -> Bool {
        tables.withLock { t in
            guard t.linkableTmpfiles.contains(ino), (t.openCount[ino] ?? 0) > 0, t.orphans.contains(ino) else { return false }
            t.linkableTmpfiles.remove(ino)
            t.orphans.remove(ino)
            return true
        }
    }

    func tmpfileLinkFailed(_ ino: UInt64) {
        tables.withLock { t in
            t.linkableTmpfiles.insert(ino)
            t.orphans.insert(ino)
        }
    }
}
