import Glibc
import LSMStore
import SystemPackage

/// A time to set with setattr.
public enum TimeSet: Sendable, Equatable {
    case now
    case time(TimeSpec)
}

/// The attributes a setattr changes (nil = leave alone).
public struct SetAttr: Sendable {
    public var mode: UInt32?
    public var uid: UInt32?
    public var gid: UInt32?
    public var size: UInt64?
    public var atime: TimeSet?
    public var mtime: TimeSet?
    /// Clear set-user-ID (and set-group-ID of a group-executable file) and
    /// `security.capability` from the record as it is under the inode lock (`killSetID`: a
    /// mode computed from an earlier read could undo a concurrent chmod).
    package var killSetID = false
    public init(mode: UInt32? = nil, uid: UInt32? = nil, gid: UInt32? = nil, size: UInt64? = nil,
                atime: TimeSet? = nil, mtime: TimeSet? = nil) {
        self.mode = mode; self.uid = uid; self.gid = gid; self.size = size; self.atime = atime; self.mtime = mtime
    }
}

/// statfs numbers.
public struct FSStatfs: Sendable {
    public var blockSize: UInt64
    public var blocks: UInt64
    public var blocksFree: UInt64
    public var blocksAvailable: UInt64
    public var files: UInt64
    public var filesFree: UInt64
    public var nameMax: UInt64
}

extension FileSystem {
    package func getattr(_ ino: UInt64) throws(Errno) -> FileAttr {
        if FileSystem.isPseudo(ino) { return statsAttr(ino) }
        do {
            return try loadInode(ino).attr(ino: ino)
        } catch where error == .noEnt {
            if let a = removedDir(ino) { return a }  // someone's working directory, removed
            throw error
        }
    }

    /// chmod, chown, truncate and utimens; ctime always moves. A checked `caller` is held to
    /// Linux's ownership rules (see `checkSetattr`); `viaHandle`: the request came on an open
    /// file (ftruncate), whose open checked access.
    package func setattr(_ ino: UInt64, _ s: SetAttr, caller: Caller? = nil, viaHandle: Bool = false) throws(Errno) -> FileAttr {
        if FileSystem.isPseudo(ino) { throw .perm }
        try requireWritable()
        return try withInodeLock(ino) { () throws(Errno) -> FileAttr in
            // A size change needs the stored chunks current first. Otherwise buffered writes stay
            // buffered (`storedRec`): tar sets times, mode and owner right after closing each
            // file, and storing its data inside this request would make tar wait for it.
            if s.size != nil && dirtyEntry(ino) != nil { try flushDirtyLocked(ino) }
            // One inode read gives both records: the stored one and, with the buffer's size
            // and times over it, the current one (as `loadInode(ino)` makes it).
            waitForWriteBehind(ino)
            let pending = dirtyEntry(ino)
            let stored = try loadInode(ino, dirty: .some(nil))
            var rec = stored
            if let pending { overlay(pending, &rec) }
            let storedRec = pending == nil ? nil : stored
            let checkedMode = try checkSetattr(rec, s, caller, viaHandle: viaHandle)
            var batch = WriteBatch()
            let now = TimeSpec.now()
            if let m = s.mode { rec.mode = checkedMode ?? (rec.type | (m & 0o7777)) }
            if s.killSetID && rec.isRegular {
                rec.mode = FileSystem.withoutSetID(rec.mode)
                try addKillCapability(ino, &batch)
            }
            // chown of a non-directory drops set-user-ID, and set-group-ID when group-executable
            // (without it the bit marks mandatory locking), as Linux does — even for root.
            if (s.uid != nil || s.gid != nil) && !rec.isDirectory {
                rec.mode = FileSystem.withoutSetID(rec.mode)
                try addKillCapability(ino, &batch)
            }
            if let u = s.uid { rec.uid = u }
            if let g = s.gid { rec.gid = g }
            if let size = s.size {
                if rec.isDirectory { throw .isDir }
                guard rec.isRegular else { throw .inval }
                if size != rec.size {
                    try truncate(ino, &rec, to: size, &batch)
                    if s.mtime == nil { rec.mtime = now }
                } else if s.mtime == nil {
                    rec.mtime = now  // POSIX: a successful truncate updates mtime even without change
                }
            }
            if let a = s.atime { rec.atime = a.resolved(now) }
            if let m = s.mtime { rec.mtime = m.resolved(now) }
            rec.ctime = now
            guard let storedRec else {
                batch.put(Keys.inode(ino), rec.encode())
                try write(batch, "setattr")
                return rec.attr(ino: ino)
            }
            try setattrKeepingBuffer(ino, rec, stored: storedRec, setsMtime: s.mtime != nil, &batch)
            return rec.attr(ino: ino)
        }
    }

    /// Stores the attributes of a setattr on a file with buffered writes (inode lock held, no
    /// write-behind running) without storing the buffer: the stored record gets the new mode,
    /// owner, times and ctime but keeps the stored size and blocks (so a crash before the
    /// buffer lands leaves a record that agrees with the stored chunks), and the buffer takes
    /// the new mtime (its flush overlays size, blocks and mtime on the stored record: the
    /// times set here are not undone by it).
    func setattrKeepingBuffer(_ ino: UInt64, _ rec: InodeRecord, stored: InodeRecord, setsMtime: Bool,
                              _ batch: inout WriteBatch) throws(Errno) {
        var out = rec
        out.size = stored.size
        out.blocks = stored.blocks
        if !setsMtime { out.mtime = stored.mtime }
        batch.put(Keys.inode(ino), out.encode())
        let old = dirty.withLock { t -> TimeSpec? in
            let m = t.files[ino]?.attrs.mtime
            t.files[ino]?.attrs.mtime = rec.mtime
            return m
        }
        do throws(Errno) { try write(batch, "setattr") } catch {
            if let old { dirty.withLock { $0.files[ino]?.attrs.mtime = old } }
            throw error
        }
    }

    /// Clears set-user-ID, set-group-ID of a group-executable file and `security.capability`,
    /// as Linux does when a caller without CAP_FSETID writes or truncates a regular file (the
    /// daemon's duty under FUSE_HANDLE_KILLPRIV_V2). Returns the new attributes, nil if there
    /// was nothing to clear (one inode read; the xattr probe is answered from memory).
    /// A checked `caller` (the empty SETATTR, which chown(f, -1, -1) sends too) must own or
    /// may write the file: anyone else gets EPERM if there are bits to clear, as on Linux
    /// (where the kill makes it a mode change, the owner's), and clears nothing.
    package func killSetID(_ ino: UInt64, caller: Caller? = nil) throws(Errno) -> FileAttr? {
        if FileSystem.isPseudo(ino) { return nil }
        // Mode, owner and type only: the stored record, without waiting for a write-behind of
        // the file (this runs before every WRITE by non-root; a wait here would hold each write
        // until the previous buffer is stored). A mode change below loads it fully itself.
        // When there are bits to clear, the setattr clears them from the record it reads under
        // the inode lock (with the capability), so a concurrent chmod is never undone.
        let rec = try loadInode(ino, dirty: .some(nil))
        guard rec.isRegular else { return nil }
        let clears = FileSystem.withoutSetID(rec.mode) != rec.mode
        if let caller, caller.checksAccess, caller.uid != rec.uid, !FileSystem.permits(rec, caller, .write) {
            if clears { throw .perm }
            return nil
        }
        if clears {
            var s = SetAttr()
            s.killSetID = true
            return try setattr(ino, s)
        }
        var attr: FileAttr?
        if xattrPresence.withLock({ $0.known[ino] }) != false {
            do throws(Errno) {
                try removexattr(ino, FileSystem.capabilityName)
                attr = try getattr(ino)
            } catch where error.rawValue == ENODATA {}
        }
        return attr
    }

    package func statfs() -> FSStatfs {
        let k = store.kvimr.stats()
        let bs: UInt64 = 4096
        let blocks = k.capacityBytes / bs
        let free = min(k.freeBytes / bs, blocks)
        // Inode numbers are 64-bit and records live in the store, so "free inodes" is what the
        // free space could hold (one 4 KiB page each, a generous bound); used is the real count.
        let filesFree = free / 4 + 1024
        let used = inodeCount()
        return FSStatfs(blockSize: bs, blocks: blocks, blocksFree: free, blocksAvailable: free,
                        files: used + filesFree, filesFree: filesFree, nameMax: UInt64(FSFormat.nameMax))
    }

    /// The attributes of a stats pseudo-file (size of a fresh snapshot).
    func statsAttr(_ ino: UInt64) -> FileAttr {
        let now = TimeSpec.now()
        let size = UInt64((ino == FSFormat.statsTextIno ? statsText() : statsJSON()).utf8.count)
        return FileAttr(ino: ino, mode: UInt32(S_IFREG) | 0o444, nlink: 1, uid: getuid(), gid: getgid(),
                        rdev: 0, size: size, blocks: (size + 511) / 512, atime: now, mtime: now, ctime: now,
                        generation: 1)
    }
}

extension TimeSet {
    func resolved(_ now: TimeSpec) -> TimeSpec {
        switch self {
        case .now: return now
        case .time(let t): return t
        }
    }
}
