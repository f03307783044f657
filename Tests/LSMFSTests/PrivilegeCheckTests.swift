import Glibc
import LSMFS
import Synchronization
import SystemPackage
import Testing

/// Capabilities of non-root callers, the read-only access(2) rule for special files, and
/// killSetID's read-modify-write under the inode lock.
@Suite struct PrivilegeCheckTests {
    static let root = Caller(uid: 0, gid: 0, checksAccess: true)

    /// uid 2000 holding the capability bits `caps` (CapEff).
    static func withCaps(_ caps: UInt64) -> Caller {
        var c = Caller(uid: 2000, gid: 2000, checksAccess: true)
        c.capabilities = { caps }
        return c
    }
    static let none = withCaps(0)
    static let dacOverride = withCaps(1 << 1)
    static let readSearch = withCaps(1 << 2)
    static let fowner = withCaps(1 << 3)
    static let chown = withCaps(1 << 0)

    /// Root's private directory `d` (0700) holding root's file `f` (0600), and `x` (0600).
    func scene() throws -> (fs: FileSystem, d: UInt64, f: UInt64, x: UInt64) {
        let fs = try Rig.fresh().fs
        let d = try fs.mkdir(1, n("d"), mode: 0o700, caller: Self.root).ino
        let f = try fs.createFile(d, "f", Array("secret".utf8))
        let x = try fs.createFile(1, "x", [])
        _ = try fs.setattr(f, SetAttr(mode: 0o600))
        _ = try fs.setattr(x, SetAttr(mode: 0o600))
        return (fs, d, f, x)
    }

    /// Linux's generic_permission after the mode bits deny: CAP_DAC_READ_SEARCH reads files
    /// and reads/searches directories, CAP_DAC_OVERRIDE also writes, and executes a file only
    /// if some x bit is set.
    @Test func dacCapabilitiesOverrideModeBits() throws {
        let (fs, d, f, x) = try scene()
        #expect(throws: errno(EACCES)) { try fs.checkOpen(f, flags: O_RDONLY, caller: Self.none) }
        #expect(throws: errno(EACCES)) { try fs.access(d, mask: X_OK, caller: Self.none) }
        try fs.checkOpen(f, flags: O_RDONLY, caller: Self.readSearch)
        #expect(throws: errno(EACCES)) { try fs.checkOpen(f, flags: O_RDWR, caller: Self.readSearch) }
        _ = try fs.opendir(d, caller: Self.readSearch)
        _ = try fs.lookup(d, n("f"), caller: Self.readSearch)
        #expect(throws: errno(EACCES)) { try fs.lookup(d, n("f"), caller: Self.none) }
        try fs.checkOpen(f, flags: O_RDWR, caller: Self.dacOverride)
        let exec: Int32 = 0o40  // __FMODE_EXEC
        #expect(throws: errno(EACCES)) { try fs.checkOpen(x, flags: O_RDONLY | exec, caller: Self.dacOverride) }  // no x bit
        _ = try fs.setattr(x, SetAttr(mode: 0o700))
        try fs.checkOpen(x, flags: O_RDONLY | exec, caller: Self.dacOverride)
        // access(2) drops a non-root caller's capabilities, but X_OK on a directory (what
        // chdir asks too) keeps them
        #expect(throws: errno(EACCES)) { try fs.access(d, mask: R_OK, caller: Self.dacOverride) }
        #expect(throws: errno(EACCES)) { try fs.access(f, mask: R_OK, caller: Self.readSearch) }
        try fs.access(d, mask: X_OK, caller: Self.readSearch)
    }

    /// CAP_FOWNER stands for ownership (chmod, explicit times, sticky deletes), CAP_CHOWN
    /// for chown/chgrp; without them a non-owner is refused.
    @Test func ownerAndChownCapabilities() throws {
        let (fs, _, _, x) = try scene()
        #expect(throws: errno(EPERM)) { try fs.setattr(x, SetAttr(mode: 0o644), caller: Self.none) }
        _ = try fs.setattr(x, SetAttr(mode: 0o644), caller: Self.fowner)
        _ = try fs.setattr(x, SetAttr(atime: .time(TimeSpec(sec: 5, nsec: 0))), caller: Self.fowner)
        #expect(throws: errno(EPERM)) { try fs.setattr(x, SetAttr(uid: 7), caller: Self.fowner) }
        #expect(throws: errno(EPERM)) { try fs.setattr(x, SetAttr(gid: 7), caller: Self.none) }
        let a = try fs.setattr(x, SetAttr(uid: 7, gid: 8), caller: Self.chown)
        #expect(a.uid == 7 && a.gid == 8 && a.mode & 0o7777 == 0o644)
        // sticky directory: only the entry's or the directory's owner, or CAP_FOWNER, deletes
        let t = try fs.mkdir(1, n("t"), mode: 0o777, caller: Self.root).ino
        _ = try fs.setattr(t, SetAttr(mode: 0o1777))
        _ = try fs.createFile(t, "v", [])
        #expect(throws: errno(EPERM)) { try fs.unlink(t, n("v"), caller: Self.none) }
        try fs.unlink(t, n("v"), caller: Self.fowner)
    }

    /// access(W_OK) on a read-only filesystem: EROFS for files, directories and symlinks only
    /// (Linux's sb_permission); a FIFO or device stays writable (by its mode bits).
    @Test func readOnlyAccessOfSpecialFiles() throws {
        let rig = try Rig.fresh()
        let fifo = try rig.fs.mknod(1, n("fifo"), mode: UInt32(S_IFIFO) | 0o666, rdev: 0, caller: Self.root).ino
        let file = try rig.fs.createFile(1, "file", [])
        let ro = try rig.remount(readOnly: true)
        try ro.fs.access(fifo, mask: W_OK, caller: Self.root)
        try ro.fs.access(fifo, mask: R_OK | W_OK, caller: Self.none)
        #expect(throws: errno(EROFS)) { try ro.fs.access(file, mask: W_OK, caller: Self.root) }
        #expect(throws: errno(EROFS)) { try ro.fs.access(1, mask: W_OK, caller: Self.root) }
        try ro.fs.access(file, mask: R_OK, caller: Self.root)
    }

    /// killSetID against concurrent chmods: the bits are cleared from the record as it is
    /// under the inode lock, so a chmod that ran meanwhile is never undone (before, a mode
    /// computed from an earlier read was stored: 04777 read, chmod 0640, 0777 stored).
    @Test func killSetIDNeverUndoesAConcurrentChmod() throws {
        let fs = try Rig.fresh().fs
        let f = try fs.createFile(1, "f", [1, 2, 3])
        // A killer thread loops while the test alternates 04777 and 0640: right after a
        // chmod to 0640 the mode must read 0640 (a kill of the 04777 before it must not land
        // after it, as 0777).
        let stop = StopFlag()
        let t = Thread { while !stop.flag.load(ordering: .relaxed) { _ = try? fs.killSetID(f) } }
        t.start()
        var undone = 0
        for _ in 0..<1000 {
            _ = try fs.setattr(f, SetAttr(mode: 0o4777))
            _ = try fs.setattr(f, SetAttr(mode: 0o640))
            if try fs.getattr(f).mode & 0o7777 != 0o640 { undone += 1 }
        }
        stop.flag.store(true, ordering: .relaxed)
        t.join()
        #expect(undone == 0)
        // and on its own it clears set-user-ID and group-executable set-group-ID only
        _ = try fs.setattr(f, SetAttr(mode: 0o6755))
        let killed = try fs.killSetID(f)
        #expect((killed?.mode ?? 0) & 0o7777 == 0o755)
        _ = try fs.setattr(f, SetAttr(mode: 0o2745))
        #expect(try fs.killSetID(f) == nil)
        #expect(try fs.getattr(f).mode & 0o7777 == 0o2745)
    }
}

private final class StopFlag: Sendable {
    let flag = Atomic<Bool>(false)
}

/// A joinable pthread running `body` (the test needs a real concurrent thread).
private final class Thread: @unchecked Sendable {
    private var tid = pthread_t()
    private let body: @Sendable () -> Void
    init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    func start() {
        let box = Unmanaged.passRetained(self).toOpaque()
        pthread_create(&tid, nil, { p in
            let thread = Unmanaged<Thread>.fromOpaque(p!).takeRetainedValue()
            thread.body()
            return nil
        }, box)
    }
    func join() { pthread_join(tid, nil) }
}
