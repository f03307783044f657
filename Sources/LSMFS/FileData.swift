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
    /// `caller`: checked for access by `flags` (see `checkOpen`) on the record read here.
    package func open(_ ino: UInt64, flags: Int32, caller: Caller? = nil) throws(Errno) -> OpenReply {
        let writable = flags & O_ACCMODE != O_RDONLY
        if FileSystem.isPseudo(ino) {
            if writable || flags & O_TRUNC != 0 { throw .access }
            let content = Array((ino == FSFormat.statsTextIno ? statsText() : statsJSON()).utf8)
            let fh = tables.withLock { $0.add(.stats(content: content)) }
            return OpenReply(fh: fh, directIO: true)
        }
        let rec = try loadInode(ino)
        try requireOpenAccess(rec, flags: flags, caller)
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
        var failure: Errno?
        let out = [UInt8](unsafeUninitializedCapacity: size) { buf, count in
            do throws(Errno) { count = try read(fh, offset: offset, into: UnsafeMutableRawBufferPointer(buf)) } catch {
                failure = error
                count = 0
            }
        }
        if let failure { throw failure }
        return out
    }

    /// Reads up to `buf.count` bytes at `offset` into `buf` (short at EOF) and returns how many.
    /// Each byte of the result is written once (data, or zeros for holes): no zero-filled
    /// buffer first, so the FUSE read handler can reply from a reused buffer.
    package func read(_ fh: UInt64, offset: UInt64, into buf: UnsafeMutableRawBufferPointer) throws(Errno) -> Int {
        let size = buf.count
        switch try handle(fh) {
        case .stats(let content):
            guard offset < UInt64(content.count) else { return 0 }
            let lo = Int(offset), n = min(content.count - lo, size)
            content.withUnsafeBytes { buf.baseAddress!.copyMemory(from: $0.baseAddress! + lo, byteCount: n) }
            return n
        case .dir:
            throw .isDir
        case .file(let ino, let flags):
            let dirty = dirtyFiles(ino)
            if dirty.behind == nil && dirty.filling == nil {
                return try readStored(ino, flags: flags, offset: offset, into: buf)
            }
            guard let c = try chunkContent(ino, flags: flags, offset: offset, size: size, dirty: dirty) else { return 0 }
            let base = buf.baseAddress!
            var at = 0
            c.forEachPiece { piece in
                switch piece {
                case .bytes(let chunk, let range):
                    chunk.withUnsafeBytes { (base + at).copyMemory(from: $0.baseAddress! + range.lowerBound, byteCount: range.count) }
                    at += range.count
                case .zeros(let n):
                    memset(base + at, 0, n)
                    at += n
                }
            }
            return at
        }
    }

    /// The newest content of the chunks bytes `[offset, offset + size)` of file `ino` touch
    /// (nil: nothing to read there).
    /// `dirty`: the file's buffers (`dirtyFiles`), read before the store.
    private func chunkContent(_ ino: UInt64, flags: Int32, offset: UInt64, size: Int,
                              dirty: (behind: DirtyFile?, filling: DirtyFile?)) throws(Errno) -> ReadContent? {
        // No inode lock: the buffers are read first, then the store. A write or flush that
        // completed before the call is in one or the other (a flush writes the store before
        // it drops the buffer), so completed writes are always seen; a write racing with
        // this read may be seen in part, as on any filesystem.
        let (behind, pending) = dirty
        let rec = try loadInode(ino, dirty: .some(pending?.attrs ?? behind?.attrs))
        if size > 0 { touchAtime(ino, seen: rec, flags: flags) }
        guard offset < rec.size, size > 0 else { return nil }
        let end = min(rec.size, offset + UInt64(size))
        let cs = UInt64(chunkSize)
        let first = offset / cs, last = (end - 1) / cs
        // Each chunk's newest content: buffered (newer, covering all the stored bytes; past
        // its length zeros), else stored; the store is read only for runs of chunks the
        // buffers do not hold.
        // Partial buffered chunks (written ranges only) go over the stored content.
        var content: [UInt64: [UInt8]] = [:]
        func complete(_ i: UInt64) -> Bool {
            (pending?.chunks[i] != nil && pending?.partial[i] == nil) || (behind?.chunks[i] != nil && behind?.partial[i] == nil)
        }
        var idx = first
        while idx <= last {
            if complete(idx) { idx += 1; continue }
            var runEnd = idx + 1
            while runEnd <= last && !complete(runEnd) { runEnd += 1 }
            let stored = (idx, runEnd)
            try kv("read chunks", { () throws(LSMError) in
                try store.scan(from: Keys.chunk(ino, stored.0), to: Keys.chunk(ino, stored.1)) { key, value in
                    if key.count == FSFormat.chunkKeyLength {
                        content[key.readBE(UInt64.self, at: 9)] = value
                    } else if let b = ChunkPatch.block(of: key) {   // after its chunk: laid over it
                        ChunkPatch.apply(value, block: b, to: &content[key.readBE(UInt64.self, at: 9), default: []])
                    }
                    return true
                }
            })
            idx = runEnd
        }
        func layOver(_ f: DirtyFile?) {
            guard let f else { return }
            for i in first...last {
                guard let c = f.chunks[i] else { continue }
                if let p = f.partial[i] { content[i] = p.compose(base: content.removeValue(forKey: i), c) } else { content[i] = c }
            }
        }
        layOver(behind)   // older, then newer (no array of the two per read)
        layOver(pending)
        return ReadContent(content: content, offset: offset, end: end, chunkSize: cs)
    }

    /// Writes `data` at `offset` (at EOF for O_APPEND handles). Writes are buffered
    /// (`DirtyFile`) unless the drive is nearly full: then the buffer goes to the store first
    /// and the touched chunks (read-modify-write for partial ones) and the inode's new
    /// size/times are written in one batch, so ENOSPC reaches this write (close sends no FLUSH,
    /// so a buffered chunk could not report it).
    package func write(_ fh: UInt64, offset: UInt64, data: UnsafeRawBufferPointer) throws(Errno) -> Int {
        try write(fh, offset: offset, data: data, writeBehind: false)
    }

    /// `write`, but a file buffer that fills is handed to the caller to store after it
    /// replied (`runDueFlushes`): the next write of the file is taken meanwhile. For the FUSE
    /// write handler.
    package func writeBehind(_ fh: UInt64, offset: UInt64, data: UnsafeRawBufferPointer) throws(Errno) -> Int {
        try write(fh, offset: offset, data: data, writeBehind: true)
    }

    private func write(_ fh: UInt64, offset: UInt64, data: UnsafeRawBufferPointer, writeBehind: Bool) throws(Errno) -> Int {
        guard case .file(let ino, let flags) = try handle(fh) else { throw .badF }
        guard flags & O_ACCMODE != O_RDONLY else { throw .badF }
        try requireWritable()
        if data.isEmpty { return 0 }
        let followUp = try withInodeLock(ino) { () throws(Errno) -> BufferedWriteFollowUp in
            // Size/times include buffered writes; no wait for a write-behind of the file (this
            // write only adds to the buffer; the low-space path below waits in its flush). A
            // buffered write needs only the size and blocks: a file with a buffer has them
            // there, and its inode record is not read.
            let pending = dirtyEntry(ino)
            let low = spaceIsLow()
            let loaded = try pending != nil && !low ? nil : loadInode(ino, dirty: .some(pending))
            let size = loaded?.size ?? pending?.size ?? 0, blocks = loaded?.blocks ?? pending?.blocks ?? 0
            let off = flags & O_APPEND != 0 ? size : offset
            let (end, overflow) = off.addingReportingOverflow(UInt64(data.count))
            if overflow || end > FSFormat.maxFileSize { throw .fBig }
            let now = TimeSpec.now()
            guard low, var rec = loaded else {   // (read whenever space is low)
                return try bufferWrite(ino, size: size, blocks: blocks, at: off, data, now: now, writeBehind: writeBehind)
            }
            try flushDirtyLocked(ino)  // stores what `rec` already shows
            let cs = UInt64(chunkSize)
            var chunks: [(index: UInt64, bytes: [UInt8], patches: ChunkPatchMask)] = []
            var idx = off / cs
            while idx * cs < end {
                let start = idx * cs
                let lo = Int(max(off, start) - start), hi = Int(min(end, start + cs) - start)
                let src = UnsafeRawBufferPointer(rebasing: data[Int(start + UInt64(lo) - off) ..< Int(start + UInt64(hi) - off)])
                var chunk: [UInt8]
                var oldPages: ChunkPatchMask = 0
                var patches: ChunkPatchMask = 0
                if start >= rec.size {
                    chunk = Array(src)  // past EOF: nothing stored for this chunk
                } else {
                    let stored = try loadStoredChunk(ino, idx)   // folded: its patches go
                    chunk = stored.bytes ?? []
                    patches = stored.patches
                    oldPages = stored.pages
                    chunk.zeroExtend(to: hi)
                    chunk.withUnsafeMutableBytes { c in
                        (c.baseAddress! + lo).copyMemory(from: src.baseAddress!, byteCount: hi - lo)
                    }
                }
                rec.blocks = InodeRecord.adjust(rec.blocks, fromPages: oldPages, toPages: ChunkPages.upTo(chunk.count))
                chunks.append((idx, chunk, patches))
                idx += 1
            }
            let newSize = max(rec.size, end)
            var batch = WriteBatch()
            for c in chunks { putChunk(ino, c.index, c.bytes, clearing: c.patches, to: &batch) }
            rec.size = newSize
            rec.mtime = now; rec.ctime = now
            batch.put(Keys.inode(ino), rec.encode())
            try write(batch, "write")
            return .none
        }
        if followUp == .flushAll {
            // This write is buffered: another file's failure to store is not this write's
            // error (those buffers stay; the next fsync or periodic sync reports it).
            do throws(Errno) { try flushAllDirty() } catch {
                fsLog.error("storing buffered writes after write to inode \(ino) failed: \(error)")
            }
        }
        return data.count
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
                // The chunks that go, with their pages (for blocks): sizes only, so chunks
                // in the value log are not read back; the one chunk that shrinks is read, and
                // folded with its patches (chunk patches: docs/format/keys.md) unless it is a
                // hole chunk (empty base: its patches are cut instead, `zeroPatchedHole`). A
                // file cut to one chunk keeps no patches over a non-empty base (its unlink
                // deletes chunk 0 alone; see `addDelete` for hole chunks).
                var freed: UInt64 = 0
                var cutChunk: StoredChunkLength?
                let refold = rem == 0 && cut == 1 && rec.size > cs ? UInt64(0) : nil
                let cutIdx = rem != 0 ? cut : refold
                try scanChunkLengths(ino, from: cutIdx ?? firstDropped, to: nil) { c in
                    if c.index == cutIdx { cutChunk = c } else { freed += InodeRecord.blocks(ofPages: c.pages) }
                    return true
                }
                var added: UInt64 = 0
                if let idx = cutIdx, let stored = cutChunk {
                    freed += InodeRecord.blocks(ofPages: stored.pages)
                    if stored.isPatchedHole {
                        let left = rem == 0 ? stored.patches
                            : try zeroPatchedHole(ino, idx, patches: stored.patches, from: rem, to: Int(cs), &batch)
                        added = InodeRecord.blocks(ofPages: left)
                    } else if stored.patches == 0 && (rem == 0 || stored.length <= rem) {
                        added = InodeRecord.blocks(ofPages: stored.pages)   // unchanged: not read
                    } else {
                        let (c, patches) = try loadChunk(ino, idx)
                        if let c, c.count > rem && rem != 0 {
                            putChunk(ino, idx, Array(c[0..<rem]), clearing: patches, to: &batch)
                            added = InodeRecord.blocks(ofPages: ChunkPages.upTo(rem))
                        } else if let c {
                            if patches != 0 { putChunk(ino, idx, c, clearing: patches, to: &batch) }
                            added = InodeRecord.blocks(ofPages: ChunkPages.upTo(c.count))
                        }
                    }
                }
                rec.blocks = rec.blocks >= freed ? rec.blocks - freed + added : added
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

/// A piece of a read's result (`ReadContent.forEachPiece`).
enum ReadPiece {
    case bytes([UInt8], Range<Int>)
    case zeros(Int)
}

/// The chunks a read touches, newest content each (`chunkContent`).
struct ReadContent {
    var content: [UInt64: [UInt8]]
    var offset: UInt64
    var end: UInt64
    var chunkSize: UInt64

    /// How many chunks the read touches.
    var chunkCount: Int { Int((end - 1) / chunkSize - offset / chunkSize + 1) }

    /// The read's bytes in order: each chunk's data, then zeros past its length (holes).
    func forEachPiece(_ body: (ReadPiece) -> Void) {
        let cs = chunkSize
        for i in (offset / cs)...((end - 1) / cs) {
            let start = i * cs
            let lo = max(start, offset), hi = min(start + cs, end)
            let chunk = content[i]   // one lookup per chunk
            let dataHi = min(hi, start + UInt64(chunk?.count ?? 0))
            if lo < dataHi, let chunk { body(.bytes(chunk, Int(lo - start)..<Int(dataHi - start))) }
            let zeroFrom = max(lo, dataHi)
            if zeroFrom < hi { body(.zeros(Int(hi - zeroFrom))) }
        }
    }
}
