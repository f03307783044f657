import Glibc
import LSMStore

extension FileSystem {
    /// Repairs the namespace held by `store` (offline, read-write), as e2fsck's passes do, and
    /// returns one line per fix. Run `check` again afterwards to see what is left.
    ///
    /// In order: reclaims orphans (unlinked-while-open inodes left by a crash); drops dentries
    /// that are undecodable, whose parent is not a directory or whose child is missing; fixes a
    /// dentry's type from its inode; keeps one dentry per directory (the first found) and sets
    /// its parent field; drops chunks and xattrs of missing inodes and orphan markers of
    /// missing inodes; reconnects unreachable inodes under `/lost+found` as `#INO`; recomputes
    /// every link count, file block count and (if chunks pass it) file size; raises the
    /// inode allocation limit above every inode. One WriteBatch.
    public static func repair(store: LSMStore) throws -> [String] {
        try reclaimOrphans(store)
        var fixed: [String] = []
        var batch = WriteBatch()

        guard let recBytes = try store.get(Keys.record), var record = FSRecord.decode(recBytes) else {
            throw FSError("no filesystem record: not an lsmfs filesystem (cannot repair)", errno: EINVAL)
        }
        var inodes: [UInt64: InodeRecord] = [:]
        var badInodes: [UInt64] = []
        var dentries: [(parent: UInt64, name: [UInt8], d: DentryRecord?)] = []
        var chunkEnds: [UInt64: UInt64] = [:]
        var chunkBlocks: [UInt64: UInt64] = [:]
        var orphans: Set<UInt64> = []
        var xattrInos: Set<UInt64> = []
        var strayKeys: [[UInt8]] = []
        // A chunk's length counts its patches (docs/format/keys.md); patches whose chunk is
        // gone are deleted.
        var chunkFolder = ChunkLengthFolder()
        func addChunk(_ c: StoredChunkLength) {
            guard c.hasBase else {
                ChunkPatch.forEachBlock(in: c.patches) { strayKeys.append(Keys.patch(c.ino, c.index, $0)) }
                return
            }
            if c.isEmptyAlone {   // an empty base is a hole chunk only with patches
                strayKeys.append(Keys.chunk(c.ino, c.index))
                return
            }
            c.tally(ends: &chunkEnds, blocks: &chunkBlocks)
        }
        try store.scan(from: [], to: nil) { key, value in
            guard let p = key.first else { return true }
            switch p {
            case FSFormat.recordKeyPrefix where key.count == 1: break
            case FSFormat.inodePrefix where key.count == 9:
                let ino = Keys.ino(of: key)!
                if let r = InodeRecord.decode(value) { inodes[ino] = r } else { badInodes.append(ino) }
            case FSFormat.dentryPrefix where key.count > 9:
                dentries.append((Keys.ino(of: key)!, Array(key[9...]), DentryRecord.decode(value)))
            case FSFormat.chunkPrefix where key.count == FSFormat.chunkKeyLength || key.count == FSFormat.patchKeyLength:
                if !ChunkPatch.isWellFormed(key: key, size: value.count) {
                    strayKeys.append(key)
                } else if let c = chunkFolder.add(key: key, size: value.count) {
                    addChunk(c)
                }
            case FSFormat.orphanPrefix where key.count == 9: orphans.insert(Keys.ino(of: key)!)
            case FSFormat.xattrPrefix where key.count > 9: xattrInos.insert(Keys.ino(of: key)!)
            default: strayKeys.append(key)
            }
            return true
        }
        if let c = chunkFolder.finish() { addChunk(c) }
        for key in strayKeys { batch.delete(key); fixed.append("deleted a key outside the schema or a malformed chunk") }
        for ino in badInodes {
            batch.delete(Keys.inode(ino))
            fixed.append("inode \(ino): undecodable record deleted")
        }
        let now = TimeSpec.now()
        if inodes[FSFormat.rootIno]?.isDirectory != true {
            var root = InodeRecord.new(mode: UInt32(S_IFDIR) | 0o755, uid: 0, gid: 0, now: now)
            root.parent = FSFormat.rootIno
            inodes[FSFormat.rootIno] = root
            fixed.append("root directory recreated")
        }

        // Dentries: keep those that point from a directory to an existing inode.
        var links: [UInt64: [(parent: UInt64, name: [UInt8])]] = [:]
        for (parent, name, d) in dentries {
            let label = "dentry \(parent)/\(String(decoding: name, as: UTF8.self))"
            guard let d, inodes[parent]?.isDirectory == true, let child = inodes[d.ino],
                  name.count <= FSFormat.nameMax, !name.contains(0x2F), !name.contains(0),
                  d.ino != FSFormat.rootIno else {
                batch.delete(Keys.dentry(parent, name))
                fixed.append("\(label): dangling, deleted")
                continue
            }
            if child.isDirectory, let first = links[d.ino]?.first {
                batch.delete(Keys.dentry(parent, name))
                fixed.append("\(label): second link to directory \(d.ino) (first in \(first.parent)), deleted")
                continue
            }
            if child.dtype != d.type {
                batch.put(Keys.dentry(parent, name), DentryRecord(ino: d.ino, type: child.dtype).encode())
                fixed.append("\(label): type fixed")
            }
            links[d.ino, default: []].append((parent, name))
        }

        // Reconnect unreachable inodes (not root, not a pending orphan) under /lost+found.
        let unreachable = inodes.keys.filter { $0 != FSFormat.rootIno && links[$0] == nil && !orphans.contains($0) }.sorted()
        if !unreachable.isEmpty {
            let lfName = Array("lost+found".utf8)
            var lf: UInt64
            if let l = links.first(where: { $0.value.contains { $0.parent == FSFormat.rootIno && $0.name == lfName } })?.key,
               inodes[l]?.isDirectory == true {
                lf = l
            } else {
                lf = max(record.inoLimit, (inodes.keys.max() ?? 0) + 1)
                record.inoLimit = lf + 1
                var dir = InodeRecord.new(mode: UInt32(S_IFDIR) | 0o700, uid: 0, gid: 0, now: now)
                dir.parent = FSFormat.rootIno
                inodes[lf] = dir
                links[lf] = [(FSFormat.rootIno, lfName)]
                batch.put(Keys.dentry(FSFormat.rootIno, lfName), DentryRecord(ino: lf, type: dir.dtype).encode())
                fixed.append("created /lost+found (inode \(lf))")
            }
            for ino in unreachable {
                let name = Array("#\(ino)".utf8)
                batch.put(Keys.dentry(lf, name), DentryRecord(ino: ino, type: inodes[ino]!.dtype).encode())
                links[ino] = [(lf, name)]
                fixed.append("inode \(ino): unreachable, reconnected as /lost+found/#\(ino)")
            }
        }

        // Orphan markers, chunks and xattrs of missing inodes.
        for ino in orphans where inodes[ino] == nil {
            batch.delete(Keys.orphan(ino)); fixed.append("orphan marker of missing inode \(ino) deleted")
        }
        for ino in Set(chunkEnds.keys).union(xattrInos) where inodes[ino] == nil {
            batch.deleteRange(Keys.chunk(ino, 0), Keys.chunksEnd(ino))
            batch.deleteRange(Keys.xattrStart(ino), Keys.xattrEnd(ino))
            fixed.append("chunks/xattrs of missing inode \(ino) deleted")
        }

        // Link counts, parents, sizes and blocks.
        var subdirs: [UInt64: UInt32] = [:]
        for (ino, ls) in links where inodes[ino]?.isDirectory == true { subdirs[ls[0].parent, default: 0] += 1 }
        for ino in inodes.keys.sorted() {
            var r = inodes[ino]!
            let before = r
            if r.isDirectory {
                r.nlink = 2 + (subdirs[ino] ?? 0)
                r.parent = ino == FSFormat.rootIno ? FSFormat.rootIno : links[ino]![0].parent
            } else if !orphans.contains(ino) {
                r.nlink = UInt32(links[ino]?.count ?? 0)
            }
            if r.isRegular {
                if let end = chunkEnds[ino], end > r.size { r.size = end }
                r.blocks = chunkBlocks[ino] ?? 0
            } else if chunkEnds[ino] != nil {
                batch.deleteRange(Keys.chunk(ino, 0), Keys.chunksEnd(ino))
                fixed.append("inode \(ino): chunks on a non-regular file deleted")
            }
            if r.isSymlink && r.size != UInt64(r.inline.count) { r.size = UInt64(r.inline.count) }
            if r != before {
                batch.put(Keys.inode(ino), r.encode())
                fixed.append("inode \(ino): attributes fixed (nlink \(before.nlink)→\(r.nlink), size \(before.size)→\(r.size), blocks \(before.blocks)→\(r.blocks))")
            }
        }
        if let maxIno = inodes.keys.max(), maxIno >= record.inoLimit { record.inoLimit = maxIno + 1 }
        if FSRecord.decode(recBytes) != record {
            batch.put(Keys.record, record.encode())
            fixed.append("inode allocation limit raised to \(record.inoLimit)")
        }
        if !fixed.isEmpty { try store.write(batch, sync: true) }
        return fixed
    }
}
