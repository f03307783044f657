import LSMStore
import Synchronization
import SystemPackage

/// Chunk patches (docs/format/keys.md, "Chunk patches"): whole 4 KiB blocks of a stored chunk
/// written since the chunk itself, each under its own key `'B' ino chunk block` right after the
/// chunk's key. A stored chunk's content is its base value with its patches laid over it in
/// block order (a patch past the base's end extends the chunk, zeros between); its length is
/// the furthest byte either holds. Invariants the writers keep:
/// - every put or delete of a chunk's base deletes that chunk's patches in the same batch
///   (`ChunkPatchMask` tracks which may exist);
/// - only chunks with a stored base get patches, and only files larger than one chunk (so a
///   file of at most one chunk is wholly deleted by deleting chunk 0, as `addDelete` does),
///   except hole chunks (format version 3: an empty base with patches, none at block 0;
///   `ChunkPages`, `DirtyFile.emptyBasePatches`, `zeroPatchedHole`);
/// - truncation folds the chunk it cuts, and drops whole chunks with one range delete that
///   covers their patches too.
enum ChunkPatch {
    /// The block byte of a patch key, or nil for a base chunk key (or a malformed key).
    static func block(of key: [UInt8]) -> Int? {
        key.count == FSFormat.patchKeyLength ? Int(key[FSFormat.chunkKeyLength]) : nil
    }

    /// Whether `key`/`size` is a well-formed patch (block in range, 1...patchBlockSize bytes).
    static func isValid(block: Int, size: Int) -> Bool {
        block < FSFormat.patchesPerChunk && size > 0 && size <= FSFormat.patchBlockSize
    }

    /// Whether a `B` key of chunk or patch length holds a value of a size its kind allows. A
    /// chunk value may be empty (format version 3: a hole chunk stored as its patches alone);
    /// whether it then has patches is checked per chunk (`StoredChunkLength.isEmptyAlone`).
    static func isWellFormed(key: [UInt8], size: Int) -> Bool {
        if let b = block(of: key) { return isValid(block: b, size: size) }
        return size >= 0 && size <= FSFormat.chunkSize
    }

    /// Calls `body` with each block of `mask`, in ascending order.
    static func forEachBlock(in mask: ChunkPatchMask, _ body: (Int) -> Void) {
        var m = mask
        while m != 0 {
            body(m.trailingZeroBitCount)
            m &= m - 1
        }
    }

    /// Lays patch `value` of `block` over `content`, growing it with zeros as needed.
    static func apply(_ value: [UInt8], block: Int, to content: inout [UInt8]) {
        guard isValid(block: block, size: value.count) else { return }
        let lo = block * FSFormat.patchBlockSize, hi = lo + value.count
        content.zeroExtend(to: hi)
        content.withUnsafeMutableBytes { c in
            value.withUnsafeBytes { v in (c.baseAddress! + lo).copyMemory(from: v.baseAddress!, byteCount: value.count) }
        }
    }
}

/// The patch blocks of one chunk, as bits (bit b: block b). Also used for a chunk's pages
/// (the 4 KiB blocks it stores, `ChunkPages`).
typealias ChunkPatchMask = UInt16

/// Which 4 KiB pages of a chunk count in `st_blocks` (docs/format/keys.md, `blocks`): a
/// chunk stored as an empty base with patches (a hole chunk, format version 3) counts only its
/// patch blocks; any other chunk counts every page up to its length (its base and its patches
/// laid over it, zeros between included, as versions 1 and 2 always counted).
enum ChunkPages {
    /// Pages 0..<ceil(length / 4096) (at most all 16).
    static func upTo(_ length: Int) -> ChunkPatchMask {
        let n = min((length + FSFormat.patchBlockSize - 1) / FSFormat.patchBlockSize, FSFormat.patchesPerChunk)
        return n >= 16 ? ChunkPatchMask.max : ChunkPatchMask((1 << n) - 1)
    }

    /// The pages of a stored chunk: base of `baseLength` bytes (nil: no base), `patches`, and
    /// `length` the furthest byte either holds.
    static func of(baseLength: Int?, length: Int, patches: ChunkPatchMask) -> ChunkPatchMask {
        baseLength == 0 && patches != 0 ? patches : upTo(length)
    }

    /// Whether `mask` may be stored as an empty base with these patches: not empty, at most
    /// `maxPatchesPerChunk`, and not block 0 (so a one-chunk file with such a chunk has fewer
    /// blocks than its size's pages: `addDelete` then knows to delete its patches too).
    static func holeEligible(_ mask: ChunkPatchMask) -> Bool {
        mask != 0 && mask & 1 == 0 && mask.nonzeroBitCount <= FSFormat.maxPatchesPerChunk
    }
}

/// One stored chunk as a scan of sizes shows it.
struct StoredChunkLength {
    var ino: UInt64
    var index: UInt64
    /// The furthest byte its base or a patch holds.
    var length = 0
    var patches: ChunkPatchMask = 0
    /// The base value's size; nil: no base (malformed when it has patches).
    var baseLength: Int?
    var hasBase: Bool { baseLength != nil }
    /// Stored as an empty base with patches (a hole chunk; format version 3).
    var isPatchedHole: Bool { baseLength == 0 && patches != 0 }
    /// An empty base without patches: malformed (repair deletes it).
    var isEmptyAlone: Bool { baseLength == 0 && patches == 0 }
    /// The pages it counts in `blocks` (`ChunkPages`).
    var pages: ChunkPatchMask { ChunkPages.of(baseLength: baseLength, length: length, patches: patches) }

    /// Adds this chunk to per-inode totals (fsck, repair): the furthest byte stored, and the
    /// blocks its pages account for (a damaged chunk longer than `chunkSize` counts its length).
    func tally(ends: inout [UInt64: UInt64], blocks: inout [UInt64: UInt64]) {
        ends[ino] = max(ends[ino] ?? 0, index &* UInt64(FSFormat.chunkSize) &+ UInt64(length))
        blocks[ino, default: 0] &+= length > FSFormat.chunkSize
            ? InodeRecord.blocks(ofChunkLength: length) : InodeRecord.blocks(ofPages: pages)
    }
}

/// Folds a scan of chunk keys with their value sizes (base keys and patch keys, in key order)
/// into one value per chunk. For `scanSizes` callers and fsck.
struct ChunkLengthFolder {
    private var current: StoredChunkLength?

    /// Feeds one `B` key; returns the previous chunk when this key starts another one.
    /// Malformed keys and patches are skipped (fsck reports them).
    mutating func add(key: [UInt8], size: Int) -> StoredChunkLength? {
        guard key.count == FSFormat.chunkKeyLength || key.count == FSFormat.patchKeyLength else { return nil }
        let ino = key.readBE(UInt64.self, at: 1), idx = key.readBE(UInt64.self, at: 9)
        var done: StoredChunkLength?
        if let c = current, c.index != idx || c.ino != ino { done = c; current = nil }
        var c = current ?? StoredChunkLength(ino: ino, index: idx)
        if let b = ChunkPatch.block(of: key) {
            if ChunkPatch.isValid(block: b, size: size) {
                c.patches |= 1 << b
                c.length = max(c.length, b * FSFormat.patchBlockSize + size)
            }
        } else {
            c.baseLength = size
            c.length = max(c.length, size)
        }
        current = c
        return done
    }

    /// The last chunk fed.
    mutating func finish() -> StoredChunkLength? {
        defer { current = nil }
        return current
    }
}

extension FileSystem {
    /// Calls `body` with each stored chunk of `ino` in [from, to) (to nil: every chunk to the
    /// end of the file): index, length with its patches, patch blocks, base size. Sizes only:
    /// no value-log reads. `body` returns false to stop.
    func scanChunkLengths(_ ino: UInt64, from: UInt64, to: UInt64?, _ body: (StoredChunkLength) -> Bool) throws(Errno) {
        var folder = ChunkLengthFolder()
        var stopped = false
        try kv("scan chunk sizes", { () throws(LSMError) in
            try store.scanSizes(from: Keys.chunk(ino, from), to: to.map { Keys.chunk(ino, $0) } ?? Keys.chunksEnd(ino)) { key, size in
                if let c = folder.add(key: key, size: size), !body(c) {
                    stopped = true
                    return false
                }
                return true
            }
        })
        if !stopped, let c = folder.finish() { _ = body(c) }
    }

    /// Stored content of chunk `idx` of `ino` (its patches applied; nil if nothing is stored)
    /// and its patch blocks.
    func loadChunk(_ ino: UInt64, _ idx: UInt64) throws(Errno) -> (bytes: [UInt8]?, patches: ChunkPatchMask) {
        let c = try loadStoredChunk(ino, idx)
        return (c.bytes, c.patches)
    }

    /// `loadChunk`, with the pages the stored chunk counts in `blocks` (`ChunkPages`).
    func loadStoredChunk(_ ino: UInt64, _ idx: UInt64) throws(Errno) -> (bytes: [UInt8]?, patches: ChunkPatchMask, pages: ChunkPatchMask) {
        var bytes: [UInt8]?
        var patches: ChunkPatchMask = 0
        var baseLength: Int?
        try kv("read chunk", { () throws(LSMError) in
            try store.scan(from: Keys.chunk(ino, idx), to: Keys.chunk(ino, idx &+ 1)) { key, value in
                if let b = ChunkPatch.block(of: key) {
                    var c = bytes ?? []
                    bytes = nil
                    ChunkPatch.apply(value, block: b, to: &c)
                    bytes = c
                    patches |= 1 << b
                } else if key.count == FSFormat.chunkKeyLength {
                    bytes = value
                    baseLength = value.count
                }
                return true
            }
        })
        return (bytes, patches, ChunkPages.of(baseLength: baseLength, length: bytes?.count ?? 0, patches: patches))
    }

    /// Zeroes bytes [a, b) of chunk `idx`, stored as an empty base with `patches` (a hole
    /// chunk), keeping that form (for truncate, punch hole and zero range): patches inside
    /// the range go, patches it cuts are rewritten (zeros inside the range, or shortened when
    /// the range reaches their end), and the base goes with the last patch. Returns the
    /// patches (= pages) left.
    func zeroPatchedHole(_ ino: UInt64, _ idx: UInt64, patches: ChunkPatchMask, from a: Int, to b: Int,
                         _ batch: inout WriteBatch) throws(Errno) -> ChunkPatchMask {
        let bs = FSFormat.patchBlockSize
        var left = patches
        var content: [UInt8]?
        var failure: Errno?
        ChunkPatch.forEachBlock(in: patches) { p in
            guard failure == nil else { return }
            let lo = p * bs
            guard a < lo + bs && b > lo else { return }   // untouched
            if content == nil {
                do throws(Errno) { content = try loadChunk(ino, idx).bytes ?? [] } catch { failure = error; return }
            }
            let c = content!
            let hi = min(lo + bs, c.count)
            guard a < hi else { return }   // the range starts past a short patch's end
            if a <= lo && b >= hi {
                batch.delete(Keys.patch(ino, idx, p))
                left &= ~(1 << p)
                return
            }
            var v = Array(c[lo..<max(lo, hi)])
            if b >= hi {
                v.removeSubrange((a - lo)...)
            } else {
                for i in max(a, lo)..<b { v[i - lo] = 0 }
            }
            batch.put(Keys.patch(ino, idx, p), v)
        }
        if let failure { throw failure }
        if left == 0 { batch.delete(Keys.chunk(ino, idx)) }
        return left
    }

    /// Adds a put of chunk `idx` (empty: a delete) and deletes of the patch blocks in
    /// `patches` (those that may be stored) to `batch`.
    func putChunk(_ ino: UInt64, _ idx: UInt64, _ bytes: [UInt8], clearing patches: ChunkPatchMask, to batch: inout WriteBatch) {
        if bytes.isEmpty { batch.delete(Keys.chunk(ino, idx)) } else { batch.put(Keys.chunk(ino, idx), bytes) }
        ChunkPatch.forEachBlock(in: patches) { batch.delete(Keys.patch(ino, idx, $0)) }
    }

    /// Whether the image's format allows hole chunks stored as an empty base with patches
    /// (version 3; a version-2 binary would read them but its fsck/repair would not). Read
    /// from the record until it says version 3 (`emptyBaseFormat`).
    func emptyBasesAllowed() throws(Errno) -> Bool {
        try recordVersion(atLeast: FSFormat.emptyBaseVersion, known: emptyBaseFormat)
    }

    /// Whether the image's format has chunk patches (version 2; a version-1 image becomes one
    /// when its record is next written, e.g. at the first inode reservation). The record is
    /// read only until it says version 2 (`patchFormat`), not at every flush.
    func patchesAllowed() throws(Errno) -> Bool {
        try recordVersion(atLeast: 2, known: patchFormat)
    }

    /// Whether the filesystem record's version is at least `version`; `known` is set once it
    /// is (a record is never written back to an older version), so the record is read only
    /// until then.
    private func recordVersion(atLeast version: UInt16, known: borrowing Atomic<Bool>) throws(Errno) -> Bool {
        if known.load(ordering: .relaxed) { return true }
        let rec = try kv("read filesystem record", { () throws(LSMError) in try store.get(Keys.record) })
        let allowed = rec.flatMap(FSRecord.decode)?.version ?? 0 >= version
        if allowed { known.store(true, ordering: .relaxed) }
        return allowed
    }
}

extension PartialChunk {
    /// The patch blocks a flush may store instead of the whole chunk: every block the written
    /// ranges touch, if each is written whole; nil if one is written only in part.
    var wholeBlocks: ChunkPatchMask? { blocks(tailEnd: nil) }

    /// The blocks a chunk buffered over a hole (nothing stored; `baseLength` 0, `count` bytes
    /// buffered) writes, if each written range starts on a block and ends on one or at the
    /// buffered end (the file's tail block): the flush may then store them as patches over an
    /// empty base. nil otherwise.
    func holeBlocks(count: Int) -> ChunkPatchMask? { blocks(tailEnd: count) }

    /// Every block the written ranges touch, if each range starts on a block and ends on one
    /// or at `tailEnd` (a short tail block); nil otherwise.
    private func blocks(tailEnd: Int?) -> ChunkPatchMask? {
        let bs = FSFormat.patchBlockSize
        var mask: ChunkPatchMask = 0
        for r in ranges where !r.isEmpty {
            if r.lowerBound % bs != 0 || (r.upperBound % bs != 0 && r.upperBound != tailEnd) { return nil }
            for b in (r.lowerBound / bs)..<((r.upperBound + bs - 1) / bs) { mask |= 1 << b }
        }
        return mask
    }
}
