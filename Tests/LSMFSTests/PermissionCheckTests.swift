import Glibc
import LSMFS
import SystemPackage
import Testing

/// The filesystem's own permission checks (callers with `checksAccess`, as the daemon builds
/// them for a mount without `default_permissions`): each rule of Linux's VFS it stands in for.
@Suite struct PermissionCheckTests {
    static let alice = Caller(uid: 1000, gid: 1000, checksAccess: true)
    static let bob = Caller(uid: 2000, gid: 2000, checksAccess: true)
    /// bob with alice's group as a supplementary group.
    static let bobInStaff = Caller(uid: 2000, gid: 2000, checksAccess: true, supplementaryGroups: staffGroups)
    static let root = Caller(uid: 0, gid: 0, checksAccess: true)

    /// A world-writable directory `pub` (mode `pubMode`) with alice's file `f` (mode `fileMode`).
    func scene(pubMode: UInt32 = 0o777, fileMode: UInt32 = 0o640) throws -> (fs: FileSystem, pub: UInt64, f: UInt64) {
        let fs = try Rig.fresh().fs
        let pub = try fs.mkdir(1, n("pub"), mode: 0o777, caller: Self.root).ino
        let c = try fs.create(pub, n("f"), mode: fileMode, flags: O_RDWR, caller: Self.alice)
        try fs.release(c.fh)
        _ = try fs.setattr(pub, SetAttr(mode: pubMode))
        return (fs, pub, c.attr.ino)
    }

    @Test func openFollowsOwnerGroupOtherBits() throws {
        let (fs, _, f) = try scene(fileMode: 0o640)
        try fs.checkOpen(f, flags: O_RDWR, caller: Self.alice)
        #expect(throws: errno(EACCES)) { try fs.checkOpen(f, flags: O_RDONLY, caller: Self.bob) }
        try fs.checkOpen(f, flags: O_RDONLY, caller: Self.bobInStaff)
        #expect(throws: errno(EACCES)) { try fs.checkOpen(f, flags: O_WRONLY, caller: Self.bobInStaff) }
        #expect(throws: errno(EACCES)) { try fs.checkOpen(f, flags: O_RDONLY | O_TRUNC, caller: Self.bobInStaff) }
        try fs.checkOpen(f, flags: O_RDWR, caller: Self.root)
        // The owner class decides alone: an owner without a bit is refused what others get.
        _ = try fs.setattr(f, SetAttr(mode: 0o077))
        #expect(throws: errno(EACCES)) { try fs.checkOpen(f, flags: O_RDONLY, caller: Self.alice) }
        try fs.checkOpen(f, flags: O_RDWR, caller: Self.bob)
        // Unchecked callers (the kernel checked) pass.
        try fs.checkOpen(f, flags: O_RDWR, caller: nil)
        try fs.checkOpen(f, flags: O_RDWR, caller: Caller(uid: 5, gid: 5))
    }

    @Test func accessAndExecute() throws {
        let (fs, pub, f) = try scene(fileMode: 0o644)
        try fs.access(f, mask: R_OK, caller: Self.bob)
        #expect(throws: errno(EACCES)) { try fs.access(f, mask: W_OK, caller: Self.bob) }
        #expect(throws: errno(EACCES)) { try fs.access(f, mask: X_OK, caller: Self.root) }  // no x bit at all
        try fs.access(f, mask: R_OK | W_OK, caller: Self.root)
        try fs.access(pub, mask: X_OK, caller: Self.bob)
        _ = try fs.setattr(f, SetAttr(mode: 0o744))
        try fs.access(f, mask: X_OK, caller: Self.root)
        try fs.access(f, mask: X_OK, caller: Self.alice)
        #expect(throws: errno(EACCES)) { try fs.access(f, mask: X_OK, caller: Self.bob) }
        #expect(throws: errno(EACCES)) { try fs.checkOpen(f, flags: O_RDONLY | 0o40, caller: Self.bob) }  // exec
        // execve asks MAY_EXEC only: an execute-only file runs, though it cannot be read
        _ = try fs.setattr(f, SetAttr(mode: 0o711))
        try fs.checkOpen(f, flags: O_RDONLY | 0o40, caller: Self.bob)
        #expect(throws: errno(EACCES)) { try fs.checkOpen(f, flags: O_RDONLY, caller: Self.bob) }
    }

    @Test func lookupNeedsSearchPermission() throws {
        let (fs, pub, _) = try scene(pubMode: 0o770)
        _ = try fs.setattr(pub, SetAttr(uid: 1000, gid: 1000))
        #expect(throws: errno(EACCES)) { try fs.lookup(pub, n("f"), caller: Self.bob) }
        #expect(throws: errno(EACCES)) { try fs.lookup(pub, n("missing"), caller: Self.bob) }
        _ = try fs.lookup(pub, n("f"), caller: Self.bobInStaff)
        _ = try fs.lookup(pub, n("f"), caller: Self.root)
        #expect(throws: errno(EACCES)) { try fs.opendir(pub, caller: Self.bob) }
        fs.releasedir(try fs.opendir(pub, caller: Self.alice))
        // a readable directory without x: names, but no entries with attributes (dentries)
        _ = try fs.setattr(pub, SetAttr(mode: 0o744))
        fs.releasedir(try fs.opendir(pub, caller: Self.bob))
        #expect(!fs.maySearch(pub, Self.bob))
        #expect(fs.maySearch(pub, Self.alice) && fs.maySearch(pub, Self.root) && fs.maySearch(pub, nil))
    }

    @Test func createAndRemoveNeedWriteAndSearchOnTheDirectory() throws {
        let (fs, pub, _) = try scene(pubMode: 0o755)
        _ = try fs.setattr(pub, SetAttr(uid: 1000, gid: 1000))
        #expect(throws: errno(EACCES)) { try fs.mkdir(pub, n("d"), mode: 0o755, caller: Self.bob) }
        #expect(throws: errno(EACCES)) { try fs.create(pub, n("g"), mode: 0o644, flags: O_RDWR, caller: Self.bob) }
        #expect(throws: errno(EACCES)) { try fs.symlink(n("f"), pub, n("l"), caller: Self.bob) }
        #expect(throws: errno(EEXIST)) { try fs.mkdir(pub, n("f"), mode: 0o755, caller: Self.bob) }  // EEXIST first
        #expect(throws: errno(EACCES)) { try fs.unlink(pub, n("f"), caller: Self.bob) }
        let f = try fs.lookup(pub, n("f"))
        // (alice's 0640 file: fs.protected_hardlinks refuses bob first, as Linux's may_linkat)
        #expect(throws: errno(FileSystem.protectedHardlinks ? EPERM : EACCES)) { try fs.link(f.ino, pub, n("f2"), caller: Self.bob) }
        _ = try fs.setattr(f.ino, SetAttr(mode: 0o666))
        #expect(throws: errno(EACCES)) { try fs.link(f.ino, pub, n("f2"), caller: Self.bob) }
        #expect(throws: errno(EACCES)) { try fs.rename(pub, n("f"), pub, n("g"), caller: Self.bob) }
        let d = try fs.mkdir(pub, n("d"), mode: 0o755, caller: Self.alice)
        #expect(throws: errno(EACCES)) { try fs.rmdir(pub, n("d"), caller: Self.bob) }
        try fs.rmdir(pub, n("d"), caller: Self.root)
        #expect(d.uid == 1000)
        try fs.rename(pub, n("f"), pub, n("g"), caller: Self.alice)
        try fs.unlink(pub, n("g"), caller: Self.alice)
    }

    @Test func stickyDirectoriesKeepOthersEntries() throws {
        let (fs, pub, _) = try scene(pubMode: 0o1777)
        #expect(throws: errno(EPERM)) { try fs.unlink(pub, n("f"), caller: Self.bob) }
        #expect(throws: errno(EPERM)) { try fs.rename(pub, n("f"), pub, n("g"), caller: Self.bob) }
        let mine = try fs.create(pub, n("mine"), mode: 0o644, flags: O_RDWR, caller: Self.bob)
        try fs.release(mine.fh)
        // Replacing alice's file by a rename is removing it: refused too.
        #expect(throws: errno(EPERM)) { try fs.rename(pub, n("mine"), pub, n("f"), caller: Self.bob) }
        try fs.rename(pub, n("mine"), pub, n("mine2"), caller: Self.bob)
        try fs.unlink(pub, n("mine2"), caller: Self.bob)
        try fs.unlink(pub, n("f"), caller: Self.root)
    }

    @Test func movingADirectoryNeedsWriteOnIt() throws {
        let fs = try Rig.fresh().fs
        let a = try fs.mkdir(1, n("a"), mode: 0o777, caller: Self.root).ino
        let b = try fs.mkdir(1, n("b"), mode: 0o777, caller: Self.root).ino
        _ = try fs.mkdir(a, n("d"), mode: 0o555, caller: Self.bob)
        #expect(throws: errno(EACCES)) { try fs.rename(a, n("d"), b, n("d"), caller: Self.bob) }
        try fs.rename(a, n("d"), a, n("e"), caller: Self.bob)  // same parent: ".." unchanged
        try fs.rename(a, n("e"), b, n("d"), caller: Self.root)
    }

    @Test func setattrOwnershipRules() throws {
        let (fs, _, f) = try scene(fileMode: 0o666)
        #expect(throws: errno(EPERM)) { try fs.setattr(f, SetAttr(mode: 0o777), caller: Self.bob) }
        #expect(throws: errno(EPERM)) { try fs.setattr(f, SetAttr(uid: 2000), caller: Self.bob) }
        #expect(throws: errno(EPERM)) { try fs.setattr(f, SetAttr(uid: 2000), caller: Self.alice) }
        _ = try fs.setattr(f, SetAttr(uid: 1000), caller: Self.alice)  // chown to oneself: a no-op
        #expect(throws: errno(EPERM)) { try fs.setattr(f, SetAttr(gid: 2000), caller: Self.alice) }
        // chgrp to a group the owner is in
        let staffAlice = Caller(uid: 1000, gid: 1000, checksAccess: true, supplementaryGroups: otherGroups)
        #expect(try fs.setattr(f, SetAttr(gid: 3000), caller: staffAlice).gid == 3000)
        // explicit times: the owner; "now": anyone who may write
        #expect(throws: errno(EPERM)) {
            try fs.setattr(f, SetAttr(atime: .time(TimeSpec(sec: 1, nsec: 0)), mtime: .time(TimeSpec(sec: 1, nsec: 0))), caller: Self.bob)
        }
        _ = try fs.setattr(f, SetAttr(atime: .now, mtime: .now), caller: Self.bob)
        _ = try fs.setattr(f, SetAttr(mode: 0o644), caller: Self.alice)
        #expect(throws: errno(EACCES)) { try fs.setattr(f, SetAttr(atime: .now, mtime: .now), caller: Self.bob) }
        // truncate by path needs write permission; on an open handle the open checked it
        #expect(throws: errno(EACCES)) { try fs.setattr(f, SetAttr(size: 0), caller: Self.bob) }
        _ = try fs.setattr(f, SetAttr(size: 0), caller: Self.bob, viaHandle: true)
        _ = try fs.setattr(f, SetAttr(uid: 2000), caller: Self.root)
        #expect(try fs.getattr(f).uid == 2000)
    }

    @Test func setIDBitsOnChmod() throws {
        let (fs, _, f) = try scene(fileMode: 0o666)
        // a chmod by someone outside the file's group loses set-group-ID silently
        _ = try fs.setattr(f, SetAttr(gid: 3000), caller: Self.root)
        #expect(try fs.setattr(f, SetAttr(mode: 0o2755), caller: Self.alice).mode & 0o7777 == 0o755)
        #expect(try fs.setattr(f, SetAttr(mode: 0o4755), caller: Self.alice).mode & 0o7777 == 0o4755)
        // a non-owner may not chmod, not even to clear set-ID bits of a file it cannot write...
        #expect(throws: errno(EPERM)) { try fs.setattr(f, SetAttr(mode: 0o755), caller: Self.bob) }
        #expect(try fs.getattr(f).mode & 0o7777 == 0o4755)
        // ...but the kernel's "kill set-ID" on a write by a non-owner who may write only clears bits
        _ = try fs.setattr(f, SetAttr(mode: 0o4757), caller: Self.alice)
        #expect(try fs.setattr(f, SetAttr(mode: 0o757), caller: Self.bob).mode & 0o7777 == 0o757)
        // and a no-op or adding bits is a chmod
        #expect(throws: errno(EPERM)) { try fs.setattr(f, SetAttr(mode: 0o757), caller: Self.bob) }
        #expect(try fs.setattr(f, SetAttr(mode: 0o2755), caller: Self.root).mode & 0o7777 == 0o2755)
    }

    /// The empty SETATTR a kill of set-ID bits arrives as (KILLPRIV_V2) is also what
    /// chown(f, -1, -1) sends: only the owner or a writer may clear bits that way; Linux refuses
    /// anyone else (EPERM: the kill adds a mode change, which needs the owner).
    @Test func killSetIDNeedsTheOwnerOrAWriter() throws {
        let (fs, _, f) = try scene(fileMode: 0o644)
        _ = try fs.setattr(f, SetAttr(mode: 0o4755))
        #expect(throws: errno(EPERM)) { try fs.killSetID(f, caller: Self.bob) }
        #expect(try fs.getattr(f).mode & 0o7777 == 0o4755)
        _ = try fs.setattr(f, SetAttr(mode: 0o4757))
        #expect(try fs.killSetID(f, caller: Self.bob).map { $0.mode & 0o7777 } == 0o757)
        _ = try fs.setattr(f, SetAttr(mode: 0o4755))
        #expect(try fs.killSetID(f, caller: Self.alice).map { $0.mode & 0o7777 } == 0o755)
        // nothing to clear: no error for anyone
        #expect(try fs.killSetID(f, caller: Self.bob) == nil)
    }

    /// fs.protected_hardlinks: others' files only if one may read and write them.
    @Test func hardLinksOfOthersFilesFollowProtectedHardlinks() throws {
        let (fs, pub, f) = try scene(fileMode: 0o640)
        if FileSystem.protectedHardlinks {
            #expect(throws: errno(EPERM)) { try fs.link(f, pub, n("l"), caller: Self.bob) }
            _ = try fs.setattr(f, SetAttr(mode: 0o4666))
            #expect(throws: errno(EPERM)) { try fs.link(f, pub, n("l"), caller: Self.bob) }
        }
        _ = try fs.setattr(f, SetAttr(mode: 0o666))
        _ = try fs.link(f, pub, n("l"), caller: Self.bob)
        _ = try fs.setattr(f, SetAttr(mode: 0o600))
        _ = try fs.link(f, pub, n("l2"), caller: Self.alice)
    }

    @Test func userXattrsFollowFilePermissions() throws {
        let (fs, pub, f) = try scene(pubMode: 0o1777, fileMode: 0o640)
        let v: [UInt8] = [1]
        try setUserXattr(fs, f, "user.a", Self.alice)
        #expect(try fs.getxattr(f, n("user.a"), caller: Self.bobInStaff) == v)
        #expect(throws: errno(EACCES)) { try fs.getxattr(f, n("user.a"), caller: Self.bob) }
        #expect(throws: errno(EACCES)) { try setUserXattr(fs, f, "user.b", Self.bobInStaff) }
        #expect(throws: errno(EACCES)) { try fs.removexattr(f, n("user.a"), caller: Self.bob) }
        // sticky directory: only its owner writes user.* names on it
        #expect(throws: errno(EPERM)) { try setUserXattr(fs, pub, "user.a", Self.bob) }
        try fs.removexattr(f, n("user.a"), caller: Self.alice)
    }
}

@Sendable private func staffGroups() -> [UInt32] { [1000] }
@Sendable private func otherGroups() -> [UInt32] { [3000] }

private func setUserXattr(_ fs: FileSystem, _ ino: UInt64, _ name: String, _ caller: Caller) throws(Errno) {
    let p = UnsafeMutableRawBufferPointer.allocate(byteCount: 1, alignment: 1)
    defer { p.deallocate() }
    p[0] = 1
    try fs.setxattr(ino, n(name), UnsafeRawBufferPointer(p), flags: 0, caller: caller)
}
