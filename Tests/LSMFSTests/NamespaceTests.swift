import Glibc
import LSMFS
import SystemPackage
import Testing

@Suite struct NamespaceTests {
    @Test func mkdirRmdirAndLinkCounts() throws {
        let fs = try Rig.fresh().fs
        let d = try fs.mkdir(root, n("d"), mode: 0o755, caller: me)
        #expect(d.isDirectory && d.nlink == 2)
        #expect(try fs.getattr(root).nlink == 3)
        _ = try fs.mkdir(d.ino, n("sub"), mode: 0o700, caller: me)
        #expect(try fs.getattr(d.ino).nlink == 3)
        #expect(throws: errno(EEXIST)) { try fs.mkdir(root, n("d"), mode: 0o755, caller: me) }
        #expect(throws: errno(ENOTEMPTY)) { try fs.rmdir(root, n("d")) }
        #expect(throws: errno(EISDIR)) { try fs.unlink(root, n("d")) }
        _ = try fs.createFile(d.ino, "f")
        #expect(throws: errno(ENOTDIR)) { try fs.rmdir(d.ino, n("f")) }
        #expect(throws: errno(ENOENT)) { try fs.rmdir(d.ino, n("nope")) }
        try fs.rmdir(d.ino, n("sub"))
        try fs.unlink(d.ino, n("f"))
        #expect(try fs.getattr(d.ino).nlink == 2)
        try fs.rmdir(root, n("d"))
        #expect(try fs.getattr(root).nlink == 2)
        #expect(throws: errno(ENOENT)) { try fs.lookup(root, n("d")) }
        #expect(try fs.getattr(d.ino).nlink == 0)  // still held by the kernel (a working directory)
        fs.forget(d.ino, fs.lookupCount(d.ino))
        #expect(throws: errno(ENOENT)) { try fs.getattr(d.ino) }
    }

    @Test func setGroupIDDirectoriesPassTheirGroupOn() throws {
        let fs = try Rig.fresh().fs
        let d = try fs.mkdir(root, n("shared"), mode: 0o775, caller: me)
        _ = try fs.setattr(d.ino, SetAttr(mode: 0o2775, gid: 4242))
        let f = try fs.create(d.ino, n("f"), mode: 0o644, flags: O_RDWR, caller: Caller(uid: 1000, gid: 1000))
        try fs.release(f.fh)
        let sub = try fs.mkdir(d.ino, n("sub"), mode: 0o755, caller: Caller(uid: 1000, gid: 1000))
        #expect(f.attr.gid == 4242 && f.attr.uid == 1000)
        #expect(sub.gid == 4242 && sub.mode & UInt32(S_ISGID) != 0)
        let plain = try fs.mkdir(root, n("plain"), mode: 0o755, caller: Caller(uid: 1000, gid: 1000))
        #expect(plain.gid == 1000 && plain.mode & UInt32(S_ISGID) == 0)
    }

    @Test func parentTimesMoveOnCreateAndUnlink() throws {
        let fs = try Rig.fresh().fs
        _ = try fs.setattr(root, SetAttr(atime: .time(TimeSpec(sec: 1, nsec: 0)), mtime: .time(TimeSpec(sec: 1, nsec: 0))))
        _ = try fs.createFile(root, "x")
        #expect(try fs.getattr(root).mtime.sec > 1)
        _ = try fs.setattr(root, SetAttr(mtime: .time(TimeSpec(sec: 1, nsec: 0))))
        try fs.unlink(root, n("x"))
        let a = try fs.getattr(root)
        #expect(a.mtime.sec > 1 && a.ctime.sec > 1)
    }

    @Test func nameLimits() throws {
        let fs = try Rig.fresh().fs
        let long = String(repeating: "x", count: 256)
        let max = String(repeating: "y", count: 255)
        #expect(throws: errno(ENAMETOOLONG)) { try fs.createFile(root, long) }
        #expect(throws: errno(ENAMETOOLONG)) { try fs.mkdir(root, n(long), mode: 0o755, caller: me) }
        #expect(throws: errno(ENAMETOOLONG)) { try fs.lookup(root, n(long)) }
        let ino = try fs.createFile(root, max)
        #expect(try fs.lookup(root, n(max)).ino == ino)
        #expect(throws: errno(ENAMETOOLONG)) { try fs.rename(root, n(max), root, n(long)) }
        #expect(throws: errno(ENAMETOOLONG)) {
            try fs.symlink([UInt8](repeating: 0x61, count: 4096), root, n("l"), caller: me)
        }
    }

    @Test func symlinkReadlink() throws {
        let fs = try Rig.fresh().fs
        let a = try fs.symlink(n("../target/file"), root, n("ln"), caller: me)
        #expect(a.isSymlink && a.size == 14)
        #expect(try fs.readlink(a.ino) == n("../target/file"))
        #expect(try fs.lookup(root, n("ln")).ino == a.ino)
        let f = try fs.createFile(root, "f")
        #expect(throws: errno(EINVAL)) { try fs.readlink(f) }
        #expect(throws: errno(EEXIST)) { try fs.symlink(n("x"), root, n("f"), caller: me) }
        try fs.unlink(root, n("ln"))
        #expect(throws: errno(ENOENT)) { try fs.getattr(a.ino) }
    }

    @Test func hardLinks() throws {
        let fs = try Rig.fresh().fs
        let ino = try fs.createFile(root, "a", n("data"))
        let d = try fs.mkdir(root, n("d"), mode: 0o755, caller: me)
        let l = try fs.link(ino, d.ino, n("b"))
        #expect(l.ino == ino && l.nlink == 2)
        #expect(throws: errno(EPERM)) { try fs.link(d.ino, root, n("dirlink")) }
        #expect(throws: errno(EEXIST)) { try fs.link(ino, root, n("a")) }
        try fs.unlink(root, n("a"))
        #expect(try fs.getattr(ino).nlink == 1)
        #expect(try fs.readAll(ino) == n("data"))
        try fs.unlink(d.ino, n("b"))
        #expect(throws: errno(ENOENT)) { try fs.getattr(ino) }
    }

    @Test func unlinkWhileOpenKeepsDataUntilRelease() throws {
        let r = try Rig.fresh()
        let fs = r.fs
        let (attr, fh) = try fs.create(root, n("tmp"), mode: 0o600, flags: O_RDWR, caller: me)
        _ = try fs.writeAll(fh, 0, pattern(100_000, seed: 9))
        try fs.unlink(root, n("tmp"))
        #expect(throws: errno(ENOENT)) { try fs.lookup(root, n("tmp")) }
        #expect(try r.keyCount([0x4F]) == 1)  // orphan marker
        #expect(try fs.getattr(attr.ino).nlink == 0)
        #expect(try fs.read(fh, offset: 0, size: 200_000) == pattern(100_000, seed: 9))
        _ = try fs.writeAll(fh, 100_000, [7])
        #expect(try fs.getattr(attr.ino).size == 100_001)
        try fs.release(fh)
        #expect(throws: errno(ENOENT)) { try fs.getattr(attr.ino) }
        #expect(try r.keyCount([0x42]) == 0)
        #expect(try r.keyCount([0x4F]) == 0)
    }

    @Test func readOnlyRefusesChanges() throws {
        let r = try Rig.fresh()
        let ino = try r.fs.createFile(root, "f", [1, 2])
        let ro = try r.remount(readOnly: true)
        #expect(throws: errno(EROFS)) { try ro.fs.createFile(root, "g") }
        #expect(throws: errno(EROFS)) { try ro.fs.unlink(root, n("f")) }
        #expect(throws: errno(EROFS)) { try ro.fs.open(ino, flags: O_WRONLY) }
        #expect(try ro.fs.readAll(ino) == [1, 2])
        try ro.fs.shutdown()
    }
}

@Suite struct LookupCountTests {
    /// Every entry reply takes one kernel reference; forget drops them.
    @Test func entryRepliesCountAndForgetDrops() throws {
        let fs = try Rig.fresh().fs
        let d = try fs.mkdir(root, n("d"), mode: 0o755, caller: me)
        #expect(fs.lookupCount(d.ino) == 1)
        _ = try fs.lookup(root, n("d"))
        _ = try fs.lookup(root, n("d"))
        #expect(fs.lookupCount(d.ino) == 3)
        let (f, fh) = try fs.create(d.ino, n("f"), mode: 0o644, flags: O_RDWR, caller: me)
        _ = try fs.link(f.ino, root, n("g"))
        let s = try fs.symlink(n("f"), d.ino, n("s"), caller: me)
        #expect(fs.lookupCount(f.ino) == 2 && fs.lookupCount(s.ino) == 1)
        #expect(throws: errno(ENOENT)) { try fs.lookup(root, n("missing")) }
        fs.forget(d.ino, 2)
        #expect(fs.lookupCount(d.ino) == 1)
        fs.forget(d.ino, 5)  // more than held: clamps to zero
        #expect(fs.lookupCount(d.ino) == 0)
        try fs.release(fh)
        #expect(fs.openHandleCount == 0)
    }

    @Test func readdirPlusAttributesTakeReferences() throws {
        let fs = try Rig.fresh().fs
        let ino = try fs.createFile(root, "f", n("abc"))
        fs.forget(ino, 1)
        let fh = try fs.opendir(root)
        var attrs: [String: FileAttr?] = [:]
        try fs.readdir(fh, offset: 0) { e in
            attrs[String(decoding: e.name, as: UTF8.self)] = fs.entryAttr(e)
            return true
        }
        fs.releasedir(fh)
        #expect(attrs["."]! == nil && attrs[".."]! == nil)
        #expect(attrs["f"]??.size == 3)
        #expect(fs.lookupCount(ino) == 1)
    }
}
