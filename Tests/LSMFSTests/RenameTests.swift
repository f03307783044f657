import Glibc
import LSMFS
import SystemPackage
import Testing

@Suite struct RenameTests {
    @Test func renameAndReplaceFile() throws {
        let r = try Rig.fresh()
        let fs = r.fs
        let a = try fs.createFile(root, "a", n("AAA"))
        let b = try fs.createFile(root, "b", pattern(100_000, seed: 4))
        try fs.rename(root, n("a"), root, n("b"))
        #expect(throws: errno(ENOENT)) { try fs.lookup(root, n("a")) }
        #expect(try fs.lookup(root, n("b")).ino == a)
        #expect(try fs.readAll(a) == n("AAA"))
        #expect(throws: errno(ENOENT)) { try fs.getattr(b) }  // replaced, closed: reclaimed
        #expect(try r.keyCount([0x42]) == 1)
        #expect(throws: errno(ENOENT)) { try fs.rename(root, n("a"), root, n("c")) }
    }

    @Test func renameDirectoryRules() throws {
        let fs = try Rig.fresh().fs
        let d1 = try fs.mkdir(root, n("d1"), mode: 0o755, caller: me)
        let d2 = try fs.mkdir(root, n("d2"), mode: 0o755, caller: me)
        let sub = try fs.mkdir(d1.ino, n("sub"), mode: 0o755, caller: me)
        _ = try fs.createFile(root, "f")
        _ = try fs.createFile(d2.ino, "inside")
        #expect(throws: errno(EISDIR)) { try fs.rename(root, n("f"), root, n("d1")) }
        #expect(throws: errno(ENOTDIR)) { try fs.rename(root, n("d1"), root, n("f")) }
        #expect(throws: errno(ENOTEMPTY)) { try fs.rename(root, n("d1"), root, n("d2")) }
        #expect(throws: errno(EINVAL)) { try fs.rename(root, n("d1"), sub.ino, n("loop")) }
        #expect(throws: errno(EINVAL)) { try fs.rename(root, n("d1"), d1.ino, n("self")) }
        // move sub from d1 to d2: nlink of both parents and sub's ".." follow
        try fs.rename(d1.ino, n("sub"), d2.ino, n("moved"))
        #expect(try fs.getattr(d1.ino).nlink == 2)
        #expect(try fs.getattr(d2.ino).nlink == 3)
        #expect(try fs.lookup(sub.ino, n("..")).ino == d2.ino)
        // replace an empty directory
        let empty = try fs.mkdir(root, n("empty"), mode: 0o755, caller: me)
        let rootLinks = try fs.getattr(root).nlink
        try fs.rename(root, n("d1"), root, n("empty"))
        #expect(try fs.getattr(root).nlink == rootLinks - 1)
        #expect(try fs.lookup(root, n("empty")).ino == d1.ino)
        #expect(throws: errno(ENOENT)) { try fs.getattr(empty.ino) }
    }

    @Test func renameFlags() throws {
        let fs = try Rig.fresh().fs
        let a = try fs.createFile(root, "a")
        let d = try fs.mkdir(root, n("d"), mode: 0o755, caller: me)
        let b = try fs.createFile(d.ino, "b")
        #expect(throws: errno(EEXIST)) { try fs.rename(root, n("a"), d.ino, n("b"), flags: FileSystem.renameNoReplace) }
        try fs.rename(root, n("a"), root, n("a2"), flags: FileSystem.renameNoReplace)
        #expect(throws: errno(ENOENT)) { try fs.rename(root, n("a2"), root, n("zz"), flags: FileSystem.renameExchange) }
        #expect(throws: errno(EINVAL)) { try fs.rename(root, n("a2"), root, n("zz"), flags: 3) }
        try fs.rename(root, n("a2"), d.ino, n("b"), flags: FileSystem.renameExchange)
        #expect(try fs.lookup(root, n("a2")).ino == b)
        #expect(try fs.lookup(d.ino, n("b")).ino == a)
        // exchange a directory with a file across parents: nlink follows the directory
        let e = try fs.mkdir(root, n("e"), mode: 0o755, caller: me)
        let rootLinks = try fs.getattr(root).nlink
        try fs.rename(root, n("e"), d.ino, n("b"), flags: FileSystem.renameExchange)
        #expect(try fs.getattr(root).nlink == rootLinks - 1)
        #expect(try fs.getattr(d.ino).nlink == 3)
        #expect(try fs.lookup(e.ino, n("..")).ino == d.ino)
    }

    @Test func renameOverOpenFileOrphansIt() throws {
        let r = try Rig.fresh()
        let fs = r.fs
        _ = try fs.createFile(root, "new", n("new"))
        let old = try fs.createFile(root, "old", n("old"))
        let fh = try fs.open(old, flags: O_RDONLY).fh
        try fs.rename(root, n("new"), root, n("old"))
        #expect(try fs.read(fh, offset: 0, size: 10) == n("old"))
        #expect(try r.keyCount([0x4F]) == 1)
        try fs.release(fh)
        #expect(try r.keyCount([0x4F]) == 0)
        #expect(throws: errno(ENOENT)) { try fs.getattr(old) }
    }

    @Test func hardLinkRenameOntoItselfIsNoOp() throws {
        let fs = try Rig.fresh().fs
        let a = try fs.createFile(root, "a")
        _ = try fs.link(a, root, n("b"))
        try fs.rename(root, n("a"), root, n("b"))
        #expect(try fs.lookup(root, n("a")).ino == a)
        #expect(try fs.getattr(a).nlink == 2)
    }
}
