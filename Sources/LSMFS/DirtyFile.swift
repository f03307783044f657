import Glibc
import LSMStore
import Synchronization
import SystemPackage

/// The write-back buffer of one file: writes land here as the new content of each chunk they
/// touch (for a small write into a stored chunk, only the written ranges: `PartialChunk`), and
/// reach the store in one batch (every buffered chunk and the inode
/// record) when the file's buffer passes `WriteBuffering.fileBytes`, all buffers together
/// pass `WriteBuffering.totalBytes`, the file is released or fsynced, another operation needs
/// the inode, or the periodic sync runs. One store write then carries many chunks (a sequential
/// writer hands the value log 16 MiB at a time), and whole 4 KiB blocks written into a stored
/// chunk go in as chunk patches (`addChunks`, docs/format/keys.md): a random 4 KiB writer stores
/// 4 KiB per write, not the 64 KiB chunk, and reads nothing back. While an entry exists the store still holds the file's previous
/// consistent state (chunks and inode record both old), so a crash loses the buffered writes
/// as a whole and never leaves a size that points past stored data.
struct DirtyFile {
    /// New content of each buffered chunk (never empty): complete (the stored chunk with the
    /// writes applied), or for chunks in `partial` only the written ranges (zeros between).
    var chunks: [UInt64: [UInt8]] = [:]
    /// Chunks whose stored content was not read yet (a small write into a stored chunk does
    /// not wait for a 64 KiB value-log read: the read happens when the buffer is stored, on
    /// the write-behind thread, or when a reader needs it).
    var partial: [UInt64: PartialChunk] = [:]
    /// Patch blocks (`ChunkPatch`) that may be stored for a buffered chunk: a flush that
    /// rewrites the chunk deletes them. Missing: none.
    var storedPatches: [UInt64: ChunkPatchMask] = [:]
    /// Complete chunks buffered over a hole (nothing stored for them, image of version 3),
    /// with their written ranges (`baseLength` 0): written only in blocks past block 0, they
    /// are stored as an empty base with those blocks as patches (`emptyBasePatches`).
    var holes: [UInt64: PartialChunk] = [:]
    var attrs: DirtyAttrs
    /// Sum of the chunks' lengths.
    var bytes = 0

    /// The chunk's length once composed.
    func length(_ idx: UInt64) -> Int {
        let n = chunks[idx]?.count ?? 0
        if let p = partial[idx] { return max(p.baseLength, n) }
        return n
    }

    /// The patches chunk `idx` has over an empty base once flushed (a hole chunk), or nil when
    /// the flush stores it otherwise. Depends on the chunk's own buffered state only, so the
    /// blocks counted at each write (`pages`) are what the flush stores: a chunk buffered over
    /// a hole, or written into a stored hole chunk, in whole blocks (the file's tail block may
    /// be partial for the former) that together keep `ChunkPages.holeEligible`.
    func emptyBasePatches(_ idx: UInt64) -> ChunkPatchMask? {
        if let h = holes[idx], let n = chunks[idx]?.count, let m = h.holeBlocks(count: n) {
            return ChunkPages.holeEligible(m) ? m : nil
        }
        if let p = partial[idx], p.emptyBase, let m = p.wholeBlocks {
            let all = m | (storedPatches[idx] ?? 0)
            return ChunkPages.holeEligible(all) ? all : nil
        }
        return nil
    }

    /// The pages chunk `idx` counts in `blocks` once flushed (`ChunkPages`): its hole patches,
    /// else every page up to its composed length (a fold, a whole chunk, or patches over a
    /// non-empty base all store the same pages).
    func pages(_ idx: UInt64) -> ChunkPatchMask {
        emptyBasePatches(idx) ?? ChunkPages.upTo(length(idx))
    }

    /// Patch blocks that may be stored for chunk `idx` once this buffer is flushed.
    func patchesAfterFlush(_ idx: UInt64) -> ChunkPatchMask {
        (storedPatches[idx] ?? 0) | (partial[idx]?.wholeBlocks ?? 0) | (emptyBasePatches(idx) ?? 0)
    }
}

/// A file's size, blocks and mtime (= ctime) after its buffered writes.
struct DirtyAttrs {
    var size: UInt64
    var blocks: UInt64
    var mtime: TimeSpec
}

/// A buffer detached from its file for a store write that runs without the stripe lock
/// (write-behind: the FUSE thread that filled it writes it after replying). `record` is the
/// inode record, encoded at detach time, that goes into the same batch.
struct DetachedFile {
    var file: DirtyFile
    var record: [UInt8]
    /// A thread is writing it (else it waits in `DirtyTable.due`).
    var started = false
}

/// Every file's write-back buffer (`FileSystem.dirty`, a leaf lock). A `files` entry is
/// created and changed only under its inode's stripe lock (and, when a failed write-behind is
/// merged back, under this lock alone: see `writeDetached`); lock-free readers take copies
/// (copy-on-write: a reader's copy keeps the bytes it saw). At most one detached buffer per
/// file is being written at a time; it is older than the file's `files` entry, and newer than
/// the store: readers overlay store < `flushing` < `files`.
struct DirtyTable {
    var files: [UInt64: DirtyFile] = [:]
    var flushing: [UInt64: DetachedFile] = [:]
    /// Detached buffers no thread has started writing yet, oldest first.
    var due: [UInt64] = []
    /// Bytes in `files`, and in `flushing`.
    var fillingBytes = 0
    var flushingBytes = 0
    var totalBytes: Int { fillingBytes + flushingBytes }
}

/// What a buffered write leaves for its caller to do once the stripe lock is dropped.
enum BufferedWriteFollowUp {
    case none
    /// All buffers together are over budget: flush them all.
    case flushAll
    /// A buffer was detached for write-behind: write it (`runDueFlushes`), after replying.
    case writeBehind
}

/// How much the write-back buffers may hold (the daemon's memory budget is 256 MiB).
enum WriteBuffering {
    /// A file's buffer is stored once it holds this many bytes (256 chunks).
    static let fileBytes = 16 << 20
    /// All buffers are stored once together they hold this many bytes.
    static let totalBytes = 32 << 20
}

/// Whether the drive is nearly full, for the write buffers: below `thresholdBytes` of free space
/// writes go straight to the store, so ENOSPC reaches the write(2) that caused it (a buffered
/// chunk reaches the store only at release, fsync or the periodic sync, where no caller can see
/// the error). The threshold leaves room for everything the buffers may hold (plus what
/// writers add before a flush of all of them starts) and a 32 MiB margin. Re-measured at most
/// every `refreshNanos`; lock-free.
final class LowSpaceProbe: Sendable {
    static let thresholdBytes: UInt64 = 32 << 20 + 2 * UInt64(WriteBuffering.totalBytes)
    static let refreshNanos: UInt64 = 50_000_000
    private let checkedAt = Atomic<UInt64>(0)
    private let low = Atomic<Bool>(true)

    func isLow(freeBytes: () -> UInt64) -> Bool {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC_COARSE, &ts)
        let now = UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
        let last = checkedAt.load(ordering: .relaxed)
        if last == 0 || now &- last >= LowSpaceProbe.refreshNanos,
           checkedAt.compareExchange(expected: last, desired: max(now, 1), ordering: .relaxed).exchanged {
            low.store(freeBytes() < LowSpaceProbe.thresholdBytes, ordering: .relaxed)
        }
        return low.load(ordering: .relaxed)
    }
}

extension FileSystem {
    /// True while the drive has less than `LowSpaceProbe.thresholdBytes` free (see there).
    func spaceIsLow() -> Bool {
        lowSpace.isLow { store.kvimr.stats().freeBytes }
    }

    /// The size and times of `ino`'s buffered writes, the filling buffer's or else the one
    /// being written behind (stable while the caller holds the inode's stripe lock and no
    /// write-behind of it runs).
    func dirtyEntry(_ ino: UInt64) -> DirtyAttrs? {
        dirty.withLock { $0.files[ino]?.attrs ?? $0.flushing[ino]?.file.attrs }
    }

    /// Copies of `ino`'s buffers, for lock-free readers: the one being written behind and the
    /// filling one (newer).
    func dirtyFiles(_ ino: UInt64) -> (behind: DirtyFile?, filling: DirtyFile?) {
        dirty.withLock { ($0.flushing[ino]?.file, $0.files[ino]) }
    }

    /// Applies a buffer's size and times to a record loaded from the store.
    func overlay(_ d: DirtyAttrs, _ rec: inout InodeRecord) {
        rec.size = d.size
        rec.blocks = d.blocks
        rec.mtime = d.mtime
        if d.mtime > rec.ctime { rec.ctime = d.mtime }
    }

    /// Buffers a write of `data` at `off` (stripe lock held; `size` and `blocks` are the
    /// inode's with its buffered writes). Chunks not buffered yet start from the buffer being written
    /// behind, else from their stored content, read only when the write leaves part of it (a
    /// whole-chunk write reads only the stored length, for blocks). A file buffer over its
    /// budget is flushed here, or with `writeBehind` detached for the caller to write after
    /// replying (waiting first for the file's previous write-behind: one at a time per file).
    func bufferWrite(_ ino: UInt64, size: UInt64, blocks: UInt64, at off: UInt64, _ data: UnsafeRawBufferPointer,
                     now: TimeSpec, writeBehind: Bool) throws(Errno) -> BufferedWriteFollowUp {
        let cs = UInt64(chunkSize)
        let end = off + UInt64(data.count)
        let first = off / cs, last = (end - 1) / cs
        // (the few chunks one write touches, ascending: an array, not a set built from one)
        let (held, behind): ([UInt64], DirtyFile?) = dirty.withLock { t in
            let behind = t.flushing[ino]?.file
            guard let f = t.files[ino] else { return ([], behind) }
            return ((first...last).filter { f.chunks[$0] != nil }, behind)
        }
        // Stored lengths of the chunks that start from the store (one scan of sizes, no value
        // reads): whole-chunk writes replace them; partial writes leave the read for later.
        var stored: [UInt64: StoredChunkLength] = [:]
        let fromStore = (first...last).filter { !held.contains($0) && behind?.chunks[$0] == nil && $0 * cs < size }
        if let lo = fromStore.first, let hi = fromStore.last {
            try scanChunkLengths(ino, from: lo, to: hi + 1) { c in
                stored[c.index] = c
                return true
            }
        }
        var holesAllowed: Bool?
        // New chunks, built outside the leaf lock.
        var fresh: [(index: UInt64, bytes: [UInt8], partial: PartialChunk?, oldPages: ChunkPatchMask,
                     patches: ChunkPatchMask, hole: PartialChunk?)] = []
        for idx in first...last where !held.contains(idx) {
            let start = idx * cs
            let lo = Int(max(off, start) - start), hi = Int(min(end, start + cs) - start)
            let src = UnsafeRawBufferPointer(rebasing: data[Int(start + UInt64(lo) - off) ..< Int(start + UInt64(hi) - off)])
            let whole = lo == 0 && hi == Int(cs)
            var base: [UInt8] = []
            var partial: PartialChunk?
            var oldPages: ChunkPatchMask = 0
            var patches: ChunkPatchMask = 0
            var hole: PartialChunk?
            if let behind, let b = behind.chunks[idx] {
                // The buffer being written behind is newer than the store: start from it (and
                // from its written ranges, if it has not read its stored content either). The
                // patches it may store count as stored; a hole chunk it stores stays one.
                oldPages = behind.pages(idx)
                patches = behind.patchesAfterFlush(idx)
                if !whole {
                    base = b
                    partial = behind.partial[idx]
                    partial?.add(lo..<hi)
                    partial = partial?.unlessCovering
                    partial?.emptyBase = behind.emptyBasePatches(idx) != nil
                    hole = behind.holes[idx]
                    hole?.add(lo..<hi)
                }
            } else if let c = stored[idx], c.length > 0 {
                oldPages = c.pages
                patches = c.patches
                if !whole {
                    partial = PartialChunk(baseLength: c.length, ranges: [lo..<hi], emptyBase: c.isPatchedHole).unlessCovering
                }
            } else if !whole && lo > 0 {
                // Over a hole: may become a hole chunk (written past block 0 only).
                if holesAllowed == nil { holesAllowed = try emptyBasesAllowed() }
                if holesAllowed == true { hole = PartialChunk(baseLength: 0, ranges: [lo..<hi]) }
            }
            if base.isEmpty && lo == 0 {
                fresh.append((idx, Array(src), partial, oldPages, patches, hole))
                continue
            }
            base.zeroExtend(to: hi)
            base.withUnsafeMutableBytes { c in (c.baseAddress! + lo).copyMemory(from: src.baseAddress!, byteCount: src.count) }
            fresh.append((idx, base, partial, oldPages, patches, hole))
        }
        let (fileBytes, fillingBytes, flushingBytes) = dirty.withLock { t -> (Int, Int, Int) in
            var f = t.files.removeValue(forKey: ino)
                ?? DirtyFile(attrs: DirtyAttrs(size: size, blocks: blocks, mtime: now))
            let before = f.bytes
            for idx in held {
                let start = idx * cs
                let lo = Int(max(off, start) - start), hi = Int(min(end, start + cs) - start)
                let oldPages = f.pages(idx)
                var c = f.chunks.removeValue(forKey: idx)!   // unique here: changed in place
                let old = c.count
                c.zeroExtend(to: hi)
                c.withUnsafeMutableBytes { p in
                    (p.baseAddress! + lo).copyMemory(from: data.baseAddress! + Int(start + UInt64(lo) - off), byteCount: hi - lo)
                }
                f.bytes += c.count - old
                f.chunks[idx] = c
                if var p = f.partial.removeValue(forKey: idx) {   // (taken out: added to in place)
                    p.add(lo..<hi)
                    if !p.coversBase { f.partial[idx] = p }   // covering: complete now, no base read
                }
                f.holes[idx]?.add(lo..<hi)
                f.attrs.blocks = InodeRecord.adjust(f.attrs.blocks, fromPages: oldPages, toPages: f.pages(idx))
            }
            for c in fresh {
                // (a failed write-behind merged back meanwhile may have put this chunk here:
                // `c` was built on the same bytes and replaces it)
                if let merged = f.chunks[c.index] { f.bytes -= merged.count }
                f.bytes += c.bytes.count
                f.chunks[c.index] = c.bytes
                f.partial[c.index] = c.partial
                f.holes[c.index] = c.hole
                f.storedPatches[c.index] = c.patches == 0 ? nil : c.patches
                f.attrs.blocks = InodeRecord.adjust(f.attrs.blocks, fromPages: c.oldPages, toPages: f.pages(c.index))
            }
            f.attrs.size = max(f.attrs.size, end)
            f.attrs.mtime = now
            t.fillingBytes += f.bytes - before
            let fileBytes = f.bytes
            t.files[ino] = f
            return (fileBytes, t.fillingBytes, t.flushingBytes)
        }
        if fileBytes >= WriteBuffering.fileBytes {
            if writeBehind && flushingBytes < WriteBuffering.totalBytes {
                waitForWriteBehind(ino)
                if try detach(ino) { return .writeBehind }
            }
            try flushDirtyLocked(ino)
            return .none
        }
        return fillingBytes >= WriteBuffering.totalBytes ? .flushAll : .none
    }

    /// Adds a put of every buffered chunk of `ino` to `batch` (stripe lock held; the caller
    /// writes the inode record and then calls `discardDirty`).
    func addDirtyChunks(_ ino: UInt64, to batch: inout WriteBatch) throws(Errno) {
        guard let f = dirtyFiles(ino).filling else { return }
        try addChunks(of: f, ino, to: &batch)
    }

    /// Puts every chunk of buffer `f` into `batch`. A partial chunk (written ranges only) goes
    /// in as patches of the whole 4 KiB blocks it wrote when it wrote only whole blocks, the
    /// file is larger than one chunk and the chunk keeps at most `maxPatchesPerChunk`
    /// (docs/format/keys.md: no value-log read, 4 KiB stored per 4 KiB written); otherwise its
    /// stored content is read, the ranges laid over it, and the chunk rewritten with its
    /// patches deleted (folded). A complete chunk is rewritten and deletes the patches that
    /// may be stored for it. A chunk buffered over a hole, or written into a stored hole
    /// chunk, in blocks that `DirtyFile.emptyBasePatches` allows goes in as an empty base (if
    /// not stored yet) and those blocks as patches: it stores (and counts) only its blocks.
    func addChunks(of f: DirtyFile, _ ino: UInt64, to batch: inout WriteBatch) throws(Errno) {
        let bs = FSFormat.patchBlockSize
        var allowed: Bool?
        for idx in f.chunks.keys.sorted() {
            let bytes = f.chunks[idx]!
            if let mask = f.emptyBasePatches(idx) {
                // Layout: 'B' ino idx -> empty; 'B' ino idx b -> block b's bytes (the tail
                // block may be short) for each written block b.
                let written: ChunkPatchMask
                if f.holes[idx] != nil {
                    batch.put(Keys.chunk(ino, idx), [])
                    written = mask
                } else {
                    written = f.partial[idx]?.wholeBlocks ?? 0
                }
                ChunkPatch.forEachBlock(in: written) { b in
                    batch.put(Keys.patch(ino, idx, b), Array(bytes[b * bs ..< min((b + 1) * bs, bytes.count)]))
                }
                ChunkPatch.forEachBlock(in: (f.storedPatches[idx] ?? 0) & ~mask) { batch.delete(Keys.patch(ino, idx, $0)) }
                continue
            }
            guard let p = f.partial[idx] else {
                putChunk(ino, idx, bytes, clearing: f.storedPatches[idx] ?? 0, to: &batch)
                continue
            }
            if !p.emptyBase, f.attrs.size > UInt64(chunkSize), let blocks = p.wholeBlocks, blocks != 0,
               ((f.storedPatches[idx] ?? 0) | blocks).nonzeroBitCount <= FSFormat.maxPatchesPerChunk {
                if allowed == nil { allowed = try patchesAllowed() }
                if allowed == true {
                    ChunkPatch.forEachBlock(in: blocks) { b in
                        batch.put(Keys.patch(ino, idx, b), Array(bytes[b * bs ..< (b + 1) * bs]))
                    }
                    continue
                }
            }
            let (base, patches) = try loadChunk(ino, idx)
            putChunk(ino, idx, p.compose(base: consume base, bytes), clearing: patches, to: &batch)
        }
    }

    /// Writes `ino`'s buffered chunks and inode record in one batch (stripe lock held). The
    /// buffer is dropped only after the store has them: lock-free readers see one or the other.
    func flushDirtyLocked(_ ino: UInt64) throws(Errno) {
        waitForWriteBehind(ino)
        guard dirtyEntry(ino) != nil else { return }
        let rec = try loadInode(ino)  // with the buffered size and times
        var batch = WriteBatch()
        try addDirtyChunks(ino, to: &batch)
        batch.put(Keys.inode(ino), rec.encode())
        try write(batch, "flush buffered writes of \(ino)")
        discardDirty(ino)
    }

    func flushDirty(_ ino: UInt64) throws(Errno) {
        try withInodeLock(ino) { () throws(Errno) in try flushDirtyLocked(ino) }
    }

    /// Flushes every buffered file (before a store sync, or when the buffers are over budget).
    /// A file whose flush fails keeps its buffer and does not stop the others (one bad file
    /// must not hold back everyone's durability); the first error is thrown once all were tried.
    func flushAllDirty() throws(Errno) {
        var first: Errno? = nil
        for ino in dirty.withLock({ Set($0.files.keys).union($0.flushing.keys) }) {
            do throws(Errno) { try flushDirty(ino) } catch {
                fsLog.error("storing buffered writes of inode \(ino) failed: \(error)")
                if first == nil { first = error }
            }
        }
        if let first { throw first }
    }

    /// Drops `ino`'s buffer (stripe lock held) once no write-behind of it runs.
    func discardDirty(_ ino: UInt64) {
        waitForWriteBehind(ino)
        dirty.withLock { t in
            if let f = t.files.removeValue(forKey: ino) { t.fillingBytes -= f.bytes }
        }
    }

    /// Number of files with buffered writes, and the bytes buffered (stats).
    var dirtyFileCount: Int { dirty.withLock { Set($0.files.keys).union($0.flushing.keys).count } }
    var dirtyBytes: Int { dirty.withLock { $0.totalBytes } }
}

extension TimeSpec: Comparable {
    public static func < (a: TimeSpec, b: TimeSpec) -> Bool {
        a.sec < b.sec || (a.sec == b.sec && a.nsec < b.nsec)
    }
}
