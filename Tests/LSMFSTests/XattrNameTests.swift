import Glibc
import LSMFS
import SystemPackage
import Testing

/// Names Linux's xattr_resolve_name refuses before any filesystem sees them: a bare namespace
/// prefix is EINVAL (on ext4 `setfattr -n user.` fails so), an unknown namespace EOPNOTSUPP.
@Suite struct XattrNameTests {
    func set(_ fs: FileSystem, _ ino: UInt64, _ name: String) throws(Errno) {
        let p = UnsafeMutableRawBufferPointer.allocate(byteCount: 1, alignment: 1)
        defer { p.deallocate() }
        p[0] = 1
        try fs.setxattr(ino, n(name), UnsafeRawBufferPointer(p), flags: 0)
    }

    @Test func barePrefixIsInvalid() throws {
        let fs = try Rig.fresh().fs
        let f = try fs.createFile(1, "f", [])
        for name in ["user.", "trusted.", "security."] {
            #expect(throws: errno(EINVAL)) { try set(fs, f, name) }
            #expect(throws: errno(EINVAL)) { try fs.getxattr(f, n(name)) }
            #expect(throws: errno(EINVAL)) { try fs.removexattr(f, n(name)) }
        }
        #expect(throws: errno(EOPNOTSUPP)) { try set(fs, f, "foo.a") }
        #expect(throws: errno(EOPNOTSUPP)) { try fs.removexattr(f, n("foo.a")) }
        try set(fs, f, "user.a")
        #expect(try fs.getxattr(f, n("user.a")) == [1])
    }
}
