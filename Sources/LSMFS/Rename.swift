import Glibc
import LSMStore
import SystemPackage

extension FileSystem {
    /// renameat2(2) flags.
    public static let renameNoReplace: UInt32 = 1
    public static let renameExchange: UInt32 = 2
    /// Leaves a whiteout (overlayfs's "deleted here" mark) at the old name.
    public static let renameWhiteout: UInt32 = 4
    /// A whiteout: a character device 0/0 with no permission bits (Linux's WHITEOUT_MODE, WHITEOUT_DEV).
    public static let whiteoutMode = UInt32(S_IFCHR)
    public static let whiteoutDev: UInt64 = 0

    /// Moves `name` in `parent` to `newName` in `newParent` in one atomic batch, replacing the
    /// target (POSIX rules) or, with `renameExchange`, swapping the two names. With
    /// `renameWhiteout` (not with `renameExchange`) the same batch puts a new whiteout inode,
    /// owned by `caller` (the process if nil) as mknod would make it, at the old name.
    /// A checked `caller` needs what Linux's vfs_rename asks: may_delete on the source (and on
    /// a replaced target), may_create on the new parent, and write permission on a directory
    /// that moves to another parent (its ".." changes). The VFS asks CAP_MKNOD for a whiteout
    /// before it gets here; the old directory's new entry needs what may_delete checked.
    package func rename(_ parent: UInt64, _ name: [UInt8], _ newParent: UInt64, _ newName: [UInt8], flags: UInt32 = 0,
                        caller: Caller? = nil) throws(Errno) {
        let known = FileSystem.renameNoReplace | FileSystem.renameExchange | FileSystem.renameWhiteout
        if flags & ~known != 0 { throw .inval }
        let exchange = flags & FileSystem.renameExchange != 0
        let whiteout = flags & FileSystem.renameWhiteout != 0
        if exchange && flags != FileSystem.renameExchange { throw .inval }
        try requireWritable()
        try checkName(name)
        try checkName(newName)
        if isReserved(parent, name) || isReserved(newParent, newName) { throw .perm }
        for n in [name, newName] where n == [0x2E] || n == [0x2E, 0x2E] { throw .inval }

        try withNamespaceLock { () throws(Errno) in
            let parentRec = try loadInode(parent)
            let newParentRec = newParent == parent ? parentRec : try loadInode(newParent)
            guard parentRec.isDirectory, newParentRec.isDirectory else { throw .notDir }
            guard let src = try loadDentry(parent, name) else { throw .noEnt }
            let dst = try loadDentry(newParent, newName)
            if exchange && dst == nil { throw .noEnt }
            if flags & FileSystem.renameNoReplace != 0 && dst != nil { throw .exists }
            if let dst, dst.ino == src.ino { return }  // two links to one inode: nothing to do

            let srcRec = try loadInode(src.ino)
            let dstRec = try dst.map { d throws(Errno) in try loadInode(d.ino) }
            // A directory may not move into its own subtree.
            if srcRec.isDirectory && parent != newParent { try checkNotAncestor(src.ino, of: newParent) }
            if exchange, let dst, dstRec!.isDirectory, parent != newParent { try checkNotAncestor(dst.ino, of: parent) }
            if let caller, caller.checksAccess {
                try requireDelete(dir: parentRec, victim: srcRec, caller)
                if let dstRec { try requireDelete(dir: newParentRec, victim: dstRec, caller) } else {
                    try requireAccess(newParentRec, caller, [.write, .exec])
                }
                if parent != newParent {
                    if srcRec.isDirectory { try requireAccess(srcRec, caller, .write) }
                    if exchange, let dstRec, dstRec.isDirectory { try requireAccess(dstRec, caller, .write) }
                }
            }
            if !exchange, let dstRec, let dst {
                if srcRec.isDirectory {
                    guard dstRec.isDirectory else { throw .notDir }
                    guard try isEmptyDirectory(dst.ino) else { throw .notEmpty }
                } else if dstRec.isDirectory {
                    throw .isDir
                }
            }

            var inos = [parent, newParent, src.ino]
            if let dst { inos.append(dst.ino) }
            var batch = WriteBatch()
            let newIno = whiteout ? reserveIno(&batch) : nil  // the whiteout's inode
            try withInodeLocks(newIno.map { inos + [$0.ino] } ?? inos) { () throws(Errno) in
                var set = InodeSet()
                for ino in inos { try set.load(self, ino) }
                let now = TimeSpec.now()
                var orphaned: UInt64?
                let srcIsDir = set.recs[src.ino]!.isDirectory
                if exchange, let dst {
                    batch.put(Keys.dentry(parent, name), dst.encode())
                    batch.put(Keys.dentry(newParent, newName), src.encode())
                    if parent != newParent {
                        if srcIsDir { moveDir(src.ino, from: parent, to: newParent, &set) }
                        if set.recs[dst.ino]!.isDirectory { moveDir(dst.ino, from: newParent, to: parent, &set) }
                    }
                    set.recs[dst.ino]!.ctime = now
                } else {
                    if let newIno {
                        let rec = newInodeRecord(mode: FileSystem.whiteoutMode, rdev: FileSystem.whiteoutDev,
                                                 caller: caller ?? .process, in: set.recs[parent]!, now: now)
                        addNewInode(newIno.ino, rec, at: parent, name, to: &batch)
                    } else {
                        batch.delete(Keys.dentry(parent, name))
                    }
                    batch.put(Keys.dentry(newParent, newName), src.encode())
                    if let dst {
                        if set.recs[dst.ino]!.isDirectory {
                            // The replaced (empty) directory goes; its ".." no longer links newParent.
                            set.recs[newParent]!.nlink.decrementSaturating()
                            set.dropped.insert(dst.ino)
                            batch.deleteRange(Keys.xattrStart(dst.ino), Keys.xattrEnd(dst.ino))
                            batch.delete(Keys.inode(dst.ino))
                        } else if try dropLink(dst.ino, &set, &batch, now: now) {
                            orphaned = dst.ino
                        }
                    }
                    if srcIsDir && parent != newParent { moveDir(src.ino, from: parent, to: newParent, &set) }
                }
                set.recs[src.ino]!.ctime = now
                for p in [parent, newParent] { set.recs[p]!.mtime = now; set.recs[p]!.ctime = now }
                set.flush(into: &batch)
                do throws(Errno) { try write(batch, "rename") } catch {
                    if let orphaned { unmarkOrphan(orphaned) }
                    throw error
                }
                if let newIno { inodeCreated(newIno.ino, limit: newIno.limit) }
            }
        }
    }

    /// Re-parents directory `ino` (nlink of both parents, its ".." pointer).
    private func moveDir(_ ino: UInt64, from old: UInt64, to new: UInt64, _ set: inout InodeSet) {
        set.recs[ino]!.parent = new
        set.recs[old]!.nlink.decrementSaturating()
        set.recs[new]!.nlink &+= 1
    }

    /// Throws EINVAL if directory `ino` is `dir` or one of its ancestors (namespace lock held).
    private func checkNotAncestor(_ ino: UInt64, of dir: UInt64) throws(Errno) {
        var p = dir
        var hops = 0
        while true {
            if p == ino { throw .inval }
            if p == FSFormat.rootIno { return }
            p = try loadInode(p).parent
            hops += 1
            if hops > 1 << 20 || p == 0 {
                fsLog.error("directory \(dir): parent chain does not reach the root")
                throw .io
            }
        }
    }
}
