import Glibc
import LSMStore

/// What `FileSystem.check` found.
public struct FSCheckReport: Sendable {
    /// Inconsistencies, one line each (empty = clean).
    public var errors: [String] = []
    /// Unlinked-while-open inodes left by a crash; the next read-write mount reclaims them.
    public var pendingOrphans = 0
    public var directories = 0
    public var files = 0
    public var symlinks = 0
    public var otherNodes = 0
    public var fileBytes: UInt64 = 0
    public var chunks = 0
    public var xattrs = 0
    public var isClean: Bool { errors.isEmpty }
}

extension FileSystem {
    /// Checks the filesystem held by `store` (offline, or on a quiescent store): the record,
    /// every dentry against its inodes, link counts, directory parents, chunks against file
    /// sizes, orphan markers and inode numbers against the allocation limit. One scan.
    public static func check(store: LSMStore, maxErrors: Int = 100) throws -> FSCheckReport {
        var report = FSCheckReport()
        func fail(_ s: String) { if report.errors.count < maxErrors { report.errors.append(s) } }

        var record: FSRecord?
        var inodes: [UInt64: InodeRecord] = [:]
        var dentries: [(parent: UInt64, name: [UInt8], d: DentryRecord)] = []
        var chunkEnds: [UInt64: UInt64] = [:]  // ino -> max byte end of its chunks
        var chunkBlocks: [UInt64: UInt64] = [:]  // ino -> blocks its chunks account for
        var chunkFolder = ChunkLengthFolder()
        func addChunk(_ c: StoredChunkLength) {
            if !c.hasBase { fail("inode \(c.ino) chunk \(c.index): patches without the chunk") }
            if c.isEmptyAlone { fail("inode \(c.ino) chunk \(c.index): empty chunk without patches") }
            if c.length > FSFormat.chunkSize { fail("inode \(c.ino) chunk \(c.index): \(c.length) bytes") }
            c.tally(ends: &chunkEnds, blocks: &chunkBlocks)
            report.chunks += 1
        }
        var orphans: Set<UInt64> = []
        var xattrInos: Set<UInt64> = []
        try store.scan(from: [], to: nil) { key, value in
            guard let p = key.first else { fail("empty key"); return true }
            switch p {
            case FSFormat.recordKeyPrefix where key.count == 1:
                record = FSRecord.decode(value)
                if record == nil { fail("filesystem record undecodable") }
            case FSFormat.inodePrefix where key.count == 9:
                let ino = Keys.ino(of: key)!
                if let rec = InodeRecord.decode(value) { inodes[ino] = rec } else { fail("inode \(ino): undecodable record") }
            case FSFormat.dentryPrefix where key.count > 9:
                let parent = Keys.ino(of: key)!
                if let d = DentryRecord.decode(value) {
                    dentries.append((parent, Array(key[9...]), d))
                } else { fail("dentry in \(parent): undecodable") }
            case FSFormat.chunkPrefix where key.count == FSFormat.chunkKeyLength || key.count == FSFormat.patchKeyLength:
                let ino = Keys.ino(of: key)!
                let idx = key.readBE(UInt64.self, at: 9)
                if !ChunkPatch.isWellFormed(key: key, size: value.count) {
                    let what = ChunkPatch.block(of: key).map { " patch \($0)" } ?? ""
                    fail("inode \(ino) chunk \(idx)\(what): \(value.count) bytes")
                }
                // A chunk's length and blocks count its patches with it (docs/format/keys.md).
                if let c = chunkFolder.add(key: key, size: value.count) { addChunk(c) }
            case FSFormat.orphanPrefix where key.count == 9:
                orphans.insert(Keys.ino(of: key)!)
            case FSFormat.xattrPrefix where key.count > 9:
                let ino = Keys.ino(of: key)!
                xattrInos.insert(ino)
                let name = Array(key[9...])
                if name.count > FSFormat.xattrNameMax || value.count > FSFormat.xattrValueMax
                    || !FileSystem.xattrNamespaces.contains(where: { name.starts(with: $0) }) {
                    fail("inode \(ino): bad xattr \(String(decoding: name.prefix(64), as: UTF8.self)) (\(value.count) bytes)")
                }
                report.xattrs += 1
            default:
                fail("unknown key \(key.prefix(17).map { String($0, radix: 16) }.joined(separator: " "))")
            }
            return true
        }
        if let c = chunkFolder.finish() { addChunk(c) }

        guard let record else {
            fail("no filesystem record: not an lsmfs filesystem")
            return report
        }
        guard inodes[FSFormat.rootIno]?.isDirectory == true else {
            fail("root directory (inode 1) missing")
            return report
        }
        var links: [UInt64: Int] = [:]
        var subdirs: [UInt64: Int] = [:]
        for (parent, name, d) in dentries {
            let where_ = "dentry \(parent)/\(String(decoding: name, as: UTF8.self))"
            if name.count > FSFormat.nameMax || name.contains(0x2F) || name.contains(0) { fail("\(where_): bad name") }
            guard let dir = inodes[parent], dir.isDirectory else { fail("\(where_): parent is not a directory"); continue }
            guard let child = inodes[d.ino] else { fail("\(where_): inode \(d.ino) missing"); continue }
            if child.dtype != d.type { fail("\(where_): type \(d.type) but inode \(d.ino) has \(child.dtype)") }
            links[d.ino, default: 0] += 1
            if child.isDirectory {
                subdirs[parent, default: 0] += 1
                if child.parent != parent { fail("directory \(d.ino): parent field \(child.parent), dentry in \(parent)") }
            }
        }
        for (ino, rec) in inodes {
            if ino >= record.inoLimit { fail("inode \(ino) at or above the allocation limit \(record.inoLimit)") }
            let n = links[ino] ?? 0
            if orphans.contains(ino) {
                if n != 0 || rec.nlink != 0 { fail("inode \(ino): orphan marker but \(n) links (nlink \(rec.nlink))") }
                report.pendingOrphans += 1
            } else if rec.isDirectory {
                let expectedLinks = ino == FSFormat.rootIno ? 0 : 1
                if n != expectedLinks { fail("directory \(ino): \(n) dentries") }
                let nl = 2 + UInt32(subdirs[ino] ?? 0)
                if rec.nlink != nl { fail("directory \(ino): nlink \(rec.nlink), expected \(nl)") }
            } else if n == 0 {
                fail("inode \(ino): unreachable (no dentry, no orphan marker)")
            } else if rec.nlink != UInt32(n) {
                fail("inode \(ino): nlink \(rec.nlink) but \(n) dentries")
            }
            if let end = chunkEnds[ino] {
                if !rec.isRegular { fail("inode \(ino): chunks on a non-regular file") }
                if end > rec.size { fail("inode \(ino): chunk bytes up to \(end) past size \(rec.size)") }
            }
            if rec.isRegular && rec.blocks != chunkBlocks[ino] ?? 0 {
                fail("inode \(ino): blocks \(rec.blocks), its chunks hold \(chunkBlocks[ino] ?? 0)")
            }
            if rec.isDirectory { report.directories += 1 } else if rec.isRegular {
                report.files += 1
                report.fileBytes &+= rec.size
            } else if rec.isSymlink {
                report.symlinks += 1
                if rec.size != UInt64(rec.inline.count) { fail("symlink \(ino): size \(rec.size), target \(rec.inline.count) bytes") }
            } else { report.otherNodes += 1 }
        }
        for ino in chunkEnds.keys where inodes[ino] == nil { fail("chunks of missing inode \(ino)") }
        for ino in orphans where inodes[ino] == nil { fail("orphan marker of missing inode \(ino)") }
        for ino in xattrInos where inodes[ino] == nil { fail("xattrs of missing inode \(ino)") }
        return report
    }
}
