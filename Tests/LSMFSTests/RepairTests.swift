import Glibc
import IMRDisk
import KVIMR
import LSMFS
import LSMStore
import SystemPackage
import Testing

/// `FileSystem.repair` (fsck --repair): damage written as raw schema keys (docs/format/keys.md)
/// is found by `check` and fixed so that `check` is clean again, without losing reachable data.
@Suite struct RepairTests {
    static func be(_ v: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: v >> (56 - 8 * UInt64($0))) } }
    static func dentryKey(_ parent: UInt64, _ name: String) -> [UInt8] { [0x44] + be(parent) + Array(name.utf8) }
    static func dentryValue(_ ino: UInt64, type: UInt8) -> [UInt8] {
        (0..<8).map { UInt8(truncatingIfNeeded: ino >> (8 * UInt64($0))) } + [type]
    }

    @Test func repairFixesDanglingUnreachableAndLinkCounts() throws {
        let r = try Rig.fresh()
        let dir = try r.fs.mkdir(root, n("dir"), mode: 0o755, caller: me).ino
        let a = try r.fs.createFile(dir, "a", Array("alpha".utf8))
        let b = try r.fs.createFile(dir, "b", Array("beta".utf8))
        _ = try r.fs.link(a, root, n("a2"))
        try r.fs.shutdown()
        let dev = r.dev.crashed()
        let store = try LSMStore(kvimr: try KVIMR(device: dev))
        // Damage: b loses its only dentry (unreachable), a dentry points at a missing inode,
        // and a2 is removed behind the inode's back (nlink 2, one dentry).
        try store.delete(Self.dentryKey(dir, "b"))
        try store.put(Self.dentryKey(root, "ghost"), Self.dentryValue(999_999, type: UInt8(DT_REG)))
        try store.delete(Self.dentryKey(root, "a2"))
        try store.put([0x58] + Self.be(888_888) + Array("user.stray".utf8), [1, 2, 3])
        let before = try FileSystem.check(store: store)
        #expect(before.errors.contains { $0.contains("unreachable") })
        #expect(before.errors.contains { $0.contains("missing") })
        #expect(before.errors.contains { $0.contains("nlink") })
        #expect(before.errors.contains { $0.contains("xattrs of missing inode 888888") })

        let fixed = try FileSystem.repair(store: store)
        #expect(!fixed.isEmpty)
        let after = try FileSystem.check(store: store)
        #expect(after.errors == [], "left: \(after.errors)")
        try store.close()

        // b is under /lost+found as #ino with its data; a has one link.
        let r3 = try Rig.open(dev.crashed())
        let lf = try r3.fs.lookup(root, n("lost+found")).ino
        let found = try r3.fs.lookup(lf, n("#\(b)"))
        #expect(try r3.fs.readAll(found.ino) == Array("beta".utf8))
        #expect(try r3.fs.getattr(a).nlink == 1)
        #expect(throws: Errno.self) { try r3.fs.lookup(root, n("ghost")) }
        #expect(try r3.fs.readAll(a) == Array("alpha".utf8))
        try r3.fs.shutdown()
    }

    @Test func repairOfACleanFilesystemChangesNothing() throws {
        let r = try Rig.fresh()
        _ = try r.fs.createFile(root, "x", Array(repeating: 7, count: 100_000))
        try r.fs.shutdown()
        let store = try LSMStore(kvimr: try KVIMR(device: r.dev.crashed()))
        #expect(try FileSystem.repair(store: store) == [])
        #expect(try FileSystem.check(store: store).isClean)
        try store.close()
    }
}
