import LSMCommon

/// Every constant of the filesystem's on-store format (docs/format/keys.md), in one place.
///
/// Key schema (all integers big-endian so keys sort numerically):
///
///     'F'                               -> filesystem record (FSRecord)
///     'I' ino:u64                       -> inode attributes (InodeRecord)
///     'D' parent:u64 name:bytes         -> dentry: child ino + type (DentryRecord)
///     'B' ino:u64 chunk:u64             -> bytes of one file chunk (1..chunkSize bytes; 0 with
///                                          patches: a hole chunk, format version 3)
///     'B' ino:u64 chunk:u64 block:u8    -> patch: new bytes of one 4 KiB block of that chunk
///                                          (1..patchBlockSize bytes; format version 2)
///     'X' ino:u64 name:bytes            -> xattr value (name with its namespace, e.g. user.x)
///     'O' ino:u64                       -> orphan marker (empty value)
public enum FSFormat {
    public static let recordKeyPrefix: UInt8 = 0x46   // 'F'
    public static let inodePrefix: UInt8 = 0x49       // 'I'
    public static let dentryPrefix: UInt8 = 0x44      // 'D'
    public static let chunkPrefix: UInt8 = 0x42       // 'B'
    public static let xattrPrefix: UInt8 = 0x58       // 'X'
    public static let orphanPrefix: UInt8 = 0x4F      // 'O'

    /// "LSMFS\0" as a little-endian u64 in the filesystem record.
    public static let magic: UInt64 = 0x0000_5346_4D53_4C
    /// Version 2 adds chunk patches (the 18-byte `B` keys). Version-1 images mount as they
    /// are (they hold no patches) and become version 2 when the record is next written; a
    /// version-1 binary refuses version 2 instead of reading chunks without their patches.
    /// Version 3 adds hole chunks: an empty chunk value with patches (a block-aligned write
    /// into a hole stores and counts only its blocks); older images are upgraded the same way,
    /// and a version-2 binary refuses version 3 (its fsck would flag the empty value, and its
    /// repair delete it with the patches).
    public static let formatVersion: UInt16 = 3
    /// The first version whose chunks may be empty values with patches (hole chunks).
    public static let emptyBaseVersion: UInt16 = 3
    public static let oldestFormatVersion: UInt16 = 1
    public static let inodeRecordVersion: UInt8 = 1

    /// File bytes are stored in chunks of this size. 64 KiB: a partial write rewrites at most
    /// 64 KiB (bounded read-modify-write), a 1 MiB FUSE write is 16 puts, a GiB is 16 Ki keys,
    /// and a full chunk is large enough to go through the WiscKey value log (once the engine has
    /// one) instead of riding through every compaction of the tree.
    public static let chunkSize = 64 * 1024

    /// Chunk patches (docs/format/keys.md, "Chunk patches"): a small write into a stored chunk
    /// is stored as whole 4 KiB blocks under `'B' ino chunk block` instead of a rewrite of the
    /// 64 KiB chunk; readers overlay them on the chunk. A chunk carries at most
    /// `maxPatchesPerChunk` of them: a flush that would pass it (or that writes a block only in
    /// part) folds them into a rewritten chunk and deletes them.
    public static let patchBlockSize = 4096
    public static let patchesPerChunk = chunkSize / patchBlockSize
    public static let maxPatchesPerChunk = 8
    /// Length of a chunk key, and of a patch key (a chunk key and one block byte).
    public static let chunkKeyLength = 17
    public static let patchKeyLength = 18

    public static let rootIno: UInt64 = 1
    /// The stats pseudo-files `/.lsmfs-stats` and `/.lsmfs-stats.json` (never stored).
    public static let statsTextIno: UInt64 = 2
    public static let statsJSONIno: UInt64 = 3
    /// Inodes 1..<firstIno are reserved; allocation starts here.
    public static let firstIno: UInt64 = 16
    /// The filesystem record reserves inode numbers in blocks of this many.
    public static let inoReserveBlock: UInt64 = 1024

    public static let statsTextName: [UInt8] = Array(".lsmfs-stats".utf8)
    public static let statsJSONName: [UInt8] = Array(".lsmfs-stats.json".utf8)

    public static let nameMax = 255
    /// Extended attributes: longest name (with its namespace prefix) and value, as on ext4/XFS.
    public static let xattrNameMax = 255
    public static let xattrValueMax = 65536
    /// setxattr(2) flags (<sys/xattr.h>).
    public static let xattrCreate: Int32 = 1
    public static let xattrReplace: Int32 = 2
    public static let symlinkMax = 4095
    /// Largest file size (chunk index must fit the key; also off_t).
    public static let maxFileSize: UInt64 = UInt64(Int64.max)
}

/// Key builders (big-endian integers).
enum Keys {
    static let record: [UInt8] = [FSFormat.recordKeyPrefix]

    static func inode(_ ino: UInt64) -> [UInt8] { prefixed(FSFormat.inodePrefix, ino) }
    static func orphan(_ ino: UInt64) -> [UInt8] { prefixed(FSFormat.orphanPrefix, ino) }
    static func dentry(_ parent: UInt64, _ name: [UInt8]) -> [UInt8] {
        var k = prefixed(FSFormat.dentryPrefix, parent)
        k.append(contentsOf: name)
        return k
    }
    /// All dentries of `parent`: [dirStart, dirEnd).
    static func dirStart(_ parent: UInt64) -> [UInt8] { prefixed(FSFormat.dentryPrefix, parent) }
    static func dirEnd(_ parent: UInt64) -> [UInt8] { prefixed(FSFormat.dentryPrefix, parent &+ 1) }

    static func chunk(_ ino: UInt64, _ index: UInt64) -> [UInt8] {
        var k = prefixed(FSFormat.chunkPrefix, ino)
        k.appendBE(index)
        return k
    }
    /// Patch of 4 KiB block `block` of chunk `index` (sorts after the chunk, before the next).
    static func patch(_ ino: UInt64, _ index: UInt64, _ block: Int) -> [UInt8] {
        var k = chunk(ino, index)
        k.append(UInt8(block))
        return k
    }
    /// Every chunk of `ino` (and their patches): [chunk(ino, 0), chunksEnd(ino)).
    static func chunksEnd(_ ino: UInt64) -> [UInt8] { prefixed(FSFormat.chunkPrefix, ino &+ 1) }
    static func xattr(_ ino: UInt64, _ name: [UInt8]) -> [UInt8] {
        var k = prefixed(FSFormat.xattrPrefix, ino)
        k.append(contentsOf: name)
        return k
    }
    static func xattrStart(_ ino: UInt64) -> [UInt8] { prefixed(FSFormat.xattrPrefix, ino) }
    static func xattrEnd(_ ino: UInt64) -> [UInt8] { prefixed(FSFormat.xattrPrefix, ino &+ 1) }

    static let orphansStart: [UInt8] = [FSFormat.orphanPrefix]
    static let orphansEnd: [UInt8] = [FSFormat.orphanPrefix + 1]

    /// The u64 after the one-byte prefix (inode, orphan, dentry and chunk keys).
    static func ino(of key: [UInt8]) -> UInt64? {
        key.count >= 9 ? key.readBE(UInt64.self, at: 1) : nil
    }

    private static func prefixed(_ p: UInt8, _ v: UInt64) -> [UInt8] {
        var k: [UInt8] = []
        k.reserveCapacity(17)
        k.append(p)
        k.appendBE(v)
        return k
    }
}

/// The filesystem record under key 'F'.
struct FSRecord: Equatable {
    var chunkSize: UInt32
    /// Inode numbers below this may have been used; allocation resumes here after a restart.
    var inoLimit: UInt64

    /// The format version the record was read with (`encode` always writes the current one).
    var version: UInt16 = FSFormat.formatVersion

    /// Layout (little-endian): magic:u64 version:u16 chunkSize:u32 inoLimit:u64   (22 bytes)
    func encode() -> [UInt8] {
        var b: [UInt8] = []
        b.reserveCapacity(22)
        b.appendLE(FSFormat.magic)
        b.appendLE(FSFormat.formatVersion)
        b.appendLE(chunkSize)
        b.appendLE(inoLimit)
        return b
    }

    static func decode(_ b: [UInt8]) -> FSRecord? {
        guard b.count >= 22, b.readLE(UInt64.self, at: 0) == FSFormat.magic,
              (FSFormat.oldestFormatVersion...FSFormat.formatVersion).contains(b.readLE(UInt16.self, at: 8)) else { return nil }
        return FSRecord(chunkSize: b.readLE(UInt32.self, at: 10), inoLimit: b.readLE(UInt64.self, at: 14),
                        version: b.readLE(UInt16.self, at: 8))
    }
}

/// A dentry value: the child inode and its file type (the S_IFMT bits >> 12, as DT_*).
struct DentryRecord: Equatable {
    var ino: UInt64
    var type: UInt8

    /// Layout (little-endian): ino:u64 type:u8   (9 bytes)
    func encode() -> [UInt8] {
        var b: [UInt8] = []
        b.reserveCapacity(9)
        b.appendLE(ino)
        b.append(type)
        return b
    }

    static func decode(_ b: [UInt8]) -> DentryRecord? {
        guard b.count >= 9 else { return nil }
        return DentryRecord(ino: b.readLE(UInt64.self, at: 0), type: b[8])
    }
}
