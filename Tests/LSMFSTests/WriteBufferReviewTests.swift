import Glibc
import IMRDisk
import KVIMR
import LSMFS
import LSMStore
import SystemPackage
import Testing

/// setxattr of `value` as the calling process.
private func reviewSetXattr(_ fs: FileSystem, _ ino: UInt64, _ name: String, _ value: [UInt8]) throws {
    var failure: Errno?
    value.withUnsafeBytes { p in
        do throws(Errno) { try fs.setxattr(ino, n(name), p, flags: 0, caller: me) } catch { failure = error }
    }
    if let failure { throw failure }
}

/// Review of the file write buffer (DirtyFile, write-behind, partial chunks; 3800351, b1fb250,
/// 425be27): every operation that writes an inode record or chunk keys must keep the store
/// consistent with what is buffered, before and after a crash.
@Suite struct WriteBufferReviewTests {
    /// Was a bug (fixed in d81cb26): setxattr and removexattr loaded the inode with the buffered size, blocks and mtime
    /// (`loadInode` overlays them) and store that record, while the buffered chunks stay only
    /// in memory. Any store durability point before the file's flush (a memtable flush, a WAL
    /// sync, another writer's `store.sync`) then makes a record durable whose size and blocks
    /// name chunks that were never stored: after a crash the file reads zeros past its old
    /// end and `fsck` reports "blocks X, its chunks hold Y". (`cp -a`, `rsync -X` set xattrs
    /// on the open file right after writing it.)
    @Test(arguments: [false, true])
    func xattrChangeWithBufferedWritesKeepsTheStoreConsistent(remove: Bool) throws {
        let r = try Rig.fresh()
        let (attr, fh) = try r.fs.create(root, n("x"), mode: 0o644, flags: O_RDWR, caller: me)
        let base = pattern(65_536 + 300, seed: 51)
        _ = try r.fs.writeAll(fh, 0, base)
        let value: [UInt8] = [7, 7]
        if remove {
            try reviewSetXattr(r.fs, attr.ino, "user.k", value)
        }
        try r.fs.fsync(fh, datasync: false)
        let more = pattern(3 * 65_536 + 500, seed: 52)
        _ = try r.fs.writeAll(fh, UInt64(base.count), more)   // buffered
        if remove {
            try r.fs.removexattr(attr.ino, n("user.k"), caller: me)
        } else {
            try reviewSetXattr(r.fs, attr.ino, "user.k", value)
        }
        // A store durability point that is not the filesystem's own sync.
        try r.store.sync()
        let crashed = try Rig.open(r.dev.crashed())
        #expect(try FileSystem.check(store: crashed.store).errors == [])
        let got = try crashed.fs.readAll(attr.ino)
        #expect(got == base || got == base + more, "the file is its old or its new content, nothing in between")
        try crashed.fs.shutdown()
        try? r.fs.release(fh)
    }

    /// Buffered (partly partial) writes interleaved with truncate, punch, rename over an open
    /// target, unlink of an open file and fsync: every read sees the model, an fsync'd file
    /// survives a crash whole, and fsck stays clean.
    @Test func bufferedRangesThroughTruncatePunchRenameUnlinkAndFsync() throws {
        let r = try Rig.fresh()
        let fs = r.fs
        let cs = 65_536
        let (fa, fh) = try fs.create(root, n("f"), mode: 0o644, flags: O_RDWR, caller: me)
        var model = pattern(5 * cs + 777, seed: 61)
        _ = try fs.writeAll(fh, 0, model)
        try fs.fsync(fh, datasync: false)

        func write(_ off: Int, _ bytes: [UInt8]) throws {
            _ = try fs.writeAll(fh, UInt64(off), bytes)
            if model.count < off + bytes.count { model += [UInt8](repeating: 0, count: off + bytes.count - model.count) }
            model.replaceSubrange(off..<(off + bytes.count), with: bytes)
        }
        func check(_ what: String) throws {
            #expect(try fs.getattr(fa.ino).size == UInt64(model.count), "\(what): size")
            #expect(try fs.read(fh, offset: 0, size: model.count + 100) == model, "\(what): content")
        }
        // Small writes into stored chunks (partial: their stored content is not read yet).
        try write(100, [1, 2, 3, 4])
        try write(2 * cs + 5000, pattern(3000, seed: 62))
        try write(4 * cs - 10, pattern(40, seed: 63))
        try check("partial writes")
        // Truncate into a chunk with a partial buffered range, then grow with a write past EOF.
        _ = try fs.setattr(fa.ino, SetAttr(size: UInt64(2 * cs + 6000)))
        model.removeSubrange((2 * cs + 6000)...)
        try check("truncate")
        try write(3 * cs + 1000, pattern(5000, seed: 64))
        try write(2 * cs + 5500, pattern(200, seed: 65))
        try check("write past the truncation")
        // Punch a hole across a buffered range, a stored chunk and the gap.
        try fs.fallocate(fh, mode: FallocMode.punchHole | FallocMode.keepSize, offset: UInt64(cs + 10), length: UInt64(2 * cs))
        for i in (cs + 10)..<min(model.count, 3 * cs + 10) { model[i] = 0 }
        try check("punch")
        try write(cs + 20, [9, 9, 9])
        try check("write into the hole")

        // Rename over an open target with buffered writes; the target lives on as an orphan.
        let (ta, th) = try fs.create(root, n("t"), mode: 0o644, flags: O_RDWR, caller: me)
        let tBytes = pattern(cs + 10, seed: 66)
        _ = try fs.writeAll(th, 0, tBytes)
        try fs.rename(root, n("f"), root, n("t"), caller: me)
        #expect(try fs.read(th, offset: 0, size: tBytes.count + 10) == tBytes)
        _ = try fs.writeAll(th, 5, [1])
        try fs.release(th)
        #expect(throws: Errno.self) { try fs.getattr(ta.ino) }
        try check("after rename")

        // Unlink the (renamed) file while open: writes and reads go on through the handle.
        try fs.unlink(root, n("t"), caller: me)
        try write(10, pattern(100, seed: 67))
        try check("unlinked, open")
        try fs.release(fh)

        // A last file: buffered partial writes, fsync, crash: all of it survives.
        let (ga, gh) = try fs.create(root, n("g"), mode: 0o644, flags: O_RDWR, caller: me)
        var g = pattern(3 * cs, seed: 68)
        _ = try fs.writeAll(gh, 0, g)
        try fs.fsync(gh, datasync: true)
        let patch = pattern(1000, seed: 69)
        _ = try fs.writeAll(gh, UInt64(cs + 100), patch)
        g.replaceSubrange((cs + 100)..<(cs + 1100), with: patch)
        try fs.fsync(gh, datasync: true)
        let crashed = try Rig.open(r.dev.crashed())
        #expect(try crashed.fs.readAll(ga.ino) == g)
        #expect(throws: Errno.self) { try crashed.fs.getattr(fa.ino) }
        #expect(try FileSystem.check(store: crashed.store).errors == [])
        try crashed.fs.shutdown()
        try fs.release(gh)
    }
}
