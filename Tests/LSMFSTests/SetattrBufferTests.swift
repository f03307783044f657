import Glibc
import LSMFS
import SystemPackage
import Testing

/// A setattr that does not change the size (tar's utimens/chmod/chown after closing each file,
/// the kernel's times-only setattr at close) leaves a file's buffered writes buffered: it
/// stores the new attributes with the stored size, the buffer keeps the new mtime, and the
/// buffer's later flush does not undo them. A size change still sees the buffered bytes.
@Suite struct SetattrBufferTests {
    @Test func timesOnlySetattrKeepsBufferedWritesBuffered() throws {
        let r = try Rig.fresh()
        let (attr, fh) = try r.fs.create(root, n("f"), mode: 0o644, flags: O_RDWR, caller: me)
        _ = try r.fs.writeAll(fh, 0, Array(repeating: 7, count: 3000))   // buffered (one partial chunk)
        var s = SetAttr()
        s.mtime = .time(TimeSpec(sec: 1000, nsec: 5))
        let a = try r.fs.setattr(attr.ino, s)
        #expect(a.size == 3000 && a.mtime == TimeSpec(sec: 1000, nsec: 5))
        #expect(try r.keyCount([FSFormat.chunkPrefix]) == 0)   // still buffered
        #expect(try r.fs.getattr(attr.ino).size == 3000)
        _ = try r.fs.writeAll(fh, 3000, Array(repeating: 8, count: 1000))
        var t = SetAttr()
        t.size = 3500
        #expect(try r.fs.setattr(attr.ino, t).size == 3500)
        // The store alone (not the filesystem's buffers) made durable, then a crash: what
        // setattr stored is there.
        try r.store.sync()
        let r2 = try Rig.open(r.dev.crashed())
        #expect(try r2.fs.readAll(attr.ino) == Array(repeating: 7, count: 3000) + Array(repeating: 8, count: 500))
        #expect(try FileSystem.check(store: r2.store).isClean)
        try r.fs.release(fh)
    }

    /// tar's order: write, close, then utimens, chmod and chown. Before the release stores
    /// the buffer a crash keeps the new attributes with the old (stored) size — fsck clean —
    /// and after it data and attributes are all there, the times as set.
    @Test func attributesAfterCloseSurviveTheBufferFlushAndACrash() throws {
        let r = try Rig.fresh()
        let data = (0..<70_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }   // two chunks
        let (attr, fh) = try r.fs.create(root, n("f"), mode: 0o644, flags: O_RDWR, caller: me)
        _ = try r.fs.writeAll(fh, 0, data)
        let mtime = TimeSpec(sec: 2000, nsec: 7), atime = TimeSpec(sec: 1500, nsec: 0)
        _ = try r.fs.setattr(attr.ino, SetAttr(atime: .time(atime), mtime: .time(mtime)))
        _ = try r.fs.setattr(attr.ino, SetAttr(mode: 0o600))
        _ = try r.fs.setattr(attr.ino, SetAttr(uid: 1234, gid: 4321))
        #expect(try r.keyCount([FSFormat.chunkPrefix]) == 0)
        var got = try r.fs.getattr(attr.ino)
        #expect(got.size == 70_000 && got.mtime == mtime && got.atime == atime && got.mode & 0o7777 == 0o600)

        try r.store.sync()   // the store alone: the buffer is not in it
        let crashed = try Rig.open(r.dev.crashed())
        let c = try crashed.fs.getattr(attr.ino)
        #expect(c.size == 0 && c.blocks == 0 && c.mode & 0o7777 == 0o600 && c.uid == 1234 && c.mtime == mtime)
        #expect(try FileSystem.check(store: crashed.store).errors == [])
        try crashed.fs.shutdown()

        try r.fs.release(fh)   // stores the buffer
        #expect(try r.keyCount([FSFormat.chunkPrefix]) == 2)
        got = try r.fs.getattr(attr.ino)
        #expect(got.size == 70_000 && got.mtime == mtime && got.atime == atime && got.uid == 1234 && got.gid == 4321)
        let r2 = try r.remount()
        let after = try r2.fs.getattr(attr.ino)
        #expect(after.size == 70_000 && after.mtime == mtime && after.atime == atime && after.mode & 0o7777 == 0o600)
        #expect(after.uid == 1234 && after.gid == 4321 && after.blocks == got.blocks)
        #expect(try r2.fs.readAll(attr.ino) == data)
        #expect(try FileSystem.check(store: r2.store).errors == [])
        try r2.fs.shutdown()
    }
}
