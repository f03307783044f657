import Glibc
import IMRDisk
import KVIMR
import LSMFS
import LSMStore
import Synchronization
import SystemPackage
import Testing

/// renameat2(RENAME_WHITEOUT): the rename as usual plus, in the same batch, a whiteout (a
/// character device 0/0, mode S_IFCHR with no permission bits) at the old name, as ext4 and
/// tmpfs make it for overlayfs.
@Suite struct WhiteoutTests {
    let whiteout = FileSystem.renameWhiteout

    /// Expects `attr` to be a whiteout made by `uid`/`gid`.
    func expectWhiteout(_ attr: FileAttr, uid: UInt32 = me.uid, gid: UInt32 = me.gid,
                        sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(attr.mode == UInt32(S_IFCHR), "mode \(String(attr.mode, radix: 8))", sourceLocation: sourceLocation)
        #expect(attr.rdev == 0 && attr.nlink == 1 && attr.size == 0, sourceLocation: sourceLocation)
        #expect(attr.uid == uid && attr.gid == gid, sourceLocation: sourceLocation)
    }

    @Test func leavesACharDeviceAtTheOldName() throws {
        let r = try Rig.fresh()
        let fs = r.fs
        let a = try fs.createFile(root, "a", n("AAA"))
        let before = try fs.getattr(root)
        usleep(2000)
        try fs.rename(root, n("a"), root, n("b"), flags: whiteout)
        #expect(try fs.lookup(root, n("b")).ino == a)
        #expect(try fs.readAll(a) == n("AAA"))
        let wh = try fs.lookup(root, n("a"))
        #expect(wh.ino != a && wh.ino != root)
        expectWhiteout(wh)
        #expect(wh.mtime == wh.ctime && wh.ctime == wh.atime)
        let dir = try fs.getattr(root)
        #expect(dir.nlink == before.nlink)
        #expect(dir.mtime != before.mtime && dir.ctime == dir.mtime && wh.ctime == dir.ctime)
        #expect(try fs.getattr(a).ctime == dir.ctime)
        #expect(Set(try fs.listAll(root)) == [".", "..", "a", "b"])
        // the next inode number follows the whiteout's
        let c = try fs.createFile(root, "c")
        #expect(c > wh.ino)
        #expect(try FileSystem.check(store: r.store).errors == [])
        // a whiteout is an ordinary inode: it can be unlinked (overlayfs does so)
        try fs.unlink(root, n("a"))
        #expect(throws: errno(ENOENT)) { try fs.getattr(wh.ino) }
        let after = try r.remount()
        #expect(try FileSystem.check(store: after.store).errors == [])
        #expect(try after.fs.lookup(root, n("b")).ino == a)
        try after.fs.shutdown()
    }

    @Test func flagCombinations() throws {
        let r = try Rig.fresh()
        let fs = r.fs
        let a = try fs.createFile(root, "a", n("A"))
        let b = try fs.createFile(root, "b", n("B"))
        let inodes = try r.keyCount([0x49])
        let root0 = try fs.getattr(root)
        #expect(throws: errno(EEXIST)) { try fs.rename(root, n("a"), root, n("b"), flags: whiteout | FileSystem.renameNoReplace) }
        #expect(throws: errno(EINVAL)) { try fs.rename(root, n("a"), root, n("b"), flags: whiteout | FileSystem.renameExchange) }
        #expect(throws: errno(EINVAL)) { try fs.rename(root, n("a"), root, n("b"), flags: 7) }
        #expect(throws: errno(EINVAL)) { try fs.rename(root, n("a"), root, n("b"), flags: 8) }
        #expect(throws: errno(ENOENT)) { try fs.rename(root, n("zz"), root, n("b"), flags: whiteout) }
        // nothing changed
        #expect(try fs.lookup(root, n("a")).ino == a)
        #expect(try fs.lookup(root, n("b")).ino == b)
        #expect(try r.keyCount([0x49]) == inodes)
        #expect(try fs.getattr(root).mtime == root0.mtime)
        // NOREPLACE onto a free name works
        try fs.rename(root, n("a"), root, n("c"), flags: whiteout | FileSystem.renameNoReplace)
        #expect(try fs.lookup(root, n("c")).ino == a)
        expectWhiteout(try fs.lookup(root, n("a")))
        #expect(try r.keyCount([0x49]) == inodes + 1)
        // a hard link renamed onto its other name: nothing happens (the VFS never asks either)
        _ = try fs.link(b, root, n("b2"))
        try fs.rename(root, n("b"), root, n("b2"), flags: whiteout)
        #expect(try fs.lookup(root, n("b")).ino == b)
        #expect(try fs.getattr(b).nlink == 2)
        #expect(try FileSystem.check(store: r.store).errors == [])
    }

    @Test func replacedTargetLosesItsLink() throws {
        let r = try Rig.fresh()
        let fs = r.fs
        let a = try fs.createFile(root, "a", n("new"))
        let closed = try fs.createFile(root, "closed", pattern(100_000, seed: 3))
        try fs.rename(root, n("a"), root, n("closed"), flags: whiteout)
        #expect(throws: errno(ENOENT)) { try fs.getattr(closed) }  // reclaimed in the same batch
        #expect(try r.keyCount([0x42]) == 1)  // a's one chunk
        #expect(try fs.lookup(root, n("closed")).ino == a)
        expectWhiteout(try fs.lookup(root, n("a")))

        // an open target becomes an orphan, readable until released
        let open = try fs.createFile(root, "open", n("old"))
        let linked = try fs.createFile(root, "linked", n("L"))
        _ = try fs.link(linked, root, n("linked2"))
        let fh = try fs.open(open, flags: O_RDONLY).fh
        try fs.rename(root, n("closed"), root, n("open"), flags: whiteout)
        #expect(try fs.read(fh, offset: 0, size: 10) == n("old"))
        #expect(try r.keyCount([0x4F]) == 1)
        #expect(try FileSystem.check(store: r.store).pendingOrphans == 1)
        try fs.release(fh)
        #expect(try r.keyCount([0x4F]) == 0)
        #expect(throws: errno(ENOENT)) { try fs.getattr(open) }
        // a target with another link keeps it
        try fs.rename(root, n("open"), root, n("linked"), flags: whiteout)
        #expect(try fs.getattr(linked).nlink == 1)
        #expect(try fs.lookup(root, n("linked")).ino == a)
        for name in ["a", "closed", "open"] { expectWhiteout(try fs.lookup(root, n(name))) }
        let report = try FileSystem.check(store: r.store)
        #expect(report.errors == [] && report.otherNodes == 3)
    }

    @Test func directorySourceAcrossParents() throws {
        let r = try Rig.fresh()
        let fs = r.fs
        let d1 = try fs.mkdir(root, n("d1"), mode: 0o755, caller: me)
        let d2 = try fs.mkdir(root, n("d2"), mode: 0o755, caller: me)
        let inside = try fs.createFile(d1.ino, "f", n("inside"))
        let empty = try fs.mkdir(d2.ino, n("empty"), mode: 0o755, caller: me)
        let rootLinks = try fs.getattr(root).nlink
        try fs.rename(root, n("d1"), d2.ino, n("moved"), flags: whiteout)
        #expect(try fs.getattr(root).nlink == rootLinks - 1)
        #expect(try fs.getattr(d2.ino).nlink == 4)
        #expect(try fs.lookup(d1.ino, n("..")).ino == d2.ino)
        #expect(try fs.lookup(d1.ino, n("f")).ino == inside)
        expectWhiteout(try fs.lookup(root, n("d1")))
        // a directory over an empty one, same parent, with a whiteout left
        try fs.rename(d2.ino, n("moved"), d2.ino, n("empty"), flags: whiteout)
        #expect(throws: errno(ENOENT)) { try fs.getattr(empty.ino) }
        #expect(try fs.getattr(d2.ino).nlink == 3)
        #expect(try fs.lookup(d2.ino, n("empty")).ino == d1.ino)
        expectWhiteout(try fs.lookup(d2.ino, n("moved")))
        // the usual directory rules still hold
        _ = try fs.createFile(root, "file")
        #expect(throws: errno(ENOTDIR)) { try fs.rename(d2.ino, n("empty"), root, n("file"), flags: whiteout) }
        #expect(throws: errno(EINVAL)) { try fs.rename(d2.ino, n("empty"), d1.ino, n("x"), flags: whiteout) }
        let report = try FileSystem.check(store: r.store)
        #expect(report.errors == [] && report.otherNodes == 2 && report.directories == 3)
    }

    @Test func ownerFollowsTheCallerAndSetGroupIDDirectories() throws {
        let fs = try Rig.fresh().fs
        let plain = try fs.mkdir(root, n("plain"), mode: 0o777, caller: me)
        let sgid = try fs.mkdir(root, n("sgid"), mode: 0o2777, caller: Caller(uid: 0, gid: 4242))
        #expect(sgid.mode & UInt32(S_ISGID) != 0 && sgid.gid == 4242)
        let user = Caller(uid: 1000, gid: 1000, checksAccess: true)
        for d in [plain.ino, sgid.ino] {
            try fs.release(try fs.create(d, n("x"), mode: 0o644, flags: O_RDWR, caller: user).fh)
            try fs.rename(d, n("x"), d, n("y"), flags: whiteout, caller: user)
        }
        expectWhiteout(try fs.lookup(plain.ino, n("x")), uid: 1000, gid: 1000)
        expectWhiteout(try fs.lookup(sgid.ino, n("x")), uid: 1000, gid: 4242)
        // the same permission checks as a rename: no write permission on the old directory
        let ro = try fs.mkdir(root, n("ro"), mode: 0o755, caller: me)
        _ = try fs.createFile(ro.ino, "f")
        #expect(throws: errno(EACCES)) { try fs.rename(ro.ino, n("f"), plain.ino, n("f"), flags: whiteout, caller: user) }
        #expect(try fs.lookup(ro.ino, n("f")).mode & UInt32(S_IFMT) == UInt32(S_IFREG))
    }

    /// Renames with whiteouts and a sync after every second one; the device keeps every prefix
    /// of the writes each sync makes durable (each whole and torn): every rename shows its old or its whole new
    /// state (never a lost name, never a whiteout without the move, never a later rename
    /// without an earlier one), and fsck is clean.
    @Test func crashShowsTheOldOrTheWholeNewState() throws {
        let mem = MemoryTrackDevice(trackCount: 2000)
        try KVIMR.format(device: mem)
        let dev = SnapshotAtSyncDevice(mem)
        let store = try LSMStore(kvimr: try KVIMR(device: dev))
        try FileSystem.format(store: store)
        var o = FSOptions(); o.syncInterval = 0
        let fs = try FileSystem(store: store, options: o)
        let count = 6
        var inos: [UInt64] = []
        for i in 0..<count { inos.append(try fs.createFile(root, "f\(i)", n("file \(i)"))) }
        let target = try fs.createFile(root, "t0", n("target"))  // the first rename replaces a file
        try fs.fsync(nil, datasync: false)
        dev.armed.withLock { $0 = true }
        for i in 0..<count {
            try fs.rename(root, n("f\(i)"), root, n("t\(i)"), flags: whiteout)
            for k in 0..<4 { _ = try fs.createFile(root, "pad\(i)-\(k)", pattern(30_000, seed: UInt64(i * 4 + k))) }
            if i % 2 == 1 { try fs.fsync(nil, datasync: false) }  // crash points between renames too
        }
        try fs.fsync(nil, datasync: false)
        dev.armed.withLock { $0 = false }
        let snapshots = dev.snapshots.withLock { $0 }
        #expect(snapshots.count > 2)
        var newCounts: Set<Int> = []  // how many renames each crash point shows done
        for (label, image) in snapshots {
            let store = try LSMStore(kvimr: try KVIMR(device: image))
            #expect(try FileSystem.check(store: store).errors == [], "\(label)")
            let fs = try FileSystem(store: store, options: o)
            var previousNew = true, done = 0
            for i in 0..<count {
                let old = try fs.lookup(root, n("f\(i)"))
                let to = try? fs.lookup(root, n("t\(i)"))
                if old.ino == inos[i] {
                    #expect(old.mode & UInt32(S_IFMT) == UInt32(S_IFREG), "\(label) rename \(i)")
                    #expect(i == 0 ? to?.ino == target : to == nil, "\(label) rename \(i)")
                    previousNew = false
                } else {
                    expectWhiteout(old)
                    #expect(to?.ino == inos[i], "\(label) rename \(i)")
                    #expect(previousNew, "\(label): rename \(i) survived, an earlier one did not")
                    done += 1
                }
            }
            newCounts.insert(done)
            try fs.shutdown()
        }
        #expect(newCounts == [0, 2, 4, 6], "\(snapshots.count) crash points")
        try fs.shutdown()
    }
}

/// Forwards to a MemoryTrackDevice; while `armed`, each `sync` first records the drive as a
/// crash would leave it after every prefix of the writes that sync covers (whole and torn).
final class SnapshotAtSyncDevice: ForwardingTrackDevice, @unchecked Sendable {
    let base: MemoryTrackDevice
    let armed = Mutex(false)
    let snapshots = Mutex<[(String, MemoryTrackDevice)]>([])
    private let syncs = Mutex(0)
    init(_ base: MemoryTrackDevice) { self.base = base }

    func sync() throws(DeviceError) {
        if armed.withLock({ $0 }) {
            let s = syncs.withLock { $0 += 1; return $0 }
            let writes = base.unsyncedWriteCount
            var taken: [(String, MemoryTrackDevice)] = []
            for keep in 0...writes {
                taken.append(("sync \(s) keep \(keep)/\(writes)", base.crashed(keepUnsynced: keep)))
                if keep > 0 { taken.append(("sync \(s) keep \(keep)/\(writes) torn", base.crashed(keepUnsynced: keep, tearLast: true))) }
            }
            snapshots.withLock { $0 += taken }
        }
        try base.sync()
    }
}
