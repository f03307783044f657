import Glibc
import Synchronization

/// A fixed-size block of memory of a write buffer. Immutable below the buffer's end once
/// written, so a queued device write (`WriteBehind`) can read its bytes while the writer keeps
/// appending after them; freed when the last buffer or queued write holding it lets go.
final class BufferPage: @unchecked Sendable {
    let base: UnsafeMutableRawPointer
    let capacity: Int

    init(capacity: Int) {
        self.capacity = capacity
        base = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 4096)
    }
    deinit { base.deallocate() }

    /// The bytes `[offset, offset + count)` of the page.
    func bytes(_ offset: Int, _ count: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: base + offset, count: count)
    }
}

/// Pages given back by the write buffers, for reuse: a freed 256 KiB block goes back to the
/// system, and touching a fresh one costs a page fault per 4 KiB (measured: 11% of a
/// large-value load). Holds at most `limit` pages; shared by the buffers of one KVIMR.
final class PagePool: Sendable {
    let pageBytes: Int
    let limit: Int
    private let free = Mutex<[BufferPage]>([])

    init(pageBytes: Int, limit: Int) {
        self.pageBytes = pageBytes
        self.limit = limit
    }

    func take() -> BufferPage {
        free.withLock { $0.popLast() } ?? BufferPage(capacity: pageBytes)
    }

    /// Keeps `pages` that nothing else holds any more (up to the limit).
    func recycle(_ pages: inout [BufferPage]) {
        free.withLock { f in
            for i in pages.indices where f.count < limit && isKnownUniquelyReferenced(&pages[i]) {
                f.append(pages[i])
            }
        }
    }

    /// Memory the pool holds.
    var memoryBytes: UInt64 { UInt64(free.withLock { $0.count } * pageBytes) }
}

/// The buffered tail of one file: bytes `[start, end)` of the file, kept in memory in pages.
///
/// Invariant (with the file's record `rec`): `start <= rec.size <= end`. Bytes below `start`
/// are on tracks; bytes in `[start, rec.size)` are on tracks, or queued for them
/// (`WriteBehind`), *and* still buffered (the partial last sector, so a later write-out can
/// rewrite that sector whole; queued chunks until their write completes, so reads find them
/// here); bytes in `[rec.size, end)` exist only here.
///
/// Page `i` holds file bytes `[origin + i·pageBytes, origin + (i+1)·pageBytes)`; `origin` is
/// sector-aligned and `pageBytes` a multiple of the sector size, so a sector never straddles
/// two pages and a write-out chunk splits into sector-aligned pieces, one per page, written
/// straight from the pages (no staging copy, no shifting of the bytes left behind).
struct FileBuffer: Sendable {
    /// 256 KiB (or one sector if larger): a track is written in about ten cache-sized pieces.
    static func pageBytes(sectorSize: Int) -> Int { max(256 << 10, sectorSize) }

    private(set) var start: UInt64
    private(set) var end: UInt64
    private(set) var origin: UInt64
    private(set) var pages: [BufferPage] = []
    let pool: PagePool
    var pageBytes: Int { pool.pageBytes }

    init(start: UInt64, sectorSize: Int, pool: PagePool) {
        precondition(pool.pageBytes % sectorSize == 0)
        self.start = start
        self.end = start
        origin = start / UInt64(sectorSize) * UInt64(sectorSize)
        self.pool = pool
    }

    /// Memory the buffer holds (its pages, not just its bytes).
    var memoryBytes: UInt64 { UInt64(pages.count * pageBytes) }

    mutating func append(_ p: UnsafeRawBufferPointer) {
        var done = 0
        while done < p.count {
            let (page, offset) = locate(end)
            let n = min(p.count - done, pageBytes - offset)
            pages[page].base.advanced(by: offset).copyMemory(from: p.baseAddress! + done, byteCount: n)
            done += n
            end += UInt64(n)
        }
    }

    /// The page holding file byte `offset` (allocated if it is the next one) and the offset
    /// inside it.
    private mutating func locate(_ offset: UInt64) -> (Int, Int) {
        let rel = Int(offset - origin)
        let page = rel / pageBytes
        while pages.count <= page { pages.append(pool.take()) }
        return (page, rel % pageBytes)
    }

    /// Forgets the bytes below `offset` (no-op if `offset <= start`); whole pages below it go
    /// (freed once no queued write holds them).
    mutating func dropPrefix(upTo offset: UInt64) {
        guard offset > start else { return }
        start = min(offset, end)
        let whole = min(Int((start - origin) / UInt64(pageBytes)), pages.count)
        guard whole > 0 else { return }
        var dropped = Array(pages[0..<whole])
        pages.removeFirst(whole)
        origin += UInt64(whole * pageBytes)
        pool.recycle(&dropped)
    }

    /// Puts `prefix` (the bytes just below `start`, within its sector) back in front.
    mutating func prepend(_ prefix: [UInt8]) {
        precondition(UInt64(prefix.count) <= start - origin, "prepend below the buffer's first sector")
        let at = start - UInt64(prefix.count)
        if pages.isEmpty { pages.append(pool.take()) }
        prefix.withUnsafeBytes { src in
            pages[0].base.advanced(by: Int(at - origin)).copyMemory(from: src.baseAddress!, byteCount: src.count)
        }
        start = at
    }

    /// Copies bytes `[offset, offset + dst.count)` (all inside the buffer) into `dst`.
    func copy(from offset: UInt64, into dst: UnsafeMutableRawBufferPointer) {
        precondition(offset >= start && offset + UInt64(dst.count) <= end)
        forEachPiece(from: offset, count: dst.count) { done, page, at, n in
            (dst.baseAddress! + done).copyMemory(from: page.base + at, byteCount: n)
        }
    }

    /// Calls `body(doneSoFar, page, offsetInPage, count)` for each page piece of the bytes
    /// `[offset, offset + count)` (all inside the buffer), in order.
    func forEachPiece(from offset: UInt64, count: Int, _ body: (Int, BufferPage, Int, Int) -> Void) {
        var done = 0
        while done < count {
            let rel = Int(offset - origin) + done
            let n = min(count - done, pageBytes - rel % pageBytes)
            body(done, pages[rel / pageBytes], rel % pageBytes, n)
            done += n
        }
    }
}
