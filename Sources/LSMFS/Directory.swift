import Glibc
import LSMStore
import SystemPackage

/// One readdir entry.
public struct DirEntry: Sendable, Equatable {
    public var name: [UInt8]
    public var ino: UInt64
    /// DT_* type.
    public var type: UInt8
    /// The offset to pass back to resume right after this entry.
    public var nextOffset: Int64
}

extension FileSystem {
    /// A checked `caller` needs read permission on the directory.
    package func opendir(_ ino: UInt64, caller: Caller? = nil) throws(Errno) -> UInt64 {
        if FileSystem.isPseudo(ino) { throw .notDir }
        do throws(Errno) {
            let rec = try loadInode(ino)
            guard rec.isDirectory else { throw .notDir }
            try requireAccess(rec, caller, .read)
        } catch where error == .noEnt && removedDir(ino) != nil {
            // someone's working directory, removed: it opens and lists nothing (as getattr)
        }
        return tables.withLock { $0.add(.dir(DirCursor(ino: ino))) }
    }

    package func releasedir(_ fh: UInt64) {
        _ = tables.withLock { $0.handles.removeValue(forKey: fh) }
    }

    /// Lists entries after `offset` ("." = 1, ".." = 2, then the names in key order), calling
    /// `emit` until it returns false (the reply buffer is full). Offsets stay valid across
    /// calls on one handle: an offset from the previous reply resumes after its name; any other
    /// offset is counted from the start of the directory.
    package func readdir(_ fh: UInt64, offset: Int64, _ emit: (DirEntry) -> Bool) throws(Errno) {
        guard case .dir(let cursor) = try handle(fh) else { throw .badF }
        let ino = cursor.ino
        if offset < 1 {
            guard emit(DirEntry(name: [0x2E], ino: ino, type: UInt8(DT_DIR), nextOffset: 1)) else { return }
        }
        if offset < 2 {
            let dir = try loadInode(ino)
            touchAtime(ino, seen: dir)
            let parent = dir.parent
            guard emit(DirEntry(name: [0x2E, 0x2E], ino: parent == 0 ? ino : parent, type: UInt8(DT_DIR), nextOffset: 2)) else { return }
        }
        var from = Keys.dirStart(ino)
        var skipName: [UInt8]?
        var skipCount: Int64 = 0
        var counter: Int64 = max(offset, 2)
        if offset > 2 {
            if let name = cursor.lastBatch[offset] {
                from = Keys.dentry(ino, name)
                skipName = name
            } else {
                skipCount = offset - 2
            }
        }
        // Dentries are read in pages and emitted outside the scan, so `emit` (readdirplus loads
        // attributes from the store) never runs inside a store iteration.
        let pageSize = 128
        var batch: [Int64: [UInt8]] = [:]
        pages: while true {
            var page: [(name: [UInt8], d: DentryRecord)] = []
            var bad = false
            try kv("readdir", { () throws(LSMError) in
                try store.scan(from: from, to: Keys.dirEnd(ino)) { key, value in
                    let name = Array(key[9...])
                    if let s = skipName, s == name { return true }
                    if skipCount > 0 { skipCount -= 1; return true }
                    guard let d = DentryRecord.decode(value) else { bad = true; return false }
                    page.append((name, d))
                    return page.count < pageSize
                }
            })
            if bad {
                fsLog.error("directory \(ino): undecodable dentry")
                throw .io
            }
            for (name, d) in page {
                counter += 1
                guard emit(DirEntry(name: name, ino: d.ino, type: d.type, nextOffset: counter)) else { break pages }
                batch[counter] = name
            }
            guard page.count == pageSize, let last = page.last else { break }
            from = Keys.dentry(ino, last.name)
            skipName = last.name
        }
        if batch.isEmpty { return }
        tables.withLock { t in
            if case .dir(var c) = t.handles[fh] {
                c.lastBatch = batch
                t.handles[fh] = .dir(c)
            }
        }
    }

    /// The attributes of a readdirplus entry, taking one kernel lookup reference; nil if the
    /// entry went away meanwhile (the kernel then gets the name without attributes).
    package func entryAttr(_ e: DirEntry) -> FileAttr? {
        guard e.name != [0x2E], e.name != [0x2E, 0x2E],
              let rec = try? loadInode(e.ino) else { return nil }
        incLookup(e.ino)
        return rec.attr(ino: e.ino)
    }
}
