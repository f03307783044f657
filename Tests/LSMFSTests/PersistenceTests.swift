import Glibc
import IMRDisk
import KVIMR
import LSMFS
import LSMStore
import SystemPackage
import Testing

@Suite struct PersistenceTests {
    @Test func remountKeepsTreeAndData() throws {
        var r = try Rig.fresh()
        let d = try r.fs.mkdir(root, n("dir"), mode: 0o750, caller: me)
        let f = try r.fs.createFile(d.ino, "big", pattern(500_000, seed: 5))
        _ = try r.fs.symlink(n("dir/big"), root, n("link"), caller: me)
        r = try r.remount()
        let fs = r.fs
        let d2 = try fs.lookup(root, n("dir"))
        #expect(d2.ino == d.ino && d2.mode == UInt32(S_IFDIR) | 0o750 && d2.nlink == 2)
        let f2 = try fs.lookup(d.ino, n("big"))
        #expect(f2.ino == f && f2.size == 500_000)
        #expect(try fs.readAll(f) == pattern(500_000, seed: 5))
        #expect(try fs.readlink(try fs.lookup(root, n("link")).ino) == n("dir/big"))
        // inode numbers are never reused after a remount
        let g = try fs.createFile(root, "g")
        #expect(g > f)
        try fs.shutdown()
    }

    @Test func orphansAreReclaimedAtMount() throws {
        var r = try Rig.fresh()
        let (attr, fh) = try r.fs.create(root, n("open"), mode: 0o644, flags: O_RDWR, caller: me)
        _ = try r.fs.writeAll(fh, 0, pattern(200_000, seed: 6))
        try r.fs.unlink(root, n("open"))
        _ = fh  // the daemon goes away with the file still open
        r = try r.remount()
        #expect(try r.keyCount([0x4F]) == 0)
        #expect(try r.keyCount([0x42]) == 0)
        #expect(throws: errno(ENOENT)) { try r.fs.getattr(attr.ino) }
        try r.fs.shutdown()
    }

    @Test func fsyncedDataSurvivesCrash() throws {
        let r = try Rig.fresh()
        let (attr, fh) = try r.fs.create(root, n("durable"), mode: 0o644, flags: O_RDWR, caller: me)
        _ = try r.fs.writeAll(fh, 0, pattern(150_000, seed: 7))
        try r.fs.fsync(fh, datasync: false)
        let crashed = r.dev.crashed()  // no shutdown: the daemon dies here
        let r2 = try Rig.open(crashed)
        #expect(try r2.fs.lookup(root, n("durable")).ino == attr.ino)
        #expect(try r2.fs.readAll(attr.ino) == pattern(150_000, seed: 7))
        try r2.fs.shutdown()
    }

    @Test func unformattedStoreIsRejected() throws {
        let dev = MemoryTrackDevice(trackCount: 200)
        try KVIMR.format(device: dev)
        let store = try LSMStore(kvimr: try KVIMR(device: dev))
        #expect(throws: FSError.self) { try FileSystem(store: store, options: FSOptions()) }
        try FileSystem.format(store: store)
        #expect(throws: FSError.self) { try FileSystem.format(store: store) }
    }

    @Test func dumpDescribesEveryKey() throws {
        let r = try Rig.fresh()
        let d = try r.fs.mkdir(root, n("dir"), mode: 0o755, caller: me)
        _ = try r.fs.createFile(d.ino, "f", pattern(70_000, seed: 2))
        _ = try r.fs.symlink(n("dir/f"), root, n("l"), caller: me)
        var lines: [String] = []
        try r.store.scan(from: [], to: nil) { k, v in
            lines.append(FileSystem.describe(key: k, value: v) ?? "?")
            return true
        }
        #expect(!lines.contains("?"))
        #expect(lines.contains { $0.hasPrefix("record lsmfs v\(FSFormat.formatVersion) chunk=65536") })
        #expect(lines.contains { $0.hasPrefix("dentry 1/\"dir\" -> \(d.ino) (dir)") })
        #expect(lines.filter { $0.hasPrefix("chunk ") }.count == 2)
        #expect(lines.contains { $0.contains("-> \"dir/f\"") })
        #expect(FileSystem.describe(key: [0x5A], value: []) == nil)
    }
}
