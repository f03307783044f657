import Glibc
import LSMCommon

/// A point in time with nanoseconds (like `struct timespec`).
public struct TimeSpec: Sendable, Equatable, Hashable {
    public var sec: Int64
    public var nsec: UInt32
    public init(sec: Int64, nsec: UInt32) { self.sec = sec; self.nsec = nsec }

    public static func now() -> TimeSpec {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return TimeSpec(sec: Int64(ts.tv_sec), nsec: UInt32(ts.tv_nsec))
    }
}

/// The attributes of one inode as the filesystem reports them (what `stat` shows).
public struct FileAttr: Sendable, Equatable {
    public var ino: UInt64
    public var mode: UInt32
    public var nlink: UInt32
    public var uid: UInt32
    public var gid: UInt32
    public var rdev: UInt64
    public var size: UInt64
    /// 512-byte blocks.
    public var blocks: UInt64
    public var atime: TimeSpec
    public var mtime: TimeSpec
    public var ctime: TimeSpec
    public var generation: UInt64

    public var isDirectory: Bool { mode & UInt32(S_IFMT) == UInt32(S_IFDIR) }
    public var isRegular: Bool { mode & UInt32(S_IFMT) == UInt32(S_IFREG) }
    public var isSymlink: Bool { mode & UInt32(S_IFMT) == UInt32(S_IFLNK) }
}

/// The stored inode under key 'I'+ino.
struct InodeRecord: Equatable {
    var mode: UInt32
    var uid: UInt32
    var gid: UInt32
    var size: UInt64
    /// 512-byte blocks of stored file data: 8 per 4 KiB page that a stored chunk holds
    /// (`ChunkPages`, `blocks(ofPages:)`), so sparse regions count nothing, as on a disk filesystem.
    var blocks: UInt64
    var nlink: UInt32
    var atime: TimeSpec
    var mtime: TimeSpec
    var ctime: TimeSpec
    var generation: UInt64
    var rdev: UInt64
    /// For directories, the parent directory's inode (root: itself); 0 for other types.
    var parent: UInt64
    /// Symlink target.
    var inline: [UInt8]

    var type: UInt32 { mode & UInt32(S_IFMT) }
    var isDirectory: Bool { type == UInt32(S_IFDIR) }
    var isRegular: Bool { type == UInt32(S_IFREG) }
    var isSymlink: Bool { type == UInt32(S_IFLNK) }
    /// DT_* value for dentries.
    var dtype: UInt8 { UInt8(truncatingIfNeeded: type >> 12) }

    static func new(mode: UInt32, uid: UInt32, gid: UInt32, now: TimeSpec) -> InodeRecord {
        InodeRecord(mode: mode, uid: uid, gid: gid, size: 0, blocks: 0, nlink: 1, atime: now, mtime: now,
                    ctime: now, generation: 1, rdev: 0, parent: 0, inline: [])
    }

    func attr(ino: UInt64) -> FileAttr {
        let reportedSize: UInt64 = isDirectory ? 4096 : size
        return FileAttr(ino: ino, mode: mode, nlink: nlink, uid: uid, gid: gid, rdev: rdev,
                        size: reportedSize, blocks: isDirectory ? 8 : blocks,
                        atime: atime, mtime: mtime, ctime: ctime, generation: generation)
    }

    /// Layout (little-endian), 94 bytes + inline:
    ///   version:u8 mode:u32 uid:u32 gid:u32 size:u64 blocks:u64 nlink:u32
    ///   atime.sec:i64 atime.nsec:u32 mtime.sec:i64 mtime.nsec:u32 ctime.sec:i64 ctime.nsec:u32
    ///   generation:u64 rdev:u64 parent:u64 inlineLength:u32 inline:bytes[inlineLength]
    func encode() -> [UInt8] {
        var b: [UInt8] = []
        b.reserveCapacity(InodeRecord.fixedSize + inline.count)
        b.append(FSFormat.inodeRecordVersion)
        b.appendLE(mode); b.appendLE(uid); b.appendLE(gid); b.appendLE(size); b.appendLE(blocks); b.appendLE(nlink)
        b.appendLE(atime.sec); b.appendLE(atime.nsec)  // (no array of the three: one allocation less)
        b.appendLE(mtime.sec); b.appendLE(mtime.nsec)
        b.appendLE(ctime.sec); b.appendLE(ctime.nsec)
        b.appendLE(generation); b.appendLE(rdev); b.appendLE(parent)
        b.appendLE(UInt32(inline.count))
        b.append(contentsOf: inline)
        return b
    }

    static let fixedSize = 1 + 4 * 3 + 8 + 8 + 4 + 12 * 3 + 8 * 3 + 4

    /// The 512-byte blocks a stored chunk of `length` bytes accounts for (whole 4 KiB pages).
    static func blocks(ofChunkLength length: Int) -> UInt64 { UInt64((length + 4095) / 4096) * 8 }

    /// The 512-byte blocks a chunk storing `pages` (`ChunkPages`) accounts for.
    static func blocks(ofPages pages: UInt16) -> UInt64 { UInt64(pages.nonzeroBitCount) * 8 }

    /// `blocks` after one chunk's pages changed from `old` to `new` (saturating: a damaged
    /// record must not crash the daemon; `FileSystem.check` reports the mismatch).
    static func adjust(_ blocks: UInt64, fromPages old: UInt16, toPages new: UInt16) -> UInt64 {
        let minus = self.blocks(ofPages: old), plus = self.blocks(ofPages: new)
        return blocks >= minus ? blocks - minus + plus : plus
    }

    static func decode(_ b: [UInt8]) -> InodeRecord? {
        guard b.count >= fixedSize, b[0] == FSFormat.inodeRecordVersion else { return nil }
        var o = 1
        func u32() -> UInt32 { defer { o += 4 }; return b.readLE(UInt32.self, at: o) }
        func u64() -> UInt64 { defer { o += 8 }; return b.readLE(UInt64.self, at: o) }
        func ts() -> TimeSpec {
            let s = Int64(bitPattern: u64()); let n = u32()
            return TimeSpec(sec: s, nsec: n)
        }
        let mode = u32(), uid = u32(), gid = u32(), size = u64(), blocks = u64(), nlink = u32()
        let at = ts(), mt = ts(), ct = ts()
        let gen = u64(), rdev = u64(), parent = u64()
        let n = Int(u32())
        guard n == b.count - o else { return nil }
        return InodeRecord(mode: mode, uid: uid, gid: gid, size: size, blocks: blocks, nlink: nlink, atime: at,
                           mtime: mt, ctime: ct, generation: gen, rdev: rdev, parent: parent,
                           inline: Array(b[o...]))
    }
}

extension UInt32 {
    /// Link-count decrement that stops at zero (a damaged count must not trap).
    mutating func decrementSaturating() { if self > 0 { self -= 1 } }
}
