import Glibc
import LSMStore
import SystemPackage

/// What `open` returns.
public struct OpenReply: Sendable {
    public var fh: UInt64
    /// Serve reads without the page cache (the stats pseudo-files).
    public var directIO: Bool
    /// Regular files: the kernel may keep the file's cached pages across opens (FOPEN_KEEP_CACHE)
    /// and need not send FLUSH at close (FOPEN_NOFLUSH; see `FileSystem.write` for where buffered
    /// writes go instead). Safe because every change reaches the file through this kernel.
    public var keepCache: Bool { !directIO }
    public var noFlush: Bool { !directIO }
}

extension FileSystem {
    package func open(_ ino: UInt64, flags: Int32) throws(Errno) -> OpenReply {
        let writable = flags & O_ACCMODE != O_RDONLY
        if FileSystem.isPseudo(ino) {
            if writable || flags & O_TRUNC != 0 { throw .access }
            let content = Array((ino == FSFormat.statsTextIno ? statsText() : statsJSON()).utf8)
            let fh = tables.withLock { $0.add(.stats(content: content)) }
            return OpenReply(fh: fh, directIO: true)
        }
        let rec = try loadInode(ino)
        if rec.isDirectory { throw .isDir }
        if writable || flags & O_TRUNC != 0 { try requireWritable() }
        let fh = registerOpen(ino, flags: flags)
        if flags & O_TRUNC != 0 && writable && rec.isRegular {
            do throws(Errno) {
                try withInodeLock(ino) { () throws(Errno) in
                    try flushDirtyLocked(ino)
                    var r = try loadInode(ino)
                    var batch = WriteBatch()
                    try truncate(ino, &r, to: 0, &batch)
                    let now = TimeSpec.now()
                    r.mtime = now; r.ctime = now
                    batch.put(Keys.inode(ino), r.encode())
                    try write(batch, "truncate at open")
                }
            } catch {
                try? release(fh)
                throw error
            }
        }
        return OpenReply(fh: fh, directIO: false)
    }

    /// Reads up to `size` bytes at `offset` (short at EOF).
    package func read(_ fh: UInt64, offset: UInt64, size: Int) throws(Errno) -> [UInt8] {
        switch try handle(fh) {
        case .stats(let content):
            guard offset < UInt64(content.count) else { return [] }
            let lo = Int(offset)
            return Array(content[lo..<min(content.count, lo + size)])
        case .dir:
            throw .isDir
        case .file(let ino, let flags):
            // No inode lock: the buffered chunk is read first, then the store. A write or flush
            // that completed before the call is in one or the other (a flush writes the store
            // before it drops the buffer), so completed writes are always seen; a write racing
            // with this read may be seen in part, as on any filesystem.
            do {
                let pending = dirtyEntry(ino)
                let rec = try loadInode(ino, dirty: .some(pending))
                if size > 0 { touchAtime(ino, seen: rec, flags: flags) }
                guard offset < rec.size, size > 0 else { return [] }
                let end = min(rec.size, offset + UInt64(size))
                var out = [UInt8](repeating: 0, count: Int(end - offset))
                let cs = UInt64(chunkSize)
                let first = offset / cs, last = (end - 1) / cs
                try kv("read chunks", { () throws(LSMError) in
                    try store.scan(from: Keys.chunk(ino, first), to: Keys.chunk(ino, last + 1)) { key, value in
                        guard key.count == 17 else { return true }
                        let start = key.readBE(UInt64.self, at: 9) * cs
                        let lo = max(start, offset), hi = min(start + UInt64(value.count), end)
                        if lo < hi {
                            out.withUnsafeMutableBytes { o in
                                value.withUnsafeBytes { v in
                                    (o.baseAddress! + Int(lo - offset)).copyMemory(
                                        from: v.baseAddress! + Int(lo - start), byteCount: Int(hi - lo))
                                }
                            }
                        }
                        return true
                    }
                })
                // The buffered chunk is newer than the stored one and covers all its bytes.
                if let d = pending, d.index >= first, d.index <= last {
                    let start = d.index * cs
                    let lo = max(start, offset), zeroHi = min(start + cs, end)
                    let hi = min(start + UInt64(d.bytes.count), end)
                    out.withUnsafeMutableBytes { o in
                        if lo < zeroHi {
                            (o.baseAddress! + Int(lo - offset)).initializeMemory(as: UInt8.self, repeating: 0, count: Int(zeroHi - lo))
                        }
                        if lo < hi {
                            d.bytes.withUnsafeBytes { v in
                                (o.baseAddress! + Int(lo - offset)).copyMemory(from: v.baseAddress! + Int(lo - start), byteCount: Int(hi - lo))
                            }
                        }
                    }
                }
                return out
            }
        }
    }

    /// Writes `data` at `offset` (at EOF for O_APPEND handles). A write inside one chunk that
    /// stops short of the chunk's end is buffered (DirtyChunk; a sequential writer's chunk goes
    /// to the store with the write that completes it); any other write puts the touched chunks
    /// (read-modify-write for partial ones), the buffered chunk if any, and the inode's new
    /// size/times in one batch.
    package func write(_ fh: UInt64, offset: UInt64, data: UnsafeRawBufferPointer) throws(Errno) -> Int {
        guard case .file(let ino, let flags) = try handle(fh) else { throw .badF }
        guard flags & O_ACCMODE != O_RDONLY else { throw .badF }
        try requireWritable()
        if data.isEmpty { return 0 }
        return try withInodeLock(ino) { () throws(Errno) -> Int in
            var rec = try loadInode(ino)  // size/times include buffered writes
            let off = flags & O_APPEND != 0 ? rec.size : offset
            let (end, overflow) = off.addingReportingOverflow(UInt64(data.count))
            if overflow || end > FSFormat.maxFileSize { throw .fBig }
            let cs = UInt64(chunkSize)
            var pending = dirtyEntry(ino)
            let now = TimeSpec.now()
            // Fast path: a write inside one chunk that stops short of its end is buffered, unless
            // the drive is nearly full (then the store write below reports ENOSPC to this write:
            // close sends no FLUSH, so a buffered chunk could not report it). A buffer of another
            // chunk goes to the store first, alone: a random writer then puts one chunk per
            // write, not the old buffer and the new chunk both.
            let first = off / cs
            if (end - 1) / cs == first, end - first * cs < cs, !spaceIsLow() {
                if let p = pending, p.index != first {
                    try flushDirtyLocked(ino)  // stores what `rec` already shows
                    pending = nil
                }
                let start = first * cs
                let lo = Int(off - start)
                if pending != nil {
                    // In place: the entry stays visible to lock-free readers throughout.
                    dirty.withLock { $0[ino]!.apply(data, at: lo, size: end, mtime: now) }
                } else {
                    // (read even when the write covers the chunk's data: its length counts in blocks)
                    let stored = start >= rec.size ? nil : try kv("read chunk", { () throws(LSMError) in try store.get(Keys.chunk(ino, first)) })
                    var entry = DirtyChunk(index: first, bytes: stored ?? [], size: rec.size, blocks: rec.blocks, mtime: now)
                    entry.apply(data, at: lo, size: end, mtime: now)
                    dirty.withLock { $0[ino] = entry }
                }
                return data.count
            }
            var chunks: [(index: UInt64, bytes: [UInt8])] = []
            var idx = off / cs
            while idx * cs < end {
                let start = idx * cs
                let lo = Int(max(off, start) - start), hi = Int(min(end, start + cs) - start)
                let src = UnsafeRawBufferPointer(rebasing: data[Int(start + UInt64(lo) - off) ..< Int(start + UInt64(hi) - off)])
                var chunk: [UInt8]
                let oldLength: Int
                if start >= rec.size {
                    chunk = Array(src)  // past EOF: nothing stored for this chunk
                    oldLength = 0
                } else {
                    if let p = pending, p.index == idx {
                        chunk = p.bytes
                    } else {
                        chunk = try kv("read chunk", { () throws(LSMError) in try store.get(Keys.chunk(ino, idx)) }) ?? []
                    }
                    oldLength = chunk.count
                    if chunk.count < hi { chunk += [UInt8](repeating: 0, count: hi - chunk.count) }
                    chunk.withUnsafeMutableBytes { c in
                        (c.baseAddress! + lo).copyMemory(from: src.baseAddress!, byteCount: hi - lo)
                    }
                }
                rec.blocks = InodeRecord.adjust(rec.blocks, from: oldLength, to: chunk.count)
                chunks.append((idx, chunk))
                idx += 1
            }
            let newSize = max(rec.size, end)
            var batch = WriteBatch()
            if let p = pending, !chunks.contains(where: { $0.index == p.index }) {
                batch.put(Keys.chunk(ino, p.index), p.bytes)
            }
            for c in chunks { batch.put(Keys.chunk(ino, c.index), c.bytes) }
            rec.size = newSize
            rec.mtime = now; rec.ctime = now
            batch.put(Keys.inode(ino), rec.encode())
            try write(batch, "write")
            discardDirty(ino)
            return data.count
        }
    }

    /// Sets the size of regular file `ino` in `rec` (stripe lock held, nothing buffered),
    /// adding the chunk changes to `batch`: shrinking cuts the last chunk and drops the chunks
    /// past EOF (one deleteRange) and takes their blocks off; growing needs nothing (missing
    /// bytes read as zeros).
    func truncate(_ ino: UInt64, _ rec: inout InodeRecord, to size: UInt64, _ batch: inout WriteBatch) throws(Errno) {
        if size > FSFormat.maxFileSize { throw .fBig }
        if size < rec.size {
            let cs = UInt64(chunkSize)
            let cut = size / cs, rem = Int(size % cs)
            let firstDropped = rem != 0 ? cut + 1 : cut
            if size == 0 {
                rec.blocks = 0
            } else {
                // The chunks that go, with their lengths (for blocks): sizes only, so chunks
                // in the value log are not read back; the one chunk that shrinks is read.
                var freed: UInt64 = 0
                var cutChunk: [UInt8]?
                try kv("scan chunks", { () throws(LSMError) in
                    try store.scanSizes(from: Keys.chunk(ino, firstDropped), to: Keys.chunksEnd(ino)) { key, size in
                        if key.count == 17 { freed += InodeRecord.blocks(ofChunkLength: size) }
                        return true
                    }
                    if rem != 0 { cutChunk = try store.get(Keys.chunk(ino, cut)) }
                })
                if let c = cutChunk, c.count > rem {
                    batch.put(Keys.chunk(ino, cut), Array(c[0..<rem]))
                    freed += InodeRecord.blocks(ofChunkLength: c.count) - InodeRecord.blocks(ofChunkLength: rem)
                }
                rec.blocks = rec.blocks >= freed ? rec.blocks - freed : 0
            }
            batch.deleteRange(Keys.chunk(ino, firstDropped), Keys.chunksEnd(ino))
        }
        rec.size = size
    }

    /// close(2): hands buffered writes of the file to the store.
    package func flush(_ fh: UInt64) throws(Errno) {
        if case .file(let ino, _) = try handle(fh) { try flushDirty(ino) }
    }

    /// fsync/fdatasync: returns once every write accepted so far is durable — of every file:
    /// buffered chunks of other files (closed ones included: close sends no FLUSH) go to the
    /// store too, so an fsync also covers what other files wrote before it.
    package func fsync(_ fh: UInt64?, datasync: Bool) throws(Errno) {
        if let fh { _ = try handle(fh) }
        if options.readOnly { return }
        try syncAll()
    }
}
