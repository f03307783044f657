import Glibc
import LSMFS
import SystemPackage
import Testing

/// A times-only setattr (what the kernel's writeback cache sends at close) stores a file's
/// buffered chunk in its own batch; a size change still sees the buffered bytes.
@Suite struct SetattrBufferTests {
    @Test func timesOnlySetattrStoresBufferedWrites() throws {
        let r = try Rig.fresh()
        let (attr, fh) = try r.fs.create(root, n("f"), mode: 0o644, flags: O_RDWR, caller: me)
        _ = try r.fs.writeAll(fh, 0, Array(repeating: 7, count: 3000))   // buffered (one partial chunk)
        var s = SetAttr()
        s.mtime = .time(TimeSpec(sec: 1000, nsec: 5))
        let a = try r.fs.setattr(attr.ino, s)
        #expect(a.size == 3000 && a.mtime == TimeSpec(sec: 1000, nsec: 5))
        #expect(try r.keyCount([FSFormat.chunkPrefix]) == 1)   // the chunk reached the store
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
}
