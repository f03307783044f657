import Glibc
import IMRDisk
import KVIMR
import LSMStore
import LSMFS
import SystemPackage
import Testing

@Suite struct CrashTests {
    /// A mixed workload of namespace and data operations, deterministic from `seed`.
    func workload(_ fs: FileSystem, seed: UInt64, steps: Int, tag: String = "") throws {
        var x = seed | 1
        func rnd(_ n: Int) -> Int {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17
            return Int(x % UInt64(n))
        }
        var dirs: [UInt64] = [root]
        var files: [(parent: UInt64, name: String, ino: UInt64)] = []
        var open: [UInt64] = []
        for i in 0..<steps {
            switch rnd(8) {
            case 0:
                let d = try fs.mkdir(dirs[rnd(dirs.count)], n("d\(tag)\(i)"), mode: 0o755, caller: me)
                dirs.append(d.ino)
            case 1, 2:
                let p = dirs[rnd(dirs.count)]
                let ino = try fs.createFile(p, "f\(tag)\(i)", pattern(rnd(150_000), seed: UInt64(i)))
                files.append((p, "f\(tag)\(i)", ino))
            case 3 where !files.isEmpty:
                let f = files.remove(at: rnd(files.count))
                if rnd(2) == 0 { open.append(try fs.open(f.ino, flags: O_RDONLY).fh) }
                try fs.unlink(f.parent, n(f.name))
            case 4 where !files.isEmpty:
                let k = rnd(files.count)
                let to = dirs[rnd(dirs.count)]
                try fs.rename(files[k].parent, n(files[k].name), to, n("r\(tag)\(i)"))
                files[k] = (to, "r\(tag)\(i)", files[k].ino)
            case 5 where !files.isEmpty:
                let f = files[rnd(files.count)]
                _ = try fs.setattr(f.ino, SetAttr(size: UInt64(rnd(200_000))))
            case 6 where !files.isEmpty:
                let f = files[rnd(files.count)]
                let fh = try fs.open(f.ino, flags: O_WRONLY).fh
                _ = try fs.writeAll(fh, UInt64(rnd(100_000)), pattern(rnd(80_000) + 1, seed: UInt64(i)))
                try fs.release(fh)
            case 7 where !files.isEmpty:
                let f = files[rnd(files.count)]
                _ = try fs.link(f.ino, dirs[rnd(dirs.count)], n("l\(tag)\(i)"))
            default:
                break
            }
            if i % 25 == 24, let fh = open.popLast() { try fs.release(fh) }
        }
    }

    @Test func checkIsCleanAfterWorkloadAndRemount() throws {
        var r = try Rig.fresh()
        try workload(r.fs, seed: 42, steps: 300)
        let live = try FileSystem.check(store: r.store)
        #expect(live.errors == [])
        #expect(live.files > 10 && live.directories > 5)
        r = try r.remount()
        let after = try FileSystem.check(store: r.store)
        #expect(after.errors == [])
        #expect(after.pendingOrphans == 0)
        try r.fs.shutdown()
    }

    @Test(arguments: Array(UInt64(1)...10))
    func crashAnywhereLeavesAConsistentTree(seed: UInt64) throws {
        let r = try Rig.fresh()
        try workload(r.fs, seed: seed, steps: 60)
        try r.fs.fsync(nil, datasync: false)
        try workload(r.fs, seed: seed &+ 100, steps: 60, tag: "b")
        // the daemon dies without unmounting; a seeded prefix of unsynced writes survives
        let dev = r.dev.crashed(seed: seed)
        let store = try LSMStore(kvimr: try KVIMR(device: dev))
        let report = try FileSystem.check(store: store)
        #expect(report.errors == [], "seed \(seed)")
        #expect(report.files > 0)
        var o = FSOptions(); o.syncInterval = 0
        let fs = try FileSystem(store: store, options: o)  // reclaims orphans
        #expect(try FileSystem.check(store: store).pendingOrphans == 0)
        try fs.shutdown()
    }
}
