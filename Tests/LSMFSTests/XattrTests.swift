import Glibc
import LSMFS
import SystemPackage
import Testing

/// Extended attributes on the real stack: flags, errnos, the no-xattr fast path staying right
/// across set/remove, persistence, and reclaim with the inode.
@Suite struct XattrTests {
    func set(_ fs: FileSystem, _ ino: UInt64, _ name: String, _ value: String, flags: Int32 = 0) throws(Errno) {
        let bytes = Array(value.utf8)
        let p = UnsafeMutableRawBufferPointer.allocate(byteCount: max(bytes.count, 1), alignment: 1)
        defer { p.deallocate() }
        p.copyBytes(from: bytes)
        try fs.setxattr(ino, n(name), UnsafeRawBufferPointer(rebasing: p[0..<bytes.count]), flags: flags)
    }

    /// Names lsmfs does not store are "unsupported", not "absent": POSIX ACLs always, and
    /// security.selinux until a value is set (ls -l then stops asking for the device).
    @Test func unsupportedNamesSayEOPNOTSUPP() throws {
        let r = try Rig.fresh()
        let f = try r.fs.createFile(root, "f", Array("x".utf8))
        #expect(throws: errno(EOPNOTSUPP)) { try r.fs.getxattr(f, n("system.posix_acl_access")) }
        #expect(throws: errno(EOPNOTSUPP)) { try r.fs.getxattr(f, n("security.selinux")) }
        try set(r.fs, f, "user.a", "1")  // the slow path (inode holds xattrs) says the same
        #expect(throws: errno(EOPNOTSUPP)) { try r.fs.getxattr(f, n("security.selinux")) }
        #expect(throws: errno(ENODATA)) { try r.fs.getxattr(f, n("security.capability")) }
        try set(r.fs, f, "security.selinux", "unconfined_u:object_r:user_home_t:s0")
        #expect(try r.fs.getxattr(f, n("security.selinux")) == Array("unconfined_u:object_r:user_home_t:s0".utf8))
    }

    @Test func setGetListRemove() throws {
        let r = try Rig.fresh()
        let f = try r.fs.createFile(root, "f", Array("x".utf8))
        // Absent (and the negative answer cached) before any set.
        #expect(throws: errno(ENODATA)) { try r.fs.getxattr(f, n("security.capability")) }
        #expect(throws: errno(ENODATA)) { try r.fs.getxattr(f, n("security.capability")) }
        try set(r.fs, f, "user.a", "1")
        #expect(try r.fs.getxattr(f, n("user.a")) == Array("1".utf8))
        #expect(throws: errno(EEXIST)) { try self.set(r.fs, f, "user.a", "2", flags: FSFormat.xattrCreate) }
        #expect(throws: errno(ENODATA)) { try self.set(r.fs, f, "user.b", "2", flags: FSFormat.xattrReplace) }
        #expect(throws: errno(EOPNOTSUPP)) { try self.set(r.fs, f, "nonamespace", "2") }
        #expect(throws: errno(ERANGE)) { try self.set(r.fs, f, "user." + String(repeating: "n", count: 300), "2") }
        try set(r.fs, f, "trusted.t", "3")
        #expect(try r.fs.listxattr(f, caller: Caller(uid: 0, gid: 0)) == Array("trusted.t\0user.a\0".utf8))
        #expect(try r.fs.listxattr(f, caller: Caller(uid: 1000, gid: 1000)) == Array("user.a\0".utf8))
        try r.fs.removexattr(f, n("user.a"))
        #expect(throws: errno(ENODATA)) { try r.fs.removexattr(f, n("user.a")) }
        #expect(throws: errno(ENODATA)) { try r.fs.getxattr(f, n("user.a")) }
        #expect(try r.fs.getxattr(f, n("trusted.t")) == Array("3".utf8))
        let r2 = try r.remount()
        #expect(try r2.fs.getxattr(f, n("trusted.t")) == Array("3".utf8))
        try r2.fs.unlink(root, n("f"))
        #expect(try r2.keyCount([FSFormat.xattrPrefix]) == 0)
        #expect(try FileSystem.check(store: r2.store).isClean)
    }

    @Test func chownDropsCapabilityAndSetID() throws {
        let r = try Rig.fresh()
        let f = try r.fs.createFile(root, "f", Array("x".utf8))
        var s = SetAttr()
        s.mode = 0o6755
        _ = try r.fs.setattr(f, s)
        try set(r.fs, f, "security.capability", "cap")
        var c = SetAttr()
        c.uid = 1000
        let a = try r.fs.setattr(f, c)
        #expect(a.mode & 0o7777 == 0o755)
        #expect(throws: errno(ENODATA)) { try r.fs.getxattr(f, n("security.capability")) }
    }
}
