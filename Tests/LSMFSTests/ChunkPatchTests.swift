import Glibc
import LSMCommon
import LSMFS
import LSMStore
import SystemPackage
import Testing

/// Chunk patches (docs/format/keys.md): small whole-block writes into stored chunks are stored
/// as 4 KiB patches, folded into the chunk past `maxPatchesPerChunk` or by any rewrite, and
/// every reader (read, truncate, punch hole, SEEK_DATA/HOLE, fsck, unlink) sees them.
@Suite struct ChunkPatchTests {
    let cs = FSFormat.chunkSize
    let bs = FSFormat.patchBlockSize

    /// Patch keys (18-byte `B` keys) of `ino`.
    func patchKeys(_ r: Rig, _ ino: UInt64) throws -> [[UInt8]] {
        var keys: [[UInt8]] = []
        var start: [UInt8] = [FSFormat.chunkPrefix]
        start.appendBE(ino)
        var end: [UInt8] = [FSFormat.chunkPrefix]
        end.appendBE(ino + 1)
        try r.store.scan(from: start, to: end) { k, _ in
            if k.count == FSFormat.patchKeyLength { keys.append(k) }
            return true
        }
        return keys
    }

    func write(_ fs: FileSystem, _ ino: UInt64, _ off: Int, _ bytes: [UInt8]) throws {
        let fh = try fs.open(ino, flags: O_RDWR).fh
        _ = try fs.writeAll(fh, UInt64(off), bytes)
        try fs.fsync(fh, datasync: false)
        try fs.release(fh)
    }

    func expectClean(_ r: Rig) throws {
        let report = try FileSystem.check(store: r.store)
        #expect(report.errors == [])
    }

    @Test func blockWritesBecomePatchesNotChunkRewrites() throws {
        var r = try Rig.fresh()
        var model = pattern(8 * cs, seed: 1)
        let ino = try r.fs.createFile(root, "f", model)
        let before = r.fs.vlogStats.valueBytesWritten
        // Ten 4 KiB block writes in ten different chunks.
        for i in 0..<10 {
            let off = (i % 8) * cs + (i * 3 % 16) * bs
            let data = pattern(bs, seed: UInt64(100 + i))
            model.replaceSubrange(off..<off + bs, with: data)
            try write(r.fs, ino, off, data)
        }
        let written = r.fs.vlogStats.valueBytesWritten - before
        #expect(written < UInt64(12 * (bs + 200)), "\(written) value-log bytes for ten 4 KiB writes")
        #expect(try patchKeys(r, ino).count == 10)
        #expect(try r.fs.readAll(ino) == model)
        try expectClean(r)
        r = try r.remount()
        #expect(try r.fs.readAll(ino) == model)
        #expect(try r.fs.getattr(ino).blocks == UInt64(8 * cs / 512))
        try expectClean(r)
    }

    /// A stored chunk rewritten block by block through one handle (16 sequential 4 KiB
    /// writes, no flush between) is complete in the buffer: it is stored without reading the
    /// old chunk from the value log (it used to be folded over a 64 KiB read).
    @Test func blockByBlockRewriteOfAStoredChunkReadsNothing() throws {
        var r = try Rig.fresh()
        var model = pattern(2 * cs, seed: 3)
        let ino = try r.fs.createFile(root, "f", model)
        r = try r.remount()   // the value log on the drive, not in KVIMR's buffers
        func vlogBytesRead() -> UInt64 { r.store.kvimr.stats().io.entries["read vLog"]?.bytes ?? 0 }
        let before = vlogBytesRead()
        let fh = try r.fs.open(ino, flags: O_RDWR).fh
        for b in 0..<FSFormat.patchesPerChunk {
            let data = pattern(bs, seed: UInt64(300 + b))
            model.replaceSubrange(b * bs..<(b + 1) * bs, with: data)
            _ = try r.fs.writeAll(fh, UInt64(b * bs), data)
        }
        try r.fs.fsync(fh, datasync: false)
        try r.fs.release(fh)
        #expect(vlogBytesRead() == before, "value-log bytes read to store a rewritten chunk")
        #expect(try patchKeys(r, ino).isEmpty)
        #expect(try r.fs.readAll(ino) == model)
        try expectClean(r)
        r = try r.remount()
        #expect(try r.fs.readAll(ino) == model)
        try expectClean(r)
    }

    @Test func manyPatchesFoldIntoTheChunk() throws {
        let r = try Rig.fresh()
        var model = pattern(2 * cs, seed: 2)
        let ino = try r.fs.createFile(root, "f", model)
        for b in 0..<FSFormat.patchesPerChunk {
            let data = pattern(bs, seed: UInt64(200 + b))
            model.replaceSubrange(b * bs..<(b + 1) * bs, with: data)
            try write(r.fs, ino, b * bs, data)
            #expect(try patchKeys(r, ino).count <= FSFormat.maxPatchesPerChunk)
        }
        #expect(try r.fs.readAll(ino) == model)
        // A write of part of a block folds too (the patch would lose the rest of the block).
        try write(r.fs, ino, cs + 5 * bs, pattern(bs, seed: 9))
        #expect(try patchKeys(r, ino).count >= 1)
        let odd = pattern(100, seed: 10)
        model.replaceSubrange(cs + 5 * bs..<cs + 5 * bs + bs, with: pattern(bs, seed: 9))
        model.replaceSubrange(cs + 5 * bs + 7..<cs + 5 * bs + 107, with: odd)
        try write(r.fs, ino, cs + 5 * bs + 7, odd)
        #expect(try r.fs.readAll(ino) == model)
        try expectClean(r)
    }

    @Test func truncateToOneChunkAndUnlinkLeaveNoPatches() throws {
        let r = try Rig.fresh()
        let ino = try r.fs.createFile(root, "f", pattern(3 * cs, seed: 3))
        try write(r.fs, ino, 2 * bs, pattern(bs, seed: 4))
        try write(r.fs, ino, cs + 2 * bs, pattern(bs, seed: 5))
        #expect(try patchKeys(r, ino).count == 2)
        _ = try r.fs.setattr(ino, SetAttr(size: UInt64(cs)))   // exactly one chunk
        #expect(try patchKeys(r, ino).isEmpty)
        var model = pattern(3 * cs, seed: 3)
        model.replaceSubrange(2 * bs..<3 * bs, with: pattern(bs, seed: 4))
        #expect(try r.fs.readAll(ino) == Array(model[0..<cs]))
        try expectClean(r)
        try r.fs.unlink(root, n("f"))
        #expect(try r.keyCount([FSFormat.chunkPrefix]) == 0)
        // A bigger patched file goes with its patches too.
        let big = try r.fs.createFile(root, "g", pattern(4 * cs, seed: 6))
        try write(r.fs, big, 3 * cs, pattern(bs, seed: 7))
        #expect(try patchKeys(r, big).count == 1)
        try r.fs.unlink(root, n("g"))
        #expect(try r.keyCount([FSFormat.chunkPrefix]) == 0)
        try expectClean(r)
    }

    @Test func punchHoleAndSeekSeePatches() throws {
        let r = try Rig.fresh()
        // Chunk 1 stored short (10 KiB), a patch past its end makes it 5 blocks long.
        var model = pattern(cs + 10_000, seed: 8)
        let ino = try r.fs.createFile(root, "f", model)
        model += [UInt8](repeating: 0, count: 2 * cs)
        _ = try r.fs.setattr(ino, SetAttr(size: UInt64(model.count)))
        try write(r.fs, ino, 2 * cs + 4 * bs, pattern(bs, seed: 1))   // a hole chunk: empty base and one patch
        try write(r.fs, ino, cs + 4 * bs, pattern(bs, seed: 9))
        model.replaceSubrange(2 * cs + 4 * bs..<2 * cs + 5 * bs, with: pattern(bs, seed: 1))
        model.replaceSubrange(cs + 4 * bs..<cs + 5 * bs, with: pattern(bs, seed: 9))
        #expect(try patchKeys(r, ino).count == 2)
        #expect(try r.fs.readAll(ino) == model)
        let fh = try r.fs.open(ino, flags: O_RDWR).fh
        #expect(try r.fs.seekDataOrHole(fh, offset: UInt64(cs), whence: SeekWhence.hole) == UInt64(cs + 5 * bs))
        // Punch the patched block's second half: the chunk is folded and shortened.
        try r.fs.fallocate(fh, mode: FallocMode.punchHole | FallocMode.keepSize, offset: UInt64(cs + 4 * bs + 2048), length: 2048)
        model.replaceSubrange(cs + 4 * bs + 2048..<cs + 5 * bs, with: [UInt8](repeating: 0, count: 2048))
        try r.fs.release(fh)
        #expect(try patchKeys(r, ino).count == 1)   // (the hole chunk's)
        #expect(try r.fs.readAll(ino) == model)
        try expectClean(r)
    }

    /// Random writes (block-aligned and not), truncates, punches, fsyncs and remounts against
    /// an in-memory model; fsck clean at each remount.
    @Test(arguments: [UInt64(11), 12])
    func randomOperationsMatchAModel(seed: UInt64) throws {
        var r = try Rig.fresh()
        var x = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        func rnd(_ n: Int) -> Int {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17
            return Int(x % UInt64(n))
        }
        let span = 12 * cs
        var model = pattern(6 * cs + 3000, seed: seed)
        var ino = try r.fs.createFile(root, "f", model)
        var fh = try r.fs.open(ino, flags: O_RDWR).fh
        for step in 0..<400 {
            switch rnd(20) {
            case 0..<10:   // a 4 KiB block (the patch path)
                let off = rnd(span / bs) * bs
                let data = pattern(bs, seed: seed &+ UInt64(step))
                if model.count < off + bs { model += [UInt8](repeating: 0, count: off + bs - model.count) }
                model.replaceSubrange(off..<off + bs, with: data)
                _ = try r.fs.writeAll(fh, UInt64(off), data)
            case 10..<14:  // anything
                let off = rnd(span), len = 1 + rnd(rnd(4) == 0 ? 3 * cs : 9000)
                let data = pattern(len, seed: seed &+ UInt64(step) &* 7)
                if model.count < off + len { model += [UInt8](repeating: 0, count: off + len - model.count) }
                model.replaceSubrange(off..<off + len, with: data)
                _ = try r.fs.writeAll(fh, UInt64(off), data)
            case 14:       // truncate (one chunk exactly now and then)
                let size = rnd(4) == 0 ? cs : rnd(span)
                _ = try r.fs.setattr(ino, SetAttr(size: UInt64(size)))
                if size < model.count { model.removeSubrange(size...) } else { model += [UInt8](repeating: 0, count: size - model.count) }
            case 15:       // punch a hole
                guard !model.isEmpty else { break }
                let off = rnd(model.count), len = 1 + rnd(2 * cs)
                try r.fs.fallocate(fh, mode: FallocMode.punchHole | FallocMode.keepSize, offset: UInt64(off), length: UInt64(len))
                let hi = min(model.count, off + len)
                model.replaceSubrange(off..<hi, with: [UInt8](repeating: 0, count: hi - off))
            case 16, 17:
                try r.fs.fsync(fh, datasync: false)
            case 18:       // read a random range
                guard !model.isEmpty else { break }
                let off = rnd(model.count), len = 1 + rnd(2 * cs)
                let got = try r.fs.read(fh, offset: UInt64(off), size: len)
                #expect(got == Array(model[off..<min(model.count, off + len)]), "step \(step)")
            default:       // remount (every change reaches the store at release/unmount)
                try r.fs.release(fh)
                try expectClean(r)
                r = try r.remount()
                ino = try r.fs.lookup(root, n("f")).ino
                fh = try r.fs.open(ino, flags: O_RDWR).fh
            }
        }
        #expect(try r.fs.getattr(ino).size == UInt64(model.count))
        #expect(try r.fs.read(fh, offset: 0, size: model.count + 10) == model)
        try r.fs.release(fh)
        try expectClean(r)
        r = try r.remount()
        #expect(try r.fs.readAll(ino) == model)
        try expectClean(r)
    }

    /// A version-1 image (no patches) mounts; block writes fold until the record is next
    /// written (the first inode reservation makes it version 2), then become patches.
    @Test func versionOneImagesGetPatchesOnlyOnceUpgraded() throws {
        var r = try Rig.fresh()
        let model = pattern(3 * cs, seed: 30)
        let ino = try r.fs.createFile(root, "f", model)
        var rec = try #require(try r.store.get([FSFormat.recordKeyPrefix]))
        rec.withUnsafeMutableBytes { $0.storeBytes(of: UInt16(1).littleEndian, toByteOffset: 8, as: UInt16.self) }
        try r.store.put([FSFormat.recordKeyPrefix], rec, sync: true)
        r = try r.remount()
        try write(r.fs, ino, cs + bs, pattern(bs, seed: 31))
        #expect(try patchKeys(r, ino).isEmpty)
        _ = try r.fs.createFile(root, "g")   // reserves inode numbers: the record is rewritten
        #expect(try r.store.get([FSFormat.recordKeyPrefix])?[8] == UInt8(FSFormat.formatVersion))
        try write(r.fs, ino, cs + 2 * bs, pattern(bs, seed: 32))
        #expect(try patchKeys(r, ino).count == 1)
        var expected = model
        expected.replaceSubrange(cs + bs..<cs + 2 * bs, with: pattern(bs, seed: 31))
        expected.replaceSubrange(cs + 2 * bs..<cs + 3 * bs, with: pattern(bs, seed: 32))
        #expect(try r.fs.readAll(ino) == expected)
        try expectClean(r)
    }

    /// A crash after an fsync keeps every patch (and the chunk they lie on).
    @Test func patchesSurviveACrashAfterFsync() throws {
        let r = try Rig.fresh()
        var model = pattern(4 * cs, seed: 20)
        let ino = try r.fs.createFile(root, "f", model)
        try r.fs.fsync(nil, datasync: false)
        let fh = try r.fs.open(ino, flags: O_RDWR).fh
        for i in 0..<12 {
            let off = (i * 7 % 64) * bs
            let data = pattern(bs, seed: UInt64(300 + i))
            model.replaceSubrange(off..<off + bs, with: data)
            _ = try r.fs.writeAll(fh, UInt64(off), data)
        }
        try r.fs.fsync(fh, datasync: false)
        #expect(try !patchKeys(r, ino).isEmpty)
        let after = try Rig.open(r.dev.crashed())   // no unmount
        #expect(try after.fs.readAll(ino) == model)
        try expectClean(after)
    }
}
