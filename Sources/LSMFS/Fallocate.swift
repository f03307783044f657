import Glibc
import LSMStore
import SystemPackage

/// fallocate(2) modes (<linux/falloc.h>).
/// lseek(2) whence values for data and holes (<unistd.h>, Linux).
public enum SeekWhence {
    public static let data: Int32 = 3
    public static let hole: Int32 = 4
}

public enum FallocMode {
    public static let keepSize: Int32 = 0x01
    public static let punchHole: Int32 = 0x02
    public static let collapseRange: Int32 = 0x08
    public static let zeroRange: Int32 = 0x10
    public static let insertRange: Int32 = 0x20
}

extension FileSystem {
    /// fallocate(2) on an open file. Mode 0 (optionally KEEP_SIZE) checks that the space exists
    /// (ENOSPC otherwise) and grows the size; there is nothing to reserve in an LSM store, so
    /// blocks stay what the data holds. PUNCH_HOLE (with KEEP_SIZE) and ZERO_RANGE zero the
    /// range: whole chunks inside it are deleted with one range delete (their blocks freed),
    /// partial chunks are zeroed and, when the range reaches their stored end, shortened.
    /// COLLAPSE_RANGE and INSERT_RANGE are EOPNOTSUPP.
    package func fallocate(_ fh: UInt64, mode: Int32, offset: UInt64, length: UInt64) throws(Errno) {
        guard case .file(let ino, let flags) = try handle(fh) else { throw .badF }
        guard flags & O_ACCMODE != O_RDONLY else { throw .badF }
        try requireWritable()
        let known = FallocMode.keepSize | FallocMode.punchHole | FallocMode.zeroRange
        if mode & ~known != 0 { throw Errno(rawValue: EOPNOTSUPP) }
        if mode & FallocMode.punchHole != 0 && mode & FallocMode.keepSize == 0 { throw .inval }
        if mode & FallocMode.punchHole != 0 && mode & FallocMode.zeroRange != 0 { throw .inval }
        guard length > 0 else { throw .inval }
        let (end, overflow) = offset.addingReportingOverflow(length)
        if overflow || end > FSFormat.maxFileSize { throw .fBig }
        try withInodeLock(ino) { () throws(Errno) in
            try flushDirtyLocked(ino)
            var rec = try loadInode(ino)
            guard rec.isRegular else { throw rec.isDirectory ? .isDir : Errno(rawValue: ENODEV) }
            var batch = WriteBatch()
            let now = TimeSpec.now()
            if mode & (FallocMode.punchHole | FallocMode.zeroRange) != 0 {
                try zeroRange(ino, &rec, from: offset, to: min(end, rec.size), &batch)
                rec.mtime = now
            } else {
                // Allocation: the free space must hold the part past the current data.
                let need = end > rec.size ? end - rec.size : 0
                let free = statfs().blocksAvailable * 4096
                if need > free { throw Errno(rawValue: ENOSPC) }
            }
            if mode & FallocMode.keepSize == 0 && end > rec.size {
                rec.size = end
                rec.mtime = now
            }
            rec.ctime = now
            batch.put(Keys.inode(ino), rec.encode())
            try write(batch, "fallocate")
        }
    }

    /// Zeroes [lo, hi) of the stored data of `ino` (stripe lock held, nothing buffered).
    func zeroRange(_ ino: UInt64, _ rec: inout InodeRecord, from lo: UInt64, to hi: UInt64, _ batch: inout WriteBatch) throws(Errno) {
        guard lo < hi else { return }
        let cs = UInt64(chunkSize)
        let firstIdx = lo / cs, lastIdx = (hi - 1) / cs
        // Sizes first (no value-log reads); only chunks the range cuts partly are read.
        // (with their patches: a chunk changed here is folded, docs/format/keys.md)
        var stored: [StoredChunkLength] = []
        try scanChunkLengths(ino, from: firstIdx, to: lastIdx + 1) { c in
            stored.append(c)
            return true
        }
        for sc in stored {
            let idx = sc.index, old = sc.length, patches = sc.patches
            let start = idx * cs
            let a = Int(max(lo, start) - start), b = Int(min(hi, start + cs) - start)
            var new: [UInt8] = []
            if a >= old { continue }                   // the range starts past the stored end
            if sc.isPatchedHole {                      // a hole chunk stays one: its patches are cut
                let left = try zeroPatchedHole(ino, idx, patches: patches, from: a, to: b, &batch)
                rec.blocks = InodeRecord.adjust(rec.blocks, fromPages: sc.pages, toPages: left)
                continue
            }
            if !(a == 0 && b >= old) {                 // not the whole stored chunk: read it
                guard let bytes = try loadChunk(ino, idx).bytes else { continue }
                new = bytes
                if b >= new.count {
                    new.removeSubrange(min(a, new.count)..<new.count)   // the range reaches the stored end: shorten
                } else {
                    _ = new.withUnsafeMutableBytes { p in
                        (p.baseAddress! + a).initializeMemory(as: UInt8.self, repeating: 0, count: b - a)
                    }
                }
            }
            rec.blocks = InodeRecord.adjust(rec.blocks, fromPages: sc.pages, toPages: ChunkPages.upTo(new.count))
            putChunk(ino, idx, new, clearing: patches, to: &batch)
        }
    }

    /// lseek(2) SEEK_DATA / SEEK_HOLE: data is what chunks store (holes are never stored; a
    /// stored chunk's tail past its length is a hole too). ENXIO at or past EOF, or when no
    /// data follows `offset`.
    package func seekDataOrHole(_ fh: UInt64, offset: UInt64, whence: Int32) throws(Errno) -> UInt64 {
        guard case .file(let ino, _) = try handle(fh) else { throw .badF }
        try flushDirty(ino)
        let rec = try loadInode(ino)
        guard offset < rec.size else { throw Errno(rawValue: ENXIO) }
        let cs = UInt64(chunkSize)
        var result: UInt64?
        var pos = offset
        try scanChunkLengths(ino, from: offset / cs, to: nil) { c in
            let start = c.index * cs
            var stop = false
            // The chunk's data runs: its pages for a hole chunk (an empty base with patches),
            // else everything up to its length.
            func run(_ lo: UInt64, _ hi: UInt64) {
                guard !stop else { return }
                if whence == SeekWhence.data {
                    if hi > pos { result = max(lo, pos); stop = true }
                    return
                }
                // SEEK_HOLE: the first byte at or after pos no stored byte covers.
                if lo > pos { result = pos; stop = true; return }
                if hi > pos { pos = hi }
            }
            let dataEnd = start + UInt64(c.length)
            if c.isPatchedHole {   // (adjacent blocks need no merging: `run` moves pos across)
                let bs = UInt64(FSFormat.patchBlockSize)
                ChunkPatch.forEachBlock(in: c.patches) { b in
                    let lo = start + UInt64(b) * bs
                    run(lo, min(lo + bs, dataEnd))
                }
            } else {
                run(start, dataEnd)
            }
            if stop { return false }
            if whence != SeekWhence.data && dataEnd < start + cs { result = pos; return false }
            return true
        }
        if whence == SeekWhence.data {
            guard let r = result, r < rec.size else { throw Errno(rawValue: ENXIO) }
            return r
        }
        return min(result ?? pos, rec.size)
    }

    /// copy_file_range(2) between two open files: reads and writes through the filesystem in
    /// 1 MiB pieces (no round trip through the caller). Returns the bytes copied (short at EOF).
    package func copyFileRange(from inFh: UInt64, at inOff: UInt64, to outFh: UInt64, at outOff: UInt64, length: Int) throws(Errno) -> Int {
        guard case .file = try handle(inFh) else { throw .badF }
        guard case .file(_, let outFlags) = try handle(outFh) else { throw .badF }
        guard outFlags & O_ACCMODE != O_RDONLY else { throw .badF }
        var done = 0
        let piece = 1 << 20
        while done < length {
            let want = min(piece, length - done)
            let data = try read(inFh, offset: inOff + UInt64(done), size: want)
            if data.isEmpty { break }
            var written: Result<Int, Errno> = .success(0)
            data.withUnsafeBytes { p in
                do throws(Errno) { written = .success(try write(outFh, offset: outOff + UInt64(done), data: p)) } catch {
                    written = .failure(error)
                }
            }
            let n = try written.get()
            done += n
            if data.count < want { break }   // end of the source
        }
        return done
    }
}
