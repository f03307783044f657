import Glibc
import LSMStore
import SystemPackage

/// What an open file handle (`fh`) refers to.
enum Handle {
    case file(ino: UInt64, flags: Int32)
    /// A stats pseudo-file: its content, generated at open.
    case stats(content: [UInt8])
    case dir(DirCursor)
}

/// Per-opendir state that keeps readdir offsets stable: the offsets handed out in the last
/// reply map to names, so the next call resumes right after the last name the kernel consumed.
struct DirCursor {
    var ino: UInt64
    var lastBatch: [Int64: [UInt8]] = [:]
}

/// In-memory tables shared by all requests (guarded by `FileSystem.tables`, a leaf lock).
struct Tables {
    var handles: [UInt64: Handle] = [:]
    var nextFh: UInt64 = 1
    /// Open file handles per inode (an unlinked inode lives on until this drops to zero).
    var openCount: [UInt64: Int] = [:]
    /// Unlinked inodes still open; reclaimed at the last release.
    var orphans: Set<UInt64> = []
    /// Open O_TMPFILE orphans that `link` may still name (opened without O_EXCL; TmpFile.swift).
    var linkableTmpfiles: Set<UInt64> = []
    /// Kernel lookup counts (entry replies minus forgets).
    var lookups: [UInt64: UInt64] = [:]
    /// Removed directories the kernel still holds (a process's working directory): their last
    /// attributes (nlink 0), so stat and open of "." answer as on ext4 until the kernel's
    /// forget. Memory only: after a remount no process can hold one.
    var removedDirs: [UInt64: FileAttr] = [:]

    mutating func add(_ h: Handle) -> UInt64 {
        let fh = nextFh
        nextFh += 1
        handles[fh] = h
        return fh
    }
}

extension FileSystem {
    func incLookup(_ ino: UInt64) {
        if FileSystem.isPseudo(ino) { return }
        tables.withLock { $0.lookups[ino, default: 0] += 1 }
    }

    /// Drops `n` kernel references to `ino` (FUSE forget).
    package func forget(_ ino: UInt64, _ n: UInt64) {
        tables.withLock { t in
            guard let c = t.lookups[ino] else { return }
            if c <= n {
                t.lookups[ino] = nil
                if !t.removedDirs.isEmpty { t.removedDirs[ino] = nil }
            } else {
                t.lookups[ino] = c - n
            }
        }
    }

    /// After an rmdir: keeps the directory's last attributes while the kernel holds it.
    func rememberRemovedDir(_ attr: FileAttr) {
        tables.withLock { t in
            if (t.lookups[attr.ino] ?? 0) > 0 { t.removedDirs[attr.ino] = attr }
        }
    }

    /// The attributes of a removed directory the kernel still holds (see `Tables.removedDirs`).
    func removedDir(_ ino: UInt64) -> FileAttr? {
        tables.withLock { $0.removedDirs.isEmpty ? nil : $0.removedDirs[ino] }
    }

    /// The current kernel lookup count of `ino` (for tests and stats).
    package func lookupCount(_ ino: UInt64) -> UInt64 {
        tables.withLock { $0.lookups[ino] ?? 0 }
    }

    package var openHandleCount: Int { tables.withLock { $0.handles.count } }

    func handle(_ fh: UInt64) throws(Errno) -> Handle {
        guard let h = tables.withLock({ $0.handles[fh] }) else { throw .badF }
        return h
    }

    /// Registers an open regular file.
    /// Under the kernel's writeback cache the kernel places O_APPEND writes itself (at its
    /// cached size, which includes unflushed pages); applying O_APPEND again here would move
    /// them, so the flag is dropped from the handle.
    func registerOpen(_ ino: UInt64, flags: Int32) -> UInt64 {
        let f = writebackCache.load(ordering: .relaxed) ? flags & ~O_APPEND : flags
        return tables.withLock { t in
            t.openCount[ino, default: 0] += 1
            return t.add(.file(ino: ino, flags: f))
        }
    }

    /// Under the inode's stripe lock during an unlink: if `ino` is open, marks it orphan and
    /// returns true (the caller writes the `O` marker); else the caller deletes it now.
    func markOrphanIfOpen(_ ino: UInt64) -> Bool {
        tables.withLock { t in
            if (t.openCount[ino] ?? 0) > 0 { t.orphans.insert(ino); return true }
            return false
        }
    }

    func unmarkOrphan(_ ino: UInt64) {
        _ = tables.withLock { $0.orphans.remove(ino) }
    }

    /// Closes `fh`; the last release of an unlinked file reclaims it (chunks + inode).
    package func release(_ fh: UInt64) throws(Errno) {
        let (h, reclaim) = try tables.withLock { t throws(Errno) -> (Handle, UInt64?) in
            guard let h = t.handles.removeValue(forKey: fh) else { throw .badF }
            guard case .file(let ino, _) = h else { return (h, nil) }
            let c = (t.openCount[ino] ?? 1) - 1
            t.openCount[ino] = c > 0 ? c : nil
            if c <= 0, t.orphans.remove(ino) != nil {
                if !t.linkableTmpfiles.isEmpty { t.linkableTmpfiles.remove(ino) }
                return (h, ino)
            }
            return (h, nil)
        }
        guard let ino = reclaim else {
            if case .file(let ino, _) = h { try flushDirty(ino) }
            return
        }
        try withInodeLock(ino) { () throws(Errno) in
            discardDirty(ino)
            var batch = WriteBatch()
            FileSystem.addReclaim(ino, to: &batch)
            try write(batch, "reclaim orphan \(ino)")
        }
    }
}
