import Glibc
import LSMStore
import Synchronization
import SystemPackage

/// The write-back buffer of one file: small writes into one chunk collect here and reach the
/// store as one put when the chunk fills, the file is closed/fsynced, another operation needs the
/// inode, or the periodic sync runs. While an entry exists the store still holds the file's
/// previous consistent state (chunk and inode record both old), so a crash loses the buffered
/// writes as a whole and never leaves a size that points past stored data.
struct DirtyChunk {
    /// Which chunk, and its complete new content (the stored chunk with the writes applied).
    var index: UInt64
    var bytes: [UInt8]
    /// The file's size, blocks and mtime (= ctime) after the buffered writes.
    var size: UInt64
    var blocks: UInt64
    var mtime: TimeSpec
}

extension DirtyChunk {
    /// Writes `data` at byte `lo` of the chunk (zero-filling a gap); the file grows to `size`
    /// if that is larger.
    mutating func apply(_ data: UnsafeRawBufferPointer, at lo: Int, size end: UInt64, mtime now: TimeSpec) {
        let hi = lo + data.count
        if bytes.count < hi {
            blocks = InodeRecord.adjust(blocks, from: bytes.count, to: hi)
            bytes += [UInt8](repeating: 0, count: hi - bytes.count)
        }
        bytes.withUnsafeMutableBytes { c in
            (c.baseAddress! + lo).copyMemory(from: data.baseAddress!, byteCount: data.count)
        }
        size = max(size, end)
        mtime = now
    }
}

/// Whether the drive is nearly full, for the write buffer: below `thresholdBytes` of free space
/// small writes go straight to the store, so ENOSPC reaches the write(2) that caused it (a
/// buffered chunk reaches the store only at release, fsync or the periodic sync, where no
/// caller can see the error). Re-measured at most every `refreshNanos`; lock-free.
final class LowSpaceProbe: Sendable {
    static let thresholdBytes: UInt64 = 32 << 20
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

    /// The buffered chunk of `ino` (stable while the caller holds the inode's stripe lock).
    func dirtyEntry(_ ino: UInt64) -> DirtyChunk? {
        dirty.withLock { $0[ino] }
    }

    /// Applies a buffered chunk's size and times to a record loaded from the store.
    func overlay(_ d: DirtyChunk, _ rec: inout InodeRecord) {
        rec.size = d.size
        rec.blocks = d.blocks
        rec.mtime = d.mtime
        if d.mtime > rec.ctime { rec.ctime = d.mtime }
    }

    /// Writes `ino`'s buffered chunk and inode record in one batch (stripe lock held).
    func flushDirtyLocked(_ ino: UInt64) throws(Errno) {
        guard let d = dirtyEntry(ino) else { return }
        let rec = try loadInode(ino)  // with the buffered size and times
        var batch = WriteBatch()
        batch.put(Keys.chunk(ino, d.index), d.bytes)
        batch.put(Keys.inode(ino), rec.encode())
        try write(batch, "flush buffered chunk of \(ino)")
        discardDirty(ino)
    }

    func flushDirty(_ ino: UInt64) throws(Errno) {
        try withInodeLock(ino) { () throws(Errno) in try flushDirtyLocked(ino) }
    }

    /// Flushes every buffered chunk (before a store sync).
    func flushAllDirty() throws(Errno) {
        for ino in dirty.withLock({ Array($0.keys) }) { try flushDirty(ino) }
    }

    func discardDirty(_ ino: UInt64) {
        _ = dirty.withLock { $0.removeValue(forKey: ino) }
    }

    /// Number of files with buffered writes (stats).
    var dirtyFileCount: Int { dirty.withLock { $0.count } }
}

extension TimeSpec: Comparable {
    public static func < (a: TimeSpec, b: TimeSpec) -> Bool {
        a.sec < b.sec || (a.sec == b.sec && a.nsec < b.nsec)
    }
}
