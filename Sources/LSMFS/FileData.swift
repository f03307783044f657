import Glibc
import LSMStore
import SystemPackage

/// What `open` returns.
public struct OpenReply: Sendable {
    public var fh: UInt64
    /// Serve reads without the page cache (the stats pseudo-files).
    public var directIO: Bool
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
        if flags & O_TRUNC != 0 && writable && rec.isRegular && rec.size > 0 {
            do throws(Errno) {
                try withInodeLock(ino) { () throws(Errno) in
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
        case .file(let ino, _):
            return try withInodeLock(ino) { () throws(Errno) -> [UInt8] in
                let rec = try loadInode(ino)
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
                return out
            }
        }
    }

    /// Writes `data` at `offset` (at EOF for O_APPEND handles): the touched chunks
    /// (read-modify-write for partial ones) and the inode's new size/times in one batch.
    package func write(_ fh: UInt64, offset: UInt64, data: UnsafeRawBufferPointer) throws(Errno) -> Int {
        guard case .file(let ino, let flags) = try handle(fh) else { throw .badF }
        guard flags & O_ACCMODE != O_RDONLY else { throw .badF }
        try requireWritable()
        if data.isEmpty { return 0 }
        return try withInodeLock(ino) { () throws(Errno) -> Int in
            var rec = try loadInode(ino)
            let off = flags & O_APPEND != 0 ? rec.size : offset
            let (end, overflow) = off.addingReportingOverflow(UInt64(data.count))
            if overflow || end > FSFormat.maxFileSize { throw .fBig }
            let cs = UInt64(chunkSize)
            var batch = WriteBatch()
            var idx = off / cs
            while idx * cs < end {
                let start = idx * cs
                let lo = Int(max(off, start) - start), hi = Int(min(end, start + cs) - start)
                let src = data[Int(start + UInt64(lo) - off) ..< Int(start + UInt64(hi) - off)]
                var chunk: [UInt8]
                if lo == 0 && start + UInt64(hi) >= rec.size {
                    chunk = Array(src)  // covers every byte the chunk holds
                } else {
                    chunk = try kv("read chunk", { () throws(LSMError) in try store.get(Keys.chunk(ino, idx)) }) ?? []
                    if chunk.count < hi { chunk.append(contentsOf: repeatElement(0, count: hi - chunk.count)) }
                    chunk.withUnsafeMutableBytes { c in
                        (c.baseAddress! + lo).copyMemory(from: UnsafeRawBufferPointer(rebasing: src).baseAddress!, byteCount: hi - lo)
                    }
                }
                batch.put(Keys.chunk(ino, idx), chunk)
                idx += 1
            }
            if end > rec.size { rec.size = end }
            let now = TimeSpec.now()
            rec.mtime = now; rec.ctime = now
            batch.put(Keys.inode(ino), rec.encode())
            try write(batch, "write")
            return data.count
        }
    }

    /// Sets the size of regular file `ino` in `rec` (stripe lock held), adding the chunk
    /// changes to `batch`: shrinking cuts the last chunk and drops the chunks past EOF (one
    /// deleteRange); growing needs nothing (missing bytes read as zeros).
    func truncate(_ ino: UInt64, _ rec: inout InodeRecord, to size: UInt64, _ batch: inout WriteBatch) throws(Errno) {
        if size > FSFormat.maxFileSize { throw .fBig }
        if size < rec.size {
            let cs = UInt64(chunkSize)
            let idx = size / cs, rem = Int(size % cs)
            if rem != 0 {
                if let chunk = try kv("read chunk", { () throws(LSMError) in try store.get(Keys.chunk(ino, idx)) }),
                   chunk.count > rem {
                    batch.put(Keys.chunk(ino, idx), Array(chunk[0..<rem]))
                }
                batch.deleteRange(Keys.chunk(ino, idx + 1), Keys.chunksEnd(ino))
            } else {
                batch.deleteRange(Keys.chunk(ino, idx), Keys.chunksEnd(ino))
            }
        }
        rec.size = size
    }

    /// Nothing is buffered above the store, so flush (close) has nothing to do.
    package func flush(_ fh: UInt64) throws(Errno) {
        _ = try handle(fh)
    }

    /// fsync/fdatasync: returns once every write accepted so far is durable.
    package func fsync(_ fh: UInt64?, datasync: Bool) throws(Errno) {
        if let fh { _ = try handle(fh) }
        if options.readOnly { return }
        try kv("sync", { () throws(LSMError) in try store.sync() })
    }
}
