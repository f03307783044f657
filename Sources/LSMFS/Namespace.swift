import Glibc
import LSMStore
import SystemPackage

/// Inode records loaded under the stripe locks of a namespace operation, changed in memory and
/// written back into that operation's single WriteBatch.
struct InodeSet {
    var recs: [UInt64: InodeRecord] = [:]
    var dropped: Set<UInt64> = []

    mutating func load(_ fs: FileSystem, _ ino: UInt64) throws(Errno) {
        if recs[ino] == nil {
            try fs.flushDirtyLocked(ino)  // the batch about to be built rewrites this record
            recs[ino] = try fs.loadInode(ino)
        }
    }

    func flush(into batch: inout WriteBatch) {
        for (ino, rec) in recs where !dropped.contains(ino) {
            batch.put(Keys.inode(ino), rec.encode())
        }
    }
}

extension FileSystem {
    /// Resolves `name` in `parent` and takes a kernel reference on the result.
    /// A checked `caller` needs search permission on `parent` (EACCES before ENOENT, as Linux).
    package func lookup(_ parent: UInt64, _ name: [UInt8], caller: Caller? = nil) throws(Errno) -> FileAttr {
        try requireSearch(parent, caller)
        if isReserved(parent, name) {
            return statsAttr(name == FSFormat.statsTextName ? FSFormat.statsTextIno : FSFormat.statsJSONIno)
        }
        try checkName(name)
        let ino: UInt64
        if name == [0x2E] || name == [0x2E, 0x2E] {
            let dir = try loadInode(parent)
            guard dir.isDirectory else { throw .notDir }
            ino = name.count == 1 ? parent : dir.parent
        } else if let d = try loadDentry(parent, name) {
            ino = d.ino  // (only directories have dentries under them)
        } else {
            // The kernel looks names up only in directories it holds, so a miss is ENOENT
            // without reading the parent (one store read less for every create's lookup).
            throw .noEnt
        }
        let attr = try loadInode(ino).attr(ino: ino)
        incLookup(ino)
        return attr
    }

    package func mkdir(_ parent: UInt64, _ name: [UInt8], mode: UInt32, caller: Caller) throws(Errno) -> FileAttr {
        try makeNode(parent, name, mode: UInt32(S_IFDIR) | (mode & 0o7777), caller: caller).attr
    }

    /// Creates a regular file, fifo, socket or device node.
    package func mknod(_ parent: UInt64, _ name: [UInt8], mode: UInt32, rdev: UInt64, caller: Caller) throws(Errno) -> FileAttr {
        let type = mode & UInt32(S_IFMT)
        let allowed: [UInt32] = [UInt32(S_IFREG), UInt32(S_IFIFO), UInt32(S_IFSOCK), UInt32(S_IFCHR), UInt32(S_IFBLK), 0]
        guard allowed.contains(type) else { throw .inval }
        let m = (type == 0 ? UInt32(S_IFREG) : type) | (mode & 0o7777)
        return try makeNode(parent, name, mode: m, rdev: rdev, caller: caller).attr
    }

    /// Creates and opens a regular file; returns its attributes and the file handle.
    package func create(_ parent: UInt64, _ name: [UInt8], mode: UInt32, flags: Int32, caller: Caller) throws(Errno) -> (attr: FileAttr, fh: UInt64) {
        let r = try makeNode(parent, name, mode: UInt32(S_IFREG) | (mode & 0o7777), caller: caller, openFlags: flags)
        return (r.attr, r.fh!)
    }

    package func symlink(_ target: [UInt8], _ parent: UInt64, _ name: [UInt8], caller: Caller) throws(Errno) -> FileAttr {
        if target.isEmpty { throw .noEnt }
        if target.count > FSFormat.symlinkMax { throw .nameTooLong }
        return try makeNode(parent, name, mode: UInt32(S_IFLNK) | 0o777, caller: caller, inline: target).attr
    }

    package func readlink(_ ino: UInt64) throws(Errno) -> [UInt8] {
        if FileSystem.isPseudo(ino) { throw .inval }
        let rec = try loadInode(ino)
        guard rec.isSymlink else { throw .inval }
        return rec.inline
    }

    /// The one path for every new named inode: one batch with the inode, its dentry, the parent's
    /// times/nlink and (sometimes) the filesystem record's inode reservation. (`tmpfile` and a
    /// rename's whiteout build theirs from the same pieces: `newInodeRecord`, `inodeCreated`.)
    private func makeNode(_ parent: UInt64, _ name: [UInt8], mode: UInt32, rdev: UInt64 = 0, caller: Caller,
                          inline: [UInt8] = [], openFlags: Int32? = nil) throws(Errno) -> (attr: FileAttr, fh: UInt64?) {
        try requireWritable()
        try checkName(name)
        if isReserved(parent, name) || name == [0x2E] || name == [0x2E, 0x2E] { throw .exists }
        return try withNamespaceLock { () throws(Errno) -> (attr: FileAttr, fh: UInt64?) in
            // (a non-directory has no dentries: ENOTDIR comes from the check under the lock)
            if try loadDentry(parent, name) != nil { throw .exists }
            var batch = WriteBatch()
            let (ino, limit) = reserveIno(&batch)
            let now = TimeSpec.now()
            return try withInodeLocks([parent, ino]) { () throws(Errno) -> (attr: FileAttr, fh: UInt64?) in
                var dir = try loadInode(parent)
                guard dir.isDirectory else { throw .notDir }
                if dir.nlink == 0 { throw .noEnt }  // directory removed while we waited
                try requireAccess(dir, caller, [.write, .exec])
                var rec = newInodeRecord(mode: mode, rdev: rdev, inline: inline, caller: caller, in: dir, now: now)
                if rec.isDirectory {
                    rec.nlink = 2
                    rec.parent = parent
                    dir.nlink &+= 1
                }
                dir.mtime = now; dir.ctime = now
                addNewInode(ino, rec, at: parent, name, to: &batch)
                batch.put(Keys.inode(parent), dir.encode())
                try write(batch, "create")
                inodeCreated(ino, limit: limit)
                incLookup(ino)
                let fh = openFlags.map { registerOpen(ino, flags: $0) }
                return (rec.attr(ino: ino), fh)
            }
        }
    }

    /// The record of a new inode that `caller` makes in directory `dir` (its stripe lock held),
    /// owned as Linux's inode_init_owner does: the caller's fsuid/fsgid, but a set-group-ID
    /// directory's group, and its bit on a new subdirectory. One link (a directory's caller
    /// sets its two and its parent); a symlink's size is its target's length.
    func newInodeRecord(mode: UInt32, rdev: UInt64 = 0, inline: [UInt8] = [], caller: Caller,
                        in dir: InodeRecord, now: TimeSpec) -> InodeRecord {
        var rec = InodeRecord.new(mode: mode, uid: caller.uid, gid: caller.gid, now: now)
        rec.rdev = rdev
        rec.inline = inline
        if rec.isSymlink { rec.size = UInt64(inline.count) }
        if dir.mode & UInt32(S_ISGID) != 0 {
            rec.gid = dir.gid
            if rec.isDirectory { rec.mode |= UInt32(S_ISGID) }
        }
        return rec
    }

    /// Adds new inode `ino` (numbered by `reserveIno` into this `batch`) and its dentry `name`
    /// in `parent` to `batch`; call `inodeCreated` once the batch is written.
    func addNewInode(_ ino: UInt64, _ rec: InodeRecord, at parent: UInt64, _ name: [UInt8], to batch: inout WriteBatch) {
        batch.put(Keys.inode(ino), rec.encode())
        batch.put(Keys.dentry(parent, name), DentryRecord(ino: ino, type: rec.dtype).encode())
    }

    /// After the batch holding new inode `ino` is written: the allocator moves past it, and a
    /// new inode has no xattrs (the write probe stays in memory).
    func inodeCreated(_ ino: UInt64, limit: UInt64) {
        commitIno(ino, limit: limit)
        setXattrPresence(ino, false)
    }

    /// A new name for an existing non-directory inode.
    package func link(_ ino: UInt64, _ newParent: UInt64, _ newName: [UInt8], caller: Caller? = nil) throws(Errno) -> FileAttr {
        try requireWritable()
        if FileSystem.isPseudo(ino) { throw .perm }
        try checkName(newName)
        if isReserved(newParent, newName) { throw .exists }
        return try withNamespaceLock { () throws(Errno) -> FileAttr in
            guard try loadInode(newParent).isDirectory else { throw .notDir }
            if try loadDentry(newParent, newName) != nil { throw .exists }
            return try withInodeLocks([newParent, ino]) { () throws(Errno) -> FileAttr in
                var set = InodeSet()
                try set.load(self, ino); try set.load(self, newParent)
                try requireLinkable(set.recs[ino]!, caller)
                try requireAccess(set.recs[newParent]!, caller, [.write, .exec])
                guard !set.recs[ino]!.isDirectory else { throw .perm }
                // nlink 0: only an open O_TMPFILE file gets a name (it stops being an orphan)
                let named = set.recs[ino]!.nlink == 0
                if named && !claimLinkableTmpfile(ino) { throw .noEnt }
                guard set.recs[ino]!.nlink < UInt32(Int32.max) else { throw .mLink }
                let now = TimeSpec.now()
                set.recs[ino]!.nlink += 1
                set.recs[ino]!.ctime = now
                set.recs[newParent]!.mtime = now; set.recs[newParent]!.ctime = now
                var batch = WriteBatch()
                batch.put(Keys.dentry(newParent, newName), DentryRecord(ino: ino, type: set.recs[ino]!.dtype).encode())
                if named { batch.delete(Keys.orphan(ino)) }
                set.flush(into: &batch)
                do throws(Errno) { try write(batch, "link") } catch {
                    if named { tmpfileLinkFailed(ino) }
                    throw error
                }
                incLookup(ino)
                return set.recs[ino]!.attr(ino: ino)
            }
        }
    }

    package func unlink(_ parent: UInt64, _ name: [UInt8], caller: Caller? = nil) throws(Errno) {
        try requireWritable()
        try checkName(name)
        if isReserved(parent, name) { throw .perm }
        try withNamespaceLock { () throws(Errno) in
            let d = try loadEntry(parent, name)
            try withInodeLocks([parent, d.ino]) { () throws(Errno) in
                var set = InodeSet()
                try set.load(self, parent); try set.load(self, d.ino)
                try requireDelete(dir: set.recs[parent]!, victim: set.recs[d.ino]!, caller)
                if set.recs[d.ino]!.isDirectory { throw .isDir }
                let now = TimeSpec.now()
                set.recs[parent]!.mtime = now; set.recs[parent]!.ctime = now
                var batch = WriteBatch()
                batch.delete(Keys.dentry(parent, name))
                let orphaned = try dropLink(d.ino, &set, &batch, now: now)
                set.flush(into: &batch)
                do throws(Errno) { try write(batch, "unlink") } catch {
                    if orphaned { unmarkOrphan(d.ino) }
                    throw error
                }
            }
        }
    }

    /// The dentry `name` of directory `parent` (namespace lock held): ENOENT if absent, ENOTDIR
    /// if `parent` is no directory. Only directories hold dentries, so the parent's record is
    /// read only on a miss (the operation reads it under its stripe lock anyway).
    func loadEntry(_ parent: UInt64, _ name: [UInt8]) throws(Errno) -> DentryRecord {
        if let d = try loadDentry(parent, name) { return d }
        guard try loadInode(parent).isDirectory else { throw .notDir }
        throw .noEnt
    }

    /// Removes one link of a non-directory inode in `set` (stripe lock held): when the last
    /// link goes, an open inode becomes an orphan (`O` marker), a closed one is deleted.
    /// Returns true if it was marked orphan.
    func dropLink(_ ino: UInt64, _ set: inout InodeSet, _ batch: inout WriteBatch, now: TimeSpec) throws(Errno) -> Bool {
        set.recs[ino]!.ctime = now
        set.recs[ino]!.nlink.decrementSaturating()
        guard set.recs[ino]!.nlink == 0 else { return false }
        if markOrphanIfOpen(ino) {
            batch.put(Keys.orphan(ino), [])
            return true
        }
        set.dropped.insert(ino)
        try addDelete(ino, set.recs[ino]!, to: &batch)
        return false
    }

    /// Deletes a closed inode whose last link goes (stripe lock held), with only the deletes
    /// its record shows are needed: chunks exist only below the size (writes, truncates and
    /// punches keep it so; fallocate stores none), so an empty file needs no chunk delete and a
    /// one-chunk file a point delete; range deletes (which every later read of the memtable
    /// and of the tables they land in must consult) only for larger files and for inodes
    /// holding xattrs. No orphan marker exists for an inode that was not open. Same result as
    /// `addReclaim`, several times cheaper for the small files that dominate `rm -rf`.
    func addDelete(_ ino: UInt64, _ rec: InodeRecord, to batch: inout WriteBatch) throws(Errno) {
        if rec.isRegular {
            let cs = UInt64(chunkSize)
            if rec.size == 0 && rec.blocks == 0 {
                // no chunks
            } else if rec.size <= cs && (rec.blocks == 0 || rec.blocks == InodeRecord.blocks(ofChunkLength: Int(rec.size))) {
                // (a one-chunk file with patches is a hole chunk without block 0: fewer blocks
                // than its size's pages, so it takes the range delete below)
                batch.delete(Keys.chunk(ino, 0))
            } else {
                batch.deleteRange(Keys.chunk(ino, 0), Keys.chunksEnd(ino))
            }
        }
        if try hasXattrsLocked(ino) {
            batch.deleteRange(Keys.xattrStart(ino), Keys.xattrEnd(ino))
        }
        xattrPresence.withLock { _ = $0.known.removeValue(forKey: ino) }
        batch.delete(Keys.inode(ino))
    }

    package func rmdir(_ parent: UInt64, _ name: [UInt8], caller: Caller? = nil) throws(Errno) {
        try requireWritable()
        try checkName(name)
        if name == [0x2E] { throw .inval }
        if name == [0x2E, 0x2E] { throw .notEmpty }
        if isReserved(parent, name) { throw .notDir }
        try withNamespaceLock { () throws(Errno) in
            let d = try loadEntry(parent, name)
            try withInodeLocks([parent, d.ino]) { () throws(Errno) in
                var set = InodeSet()
                try set.load(self, parent); try set.load(self, d.ino)
                try requireDelete(dir: set.recs[parent]!, victim: set.recs[d.ino]!, caller)
                guard set.recs[d.ino]!.isDirectory else { throw .notDir }
                guard try isEmptyDirectory(d.ino) else { throw .notEmpty }
                let now = TimeSpec.now()
                set.recs[parent]!.mtime = now; set.recs[parent]!.ctime = now
                set.recs[parent]!.nlink.decrementSaturating()
                set.dropped.insert(d.ino)
                set.recs[d.ino]!.nlink = 0
                var batch = WriteBatch()
                batch.delete(Keys.dentry(parent, name))
                batch.deleteRange(Keys.xattrStart(d.ino), Keys.xattrEnd(d.ino))
                batch.delete(Keys.inode(d.ino))
                set.flush(into: &batch)
                try write(batch, "rmdir")
                rememberRemovedDir(set.recs[d.ino]!.attr(ino: d.ino))
            }
        }
    }
}
