import Glibc
import LSMFS
import LSMStore
import SystemPackage
import Testing

/// open(dir, O_TMPFILE) in process: a nameless open orphan that `link` can name, reclaimed at
/// its last release or at the next mount when never named.
struct TmpFileTests {
    @Test func tmpfileIsNamelessUntilLinked() throws {
        var r = try Rig.fresh()
        let d = try r.fs.mkdir(root, n("d"), mode: 0o755, caller: me)
        let (attr, fh) = try r.fs.tmpfile(d.ino, mode: 0o600, flags: O_RDWR | FileSystem.tmpfileFlags, caller: me)
        #expect(attr.mode == UInt32(S_IFREG) | 0o600)
        #expect(attr.nlink == 0)
        #expect(r.fs.lookupCount(attr.ino) == 1)
        let data = pattern(150_000, seed: 11)
        #expect(try r.fs.writeAll(fh, 0, data) == data.count)
        #expect(try r.fs.read(fh, offset: 0, size: data.count + 10) == data)
        #expect(try r.fs.getattr(attr.ino).nlink == 0)
        #expect(try r.fs.getattr(attr.ino).size == UInt64(data.count))
        #expect(try r.fs.listAll(d.ino).filter { $0 != "." && $0 != ".." } == [])
        try r.fs.fsync(fh, datasync: false)
        #expect(try r.keyCount([0x4F]) == 1)
        #expect(try FileSystem.check(store: r.store).errors == [])

        let named = try r.fs.link(attr.ino, d.ino, n("named"))
        #expect(named.nlink == 1)
        #expect(try r.keyCount([0x4F]) == 0)
        #expect(try r.fs.lookup(d.ino, n("named")).ino == attr.ino)
        #expect(try r.fs.listAll(d.ino).filter { $0 != "." && $0 != ".." } == ["named"])
        try r.fs.release(fh)
        #expect(try r.fs.readAll(attr.ino) == data)
        #expect(try FileSystem.check(store: r.store).errors == [])

        r = try r.remount()
        #expect(try r.fs.getattr(attr.ino).nlink == 1)
        #expect(try r.fs.readAll(try r.fs.lookup(d.ino, n("named")).ino) == data)
        #expect(try FileSystem.check(store: r.store).errors == [])
        try r.fs.shutdown()
    }

    @Test func neverLinkedIsReclaimedAtRelease() throws {
        let r = try Rig.fresh()
        let (attr, fh) = try r.fs.tmpfile(root, mode: 0o644, flags: O_WRONLY, caller: me)
        _ = try r.fs.writeAll(fh, 0, pattern(300_000, seed: 12))
        try r.fs.fsync(fh, datasync: false)
        #expect(try r.keyCount([0x42]) > 0)
        try r.fs.release(fh)
        #expect(try r.keyCount([0x42]) == 0)
        #expect(try r.keyCount([0x4F]) == 0)
        #expect(throws: errno(ENOENT)) { try r.fs.getattr(attr.ino) }
        #expect(try FileSystem.check(store: r.store).errors == [])
        try r.fs.shutdown()
    }

    @Test func crashWhileOpenIsReclaimedAtMount() throws {
        let r = try Rig.fresh()
        let (attr, fh) = try r.fs.tmpfile(root, mode: 0o644, flags: O_RDWR, caller: me)
        _ = try r.fs.writeAll(fh, 0, pattern(200_000, seed: 13))
        try r.fs.fsync(fh, datasync: false)
        let r2 = try Rig.open(r.dev.crashed())  // no shutdown: the daemon dies with it open
        #expect(try r2.keyCount([0x4F]) == 0)
        #expect(try r2.keyCount([0x42]) == 0)
        #expect(throws: errno(ENOENT)) { try r2.fs.getattr(attr.ino) }
        #expect(try FileSystem.check(store: r2.store).errors == [])
        try r2.fs.shutdown()
    }

    @Test func onlyOpenNonExclusiveTmpfilesCanBeNamed() throws {
        let r = try Rig.fresh()
        // O_EXCL: never linkable (the kernel refuses too; the filesystem agrees)
        let (ex, exFh) = try r.fs.tmpfile(root, mode: 0o600, flags: O_RDWR | O_EXCL, caller: me)
        #expect(throws: errno(ENOENT)) { try r.fs.link(ex.ino, root, n("ex")) }
        try r.fs.release(exFh)
        // an unlinked-while-open file is no tmpfile
        let (f, fFh) = try r.fs.create(root, n("f"), mode: 0o644, flags: O_RDWR, caller: me)
        try r.fs.unlink(root, n("f"))
        #expect(throws: errno(ENOENT)) { try r.fs.link(f.ino, root, n("f2")) }
        try r.fs.release(fFh)
        // named once, unlinked again while open: an ordinary orphan
        let (t, tFh) = try r.fs.tmpfile(root, mode: 0o600, flags: O_RDWR, caller: me)
        _ = try r.fs.link(t.ino, root, n("t"))
        try r.fs.unlink(root, n("t"))
        #expect(throws: errno(ENOENT)) { try r.fs.link(t.ino, root, n("t2")) }
        try r.fs.release(tFh)
        #expect(try r.keyCount([0x4F]) == 0)
        #expect(try r.fs.listAll(root).filter { $0 != "." && $0 != ".." } == [])
        #expect(try FileSystem.check(store: r.store).errors == [])
        try r.fs.shutdown()
    }

    @Test func permissionsAndOwnershipFollowCreate() throws {
        let r = try Rig.fresh()
        let g = try r.fs.mkdir(root, n("g"), mode: 0o2777, caller: me)
        _ = try r.fs.setattr(g.ino, SetAttr(gid: 4242), caller: nil)
        let user = Caller(uid: 1000, gid: 1000, checksAccess: true)
        let (a, fh) = try r.fs.tmpfile(g.ino, mode: 0o640, flags: O_RDWR, caller: user)
        #expect(a.uid == 1000 && a.gid == 4242)
        try r.fs.release(fh)
        let ro = try r.fs.mkdir(root, n("ro"), mode: 0o755, caller: me)
        #expect(throws: errno(EACCES)) { try r.fs.tmpfile(ro.ino, mode: 0o600, flags: O_RDWR, caller: user) }
        #expect(throws: errno(EINVAL)) { try r.fs.tmpfile(root, mode: 0o600, flags: O_RDONLY, caller: me) }
        let f = try r.fs.createFile(root, "file")
        #expect(throws: errno(ENOTDIR)) { try r.fs.tmpfile(f, mode: 0o600, flags: O_RDWR, caller: me) }
        #expect(try r.keyCount([0x4F]) == 0)
        #expect(try FileSystem.check(store: r.store).errors == [])
        try r.fs.shutdown()
    }
}
