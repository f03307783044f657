import Glibc
import KVIMR
import LSMCommon
import LSMFS
import LSMStore
import SystemPackage
import Testing

/// Hole chunks (docs/format/keys.md, format version 3): block-aligned writes into a chunk
/// where nothing is stored are kept as an empty chunk value with the written blocks as
/// patches, so st_blocks (and du) count only the 4 KiB pages written, as on ext4; every
/// reader, truncate, punch hole, unlink, fsck and a crash see the same bytes and blocks.
@Suite struct HoleChunkTests {
    let cs = FSFormat.chunkSize
    let bs = FSFormat.patchBlockSize

    /// The `B` keys of `ino` with their value sizes.
    func chunkKeys(_ r: Rig, _ ino: UInt64) throws -> [(key: [UInt8], size: Int)] {
        var out: [(key: [UInt8], size: Int)] = []
        var start: [UInt8] = [FSFormat.chunkPrefix]
        start.appendBE(ino)
        var end: [UInt8] = [FSFormat.chunkPrefix]
        end.appendBE(ino + 1)
        try r.store.scan(from: start, to: end) { k, v in out.append((k, v.count)); return true }
        return out
    }

    /// Writes through one handle and fsyncs (the buffer reaches the store).
    func put(_ fs: FileSystem, _ ino: UInt64, _ model: inout [UInt8], _ off: Int, _ data: [UInt8]) throws {
        let fh = try fs.open(ino, flags: O_RDWR).fh
        _ = try fs.writeAll(fh, UInt64(off), data)
        try fs.fsync(fh, datasync: false)
        try fs.release(fh)
        model.zeroExtend(off + data.count)
        model.replaceSubrange(off..<off + data.count, with: data)
    }

    /// Same bytes as the model, and fsck's recount of blocks agrees with the inode's.
    func expectConsistent(_ r: Rig, _ ino: UInt64, _ model: [UInt8], _ what: String) throws {
        #expect(try r.fs.readAll(ino) == model, "\(what): content")
        #expect(try r.fs.getattr(ino).size == UInt64(model.count), "\(what): size")
        let report = try FileSystem.check(store: r.store)
        #expect(report.errors == [], "\(what)")
    }

    @Test func oneBlockAtTheEndOfANewChunkCountsOnePage() throws {
        var r = try Rig.fresh()
        var model: [UInt8] = []
        let ino = try r.fs.createFile(root, "f")
        try put(r.fs, ino, &model, 15 * bs, pattern(bs, seed: 1))   // dd bs=4k seek=15 count=1
        #expect(try r.fs.getattr(ino).blocks == 8)
        let keys = try chunkKeys(r, ino)
        #expect(keys.map(\.size) == [0, bs], "an empty base and one patch")
        try expectConsistent(r, ino, model, "one block")
        r = try r.remount()
        #expect(try r.fs.getattr(ino).blocks == 8)
        try expectConsistent(r, ino, model, "after remount")
        // unlink of a one-chunk file leaves no patch behind
        try r.fs.unlink(root, n("f"))
        #expect(try chunkKeys(r, ino).isEmpty)
        #expect(try FileSystem.check(store: r.store).errors == [])
    }

    @Test func seekDataAndHoleSeeTheBlocksOfAHoleChunk() throws {
        let r = try Rig.fresh()
        var model: [UInt8] = []
        let ino = try r.fs.createFile(root, "f")
        for b in [3, 4, 7] { try put(r.fs, ino, &model, b * bs, pattern(bs, seed: UInt64(b))) }
        try put(r.fs, ino, &model, cs + 15 * bs, pattern(bs, seed: 9))
        try expectConsistent(r, ino, model, "written")
        let fh = try r.fs.open(ino, flags: O_RDONLY).fh
        defer { try? r.fs.release(fh) }
        func seek(_ off: Int, _ whence: Int32) throws -> Int { Int(try r.fs.seekDataOrHole(fh, offset: UInt64(off), whence: whence)) }
        #expect(try seek(0, SeekWhence.data) == 3 * bs)
        #expect(try seek(0, SeekWhence.hole) == 0)
        #expect(try seek(3 * bs, SeekWhence.hole) == 5 * bs)
        #expect(try seek(5 * bs, SeekWhence.data) == 7 * bs)
        #expect(try seek(7 * bs + 5, SeekWhence.hole) == 8 * bs)
        #expect(try seek(8 * bs, SeekWhence.data) == cs + 15 * bs)
        #expect(try seek(cs + 15 * bs, SeekWhence.hole) == 2 * cs)
    }

    @Test func tailBlockOfANewFileIsAShortPatch() throws {
        let r = try Rig.fresh()
        var model: [UInt8] = []
        let ino = try r.fs.createFile(root, "f")
        try put(r.fs, ino, &model, 15 * bs, pattern(100, seed: 2))
        #expect(try r.fs.getattr(ino).blocks == 8)
        #expect(try chunkKeys(r, ino).map(\.size) == [0, 100])
        try expectConsistent(r, ino, model, "tail")
        try put(r.fs, ino, &model, 15 * bs + 100, pattern(50, seed: 3))   // appends: folds
        try expectConsistent(r, ino, model, "append")
    }

    @Test func scatteredBlocksThenBlockZeroThenFolding() throws {
        var r = try Rig.fresh()
        var model: [UInt8] = []
        let ino = try r.fs.createFile(root, "f")
        // three scattered blocks in one buffer
        let fh = try r.fs.open(ino, flags: O_RDWR).fh
        for (i, b) in [3, 12, 7].enumerated() {
            let d = pattern(bs, seed: UInt64(10 + i))
            _ = try r.fs.writeAll(fh, UInt64(b * bs), d)
            model.zeroExtend(b * bs + bs)
            model.replaceSubrange(b * bs..<(b + 1) * bs, with: d)
        }
        #expect(try r.fs.getattr(ino).blocks == 24, "buffered")
        try r.fs.fsync(fh, datasync: false)
        try r.fs.release(fh)
        #expect(try r.fs.getattr(ino).blocks == 24)
        try expectConsistent(r, ino, model, "three blocks")
        // more blocks in later flushes: patches over the empty base
        try put(r.fs, ino, &model, 9 * bs, pattern(bs, seed: 20))
        try put(r.fs, ino, &model, 14 * bs, [UInt8](repeating: 0, count: bs))   // zeros written count too
        #expect(try r.fs.getattr(ino).blocks == 5 * 8)
        try expectConsistent(r, ino, model, "five blocks")
        r = try r.remount()
        try expectConsistent(r, ino, model, "five blocks, remounted")
        // block 0: the chunk folds into a whole chunk (its zeros between are stored then)
        try put(r.fs, ino, &model, 0, pattern(bs, seed: 21))
        #expect(try r.fs.getattr(ino).blocks == 15 * 8)
        #expect(try chunkKeys(r, ino).map(\.size) == [15 * bs])
        try expectConsistent(r, ino, model, "block 0")

        // a second chunk: 8 patches fit, the 9th folds
        var blocks = 15 * 8
        for (i, b) in [1, 3, 5, 7, 9, 11, 13, 15].enumerated() {
            try put(r.fs, ino, &model, cs + b * bs, pattern(bs, seed: UInt64(30 + i)))
            blocks += 8
            #expect(try r.fs.getattr(ino).blocks == UInt64(blocks))
        }
        #expect(try chunkKeys(r, ino).count == 1 + 1 + 8)
        try expectConsistent(r, ino, model, "eight patches")
        try put(r.fs, ino, &model, cs + 2 * bs, pattern(bs, seed: 40))
        #expect(try r.fs.getattr(ino).blocks == UInt64(15 * 8 + 16 * 8))
        #expect(try chunkKeys(r, ino).count == 2)
        try expectConsistent(r, ino, model, "folded")
    }

    @Test func truncatePunchAndOverwriteKeepBlocksExact() throws {
        var r = try Rig.fresh()
        var model: [UInt8] = []
        let ino = try r.fs.createFile(root, "f")
        for b in [2, 5, 9, 13] { try put(r.fs, ino, &model, cs + b * bs, pattern(bs, seed: UInt64(b))) }
        #expect(try r.fs.getattr(ino).blocks == 32)
        try expectConsistent(r, ino, model, "written")
        // punch inside block 5 (rewritten with zeros there) and all of block 9
        let fh = try r.fs.open(ino, flags: O_RDWR).fh
        try r.fs.fallocate(fh, mode: FallocMode.punchHole | FallocMode.keepSize, offset: UInt64(cs + 5 * bs + 100), length: 200)
        for i in (cs + 5 * bs + 100)..<(cs + 5 * bs + 300) { model[i] = 0 }
        try r.fs.fallocate(fh, mode: FallocMode.punchHole | FallocMode.keepSize, offset: UInt64(cs + 9 * bs), length: UInt64(bs))
        for i in (cs + 9 * bs)..<(cs + 10 * bs) { model[i] = 0 }
        try r.fs.release(fh)
        #expect(try r.fs.getattr(ino).blocks == 24)
        try expectConsistent(r, ino, model, "punched")
        // truncate into block 5: block 13 goes, block 5 is cut short
        _ = try r.fs.setattr(ino, SetAttr(size: UInt64(cs + 5 * bs + 1000)))
        model.removeSubrange((cs + 5 * bs + 1000)...)
        #expect(try r.fs.getattr(ino).blocks == 16)
        try expectConsistent(r, ino, model, "truncated")
        // grow again: zeros past the cut
        _ = try r.fs.setattr(ino, SetAttr(size: UInt64(2 * cs)))
        model.zeroExtend(2 * cs)
        try expectConsistent(r, ino, model, "grown")
        // overwrite part of a patched block (not whole): folds
        try put(r.fs, ino, &model, cs + 2 * bs + 10, pattern(20, seed: 50))
        #expect(try r.fs.getattr(ino).blocks == 6 * 8)
        try expectConsistent(r, ino, model, "overwritten")
        // punch everything of a hole chunk: nothing stays
        let other = try r.fs.createFile(root, "g")
        var m2: [UInt8] = []
        try put(r.fs, other, &m2, cs + 4 * bs, pattern(bs, seed: 60))
        let fh2 = try r.fs.open(other, flags: O_RDWR).fh
        try r.fs.fallocate(fh2, mode: FallocMode.punchHole | FallocMode.keepSize, offset: UInt64(cs), length: UInt64(cs))
        try r.fs.release(fh2)
        for i in cs..<2 * cs where i < m2.count { m2[i] = 0 }
        #expect(try r.fs.getattr(other).blocks == 0)
        #expect(try chunkKeys(r, other).isEmpty)
        try expectConsistent(r, other, m2, "punched whole")
        r = try r.remount()
        try expectConsistent(r, ino, model, "remounted")
    }

    /// Random writes (aligned and not), truncates and punches on a 3-chunk file against a
    /// model, with fsck's blocks recount after each step and a crash at the end of each round.
    @Test(arguments: [UInt64(0x1234_5678), 77, 4242])
    func randomOperationsMatchTheModelAndFsck(seed: UInt64) throws {
        var r = try Rig.fresh()
        var model: [UInt8] = []
        let ino = try r.fs.createFile(root, "f")
        var x: UInt64 = seed
        var holeChunksSeen = 0
        func rnd(_ n: Int) -> Int { x ^= x << 13; x ^= x >> 7; x ^= x << 17; return Int(x % UInt64(n)) }
        for round in 0..<6 {
            let fh = try r.fs.open(ino, flags: O_RDWR).fh
            for step in 0..<25 {
                let what = "round \(round) step \(step)"
                switch rnd(10) {
                case 0..<6:   // one or two whole blocks
                    let off = rnd(48) * bs, len = (1 + rnd(2)) * bs
                    let d = pattern(len, seed: x)
                    _ = try r.fs.writeAll(fh, UInt64(off), d)
                    model.zeroExtend(off + len)
                    model.replaceSubrange(off..<off + len, with: d)
                case 6:       // unaligned
                    let off = rnd(3 * cs), len = 1 + rnd(3 * bs)
                    let d = pattern(len, seed: x)
                    _ = try r.fs.writeAll(fh, UInt64(off), d)
                    model.zeroExtend(off + len)
                    model.replaceSubrange(off..<off + len, with: d)
                case 7:       // truncate
                    let size = rnd(3 * cs)
                    _ = try r.fs.setattr(ino, SetAttr(size: UInt64(size)))
                    if size < model.count { model.removeSubrange(size...) } else { model.zeroExtend(size) }
                case 8:       // punch
                    let off = rnd(3 * cs), len = 1 + rnd(2 * bs)
                    try r.fs.fallocate(fh, mode: FallocMode.punchHole | FallocMode.keepSize, offset: UInt64(off), length: UInt64(len))
                    for i in off..<max(off, min(off + len, model.count)) { model[i] = 0 }
                default:
                    try r.fs.fsync(fh, datasync: false)
                    try expectConsistent(r, ino, model, what)
                    holeChunksSeen += try chunkKeys(r, ino).filter { $0.key.count == FSFormat.chunkKeyLength && $0.size == 0 }.count
                }
            }
            try r.fs.fsync(fh, datasync: false)
            try r.fs.release(fh)
            try expectConsistent(r, ino, model, "round \(round)")
            r = try Rig.open(r.dev.crashed())   // a crash after the fsync keeps everything
            try expectConsistent(r, ino, model, "round \(round) after a crash")
        }
        #expect(holeChunksSeen > 0)
    }

    /// A buffer detached for write-behind that holds hole chunks, and a newer buffer writing
    /// the same chunks before it is stored: the blocks counted at each write are what the two
    /// flushes store, and the bytes are the newest.
    @Test(arguments: [false, true])
    func writeBehindOfHoleChunks(blockZeroLater: Bool) throws {
        let r = try Rig.fresh(trackCount: 4000)
        var model: [UInt8] = []
        let ino = try r.fs.createFile(root, "f")
        // chunk 1: a stored hole chunk (block 5)
        try put(r.fs, ino, &model, cs + 5 * bs, pattern(bs, seed: 1))
        let fh = try r.fs.open(ino, flags: O_RDWR).fh
        func wb(_ off: Int, _ d: [UInt8]) throws {
            _ = try d.withUnsafeBytes { p throws(Errno) in try r.fs.writeBehind(fh, offset: UInt64(off), data: p) }
            model.zeroExtend(off + d.count)
            model.replaceSubrange(off..<off + d.count, with: d)
        }
        try wb(15 * bs, pattern(bs, seed: 2))        // chunk 0: a hole chunk (buffered)
        try wb(cs + 9 * bs, pattern(bs, seed: 3))    // chunk 1: a patch over its empty base
        try wb(2 * cs + 4 * bs + 7, pattern(10, seed: 4))   // chunk 2: not aligned, not a hole chunk
        // fill the buffer past its budget: detached (not stored yet: nobody runs it)
        let piece = pattern(1 << 20, seed: 5)
        for i in 0..<17 { try wb(4 * cs + i << 20, piece) }
        // newer writes to the same chunks, before the detached buffer is stored
        try wb(blockZeroLater ? 0 : 7 * bs, pattern(bs, seed: 6))
        try wb(cs + 11 * bs, pattern(bs, seed: 7))
        try wb(2 * cs + 8 * bs, pattern(bs, seed: 8))
        #expect(try chunkKeys(r, ino).allSatisfy { $0.key.readBE(UInt64.self, at: 9) == 1 }, "the detached buffer waits")
        let buffered = try r.fs.getattr(ino).blocks   // (waits for the write-behind: runs it)
        #expect(try chunkKeys(r, ino).contains { $0.key.readBE(UInt64.self, at: 9) == 0 }, "the detached buffer is stored")
        try r.fs.fsync(fh, datasync: false)
        try r.fs.release(fh)
        #expect(try r.fs.getattr(ino).blocks == buffered)
        let chunk0: UInt64 = blockZeroLater ? 16 * 8 : 2 * 8
        #expect(buffered == chunk0 + 3 * 8 + 9 * 8 + 17 * 2048, "\(buffered)")
        try expectConsistent(r, ino, model, "after write-behind")
        let after = try Rig.open(r.dev.crashed())
        try expectConsistent(after, ino, model, "after a crash")
    }

    /// A crash after each step of hole-chunk writes, punches, truncates and an unlink (each
    /// made durable by the step), and after any prefix of the unsynced device writes at the
    /// end, leaves a tree fsck finds clean (blocks recounted per chunk included).
    @Test func crashAfterEveryStepIsClean() throws {
        let r = try Rig.fresh()
        let ino = try r.fs.createFile(root, "f")
        let small = try r.fs.createFile(root, "s")
        try r.fs.fsync(nil, datasync: false)
        let fh = try r.fs.open(ino, flags: O_RDWR).fh
        let sfh = try r.fs.open(small, flags: O_RDWR).fh
        var step = 0
        func crashHere() throws {
            step += 1
            try r.fs.fsync(nil, datasync: false)
            let store = try LSMStore(kvimr: try KVIMR(device: r.dev.crashed()))
            #expect(try FileSystem.check(store: store).errors == [], "crash after step \(step)")
        }
        func w(_ h: UInt64, _ off: Int, _ len: Int, _ seed: UInt64) throws {
            _ = try r.fs.writeAll(h, UInt64(off), pattern(len, seed: seed))
            try crashHere()
        }
        try w(fh, 3 * bs, bs, 1)
        try w(fh, 2 * cs + 9 * bs, 2 * bs, 2)
        try w(sfh, 12 * bs, 100, 3)
        try w(fh, 7 * bs, bs, 4)
        try r.fs.fallocate(fh, mode: FallocMode.punchHole | FallocMode.keepSize, offset: UInt64(3 * bs + 10), length: 20)
        try crashHere()
        try w(fh, cs + 4 * bs, bs, 5)
        _ = try r.fs.setattr(ino, SetAttr(size: UInt64(2 * cs + 9 * bs + 100)))
        try crashHere()
        try r.fs.unlink(root, n("s"))
        try r.fs.release(sfh)
        try crashHere()
        _ = try r.fs.writeAll(fh, UInt64(5 * bs), pattern(bs, seed: 6))
        _ = try r.fs.writeAll(fh, 0, pattern(bs, seed: 7))   // folds chunk 0
        try r.fs.flush(fh)   // stored, not synced
        try r.fs.release(fh)
        let writes = r.dev.unsyncedWriteCount
        for keep in 0...writes {
            let store = try LSMStore(kvimr: try KVIMR(device: r.dev.crashed(keepUnsynced: keep)))
            let report = try FileSystem.check(store: store)
            #expect(report.errors == [], "keeping \(keep) of \(writes) writes")
        }
    }

    /// A version-2 image gets no empty chunk values until its record is rewritten as version 3.
    @Test func versionTwoImagesGetHoleChunksOnlyOnceUpgraded() throws {
        var r = try Rig.fresh()
        let ino = try r.fs.createFile(root, "f")
        var rec = try #require(try r.store.get([FSFormat.recordKeyPrefix]))
        rec.withUnsafeMutableBytes { $0.storeBytes(of: UInt16(2).littleEndian, toByteOffset: 8, as: UInt16.self) }
        try r.store.put([FSFormat.recordKeyPrefix], rec, sync: true)
        r = try r.remount()
        var model: [UInt8] = []
        try put(r.fs, ino, &model, 15 * bs, pattern(bs, seed: 7))
        #expect(try chunkKeys(r, ino).map(\.size) == [16 * bs])
        #expect(try r.fs.getattr(ino).blocks == 128)
        _ = try r.fs.createFile(root, "g")   // the record is rewritten: version 3
        #expect(try r.store.get([FSFormat.recordKeyPrefix])?[8] == UInt8(FSFormat.formatVersion))
        let g = try r.fs.lookup(root, n("g")).ino
        var m2: [UInt8] = []
        try put(r.fs, g, &m2, 15 * bs, pattern(bs, seed: 8))
        #expect(try r.fs.getattr(g).blocks == 8)
        try expectConsistent(r, ino, model, "v2 file")
        try expectConsistent(r, g, m2, "v3 file")
    }

    /// An empty chunk value without patches is malformed: fsck says so, repair deletes it.
    @Test func emptyChunkWithoutPatchesIsRepaired() throws {
        let r = try Rig.fresh()
        let ino = try r.fs.createFile(root, "f")
        _ = try r.fs.setattr(ino, SetAttr(size: UInt64(cs)))
        var key: [UInt8] = [FSFormat.chunkPrefix]
        key.appendBE(ino)
        key.appendBE(UInt64(0))
        try r.fs.shutdown()
        let store = try LSMStore(kvimr: try KVIMR(device: r.dev.crashed()))
        try store.put(key, [], sync: true)
        #expect(try FileSystem.check(store: store).errors.contains { $0.contains("empty chunk without patches") })
        _ = try FileSystem.repair(store: store)
        #expect(try FileSystem.check(store: store).errors == [])
        #expect(try store.get(key) == nil)
    }
}

extension Array where Element == UInt8 {
    mutating func zeroExtend(_ n: Int) {
        if count < n { append(contentsOf: [UInt8](repeating: 0, count: n - count)) }
    }
}
