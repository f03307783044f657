import Glibc
import IMRDisk
import KVIMR
import LSMFS
import LSMStore
import SystemPackage
import Synchronization
import Testing

/// Writes are buffered (DirtyFile) until the file's buffer or all buffers pass their budget,
/// the file is closed or fsynced, another operation needs the inode, or the periodic sync runs.
@Suite struct BufferedWriteTests {
    @Test func smallSequentialWritesReadBackAndReachTheStoreAtFlush() throws {
        let r = try Rig.fresh()
        let fs = r.fs
        let (attr, fh) = try fs.create(root, n("log"), mode: 0o644, flags: O_RDWR, caller: me)
        let data = pattern(40 * 4096, seed: 12)
        for i in 0..<40 {
            _ = try fs.writeAll(fh, UInt64(i * 4096), Array(data[i * 4096 ..< (i + 1) * 4096]))
            #expect(try fs.getattr(attr.ino).size == UInt64((i + 1) * 4096))
            if i == 20 {
                #expect(try fs.read(fh, offset: 0, size: 1 << 20) == Array(data[0 ..< 21 * 4096]))
                #expect(try fs.read(fh, offset: 70_000, size: 1000) == Array(data[70_000 ..< 71_000]))
            }
        }
        // all three chunks (two full, the third 32 KiB of 64) still buffered
        #expect(try r.keyCount([0x42]) == 0)
        #expect(try fs.read(fh, offset: 0, size: 1 << 20) == data)
        try fs.flush(fh)
        #expect(try r.keyCount([0x42]) == 3)
        try fs.release(fh)
        #expect(try fs.readAll(attr.ino) == data)
        #expect(try FileSystem.check(store: r.store).errors == [])
    }

    @Test func crashLosesOnlyTheBufferedTailAndStaysConsistent() throws {
        let r = try Rig.fresh()
        let (attr, fh) = try r.fs.create(root, n("f"), mode: 0o644, flags: O_RDWR, caller: me)
        _ = try r.fs.writeAll(fh, 0, pattern(65_536, seed: 1))  // one full chunk: stored
        try r.fs.fsync(fh, datasync: true)
        _ = try r.fs.writeAll(fh, 65_536, [1, 2, 3])             // buffered
        _ = try r.fs.writeAll(fh, 65_539, [4])
        try r.store.sync()
        let r2 = try Rig.open(r.dev.crashed())
        #expect(try FileSystem.check(store: r2.store).errors == [])
        #expect(try r2.fs.getattr(attr.ino).size == 65_536)
        #expect(try r2.fs.readAll(attr.ino) == pattern(65_536, seed: 1))
        try r2.fs.shutdown()
    }

    @Test func fsyncAndPeriodicSyncPersistBufferedWrites() throws {
        let dev = MemoryTrackDevice(trackCount: 2000)
        try KVIMR.format(device: dev)
        let store = try LSMStore(kvimr: try KVIMR(device: dev))
        try FileSystem.format(store: store)
        var o = FSOptions()
        o.syncInterval = 0.1
        let fs = try FileSystem(store: store, options: o)
        let (a, fh) = try fs.create(root, n("p"), mode: 0o644, flags: O_RDWR, caller: me)
        _ = try fs.writeAll(fh, 0, n("periodic"))
        var deadline = 0
        while (try? Rig.open(dev.crashed()).fs.getattr(a.ino).size) != 8 && deadline < 50 {
            usleep(100_000)
            deadline += 1
        }
        #expect(deadline < 50)
        let (b, fh2) = try fs.create(root, n("q"), mode: 0o644, flags: O_RDWR, caller: me)
        _ = try fs.writeAll(fh2, 0, n("fsynced"))
        try fs.fsync(fh2, datasync: false)
        let after = try Rig.open(dev.crashed())
        #expect(try after.fs.readAll(b.ino) == n("fsynced"))
        try fs.release(fh)
        try fs.release(fh2)
        try fs.shutdown()
    }

    @Test func namespaceAndTruncateSeeBufferedWrites() throws {
        let r = try Rig.fresh()
        let fs = r.fs
        let (a, fh) = try fs.create(root, n("a"), mode: 0o644, flags: O_RDWR, caller: me)
        _ = try fs.writeAll(fh, 0, pattern(30_000, seed: 3))
        try fs.rename(root, n("a"), root, n("b"))
        _ = try fs.link(a.ino, root, n("c"))
        #expect(try FileSystem.check(store: r.store).errors == [])
        #expect(try fs.lookup(root, n("c")).size == 30_000)
        _ = try fs.writeAll(fh, 30_000, [9, 9])
        _ = try fs.setattr(a.ino, SetAttr(size: 10))
        _ = try fs.writeAll(fh, 20, [7])
        var expected = Array(pattern(30_000, seed: 3)[0..<10])
        expected += [UInt8](repeating: 0, count: 10) + [7]
        #expect(try fs.read(fh, offset: 0, size: 100) == expected)
        try fs.unlink(root, n("b"))
        try fs.unlink(root, n("c"))  // open: orphan
        _ = try fs.writeAll(fh, 0, [1])
        try fs.release(fh)
        #expect(throws: errno(ENOENT)) { try fs.getattr(a.ino) }
        #expect(try r.keyCount([0x42]) == 0)
        #expect(try FileSystem.check(store: r.store).errors == [])
    }

    /// Reads take no inode lock: they must still see every write that completed before them,
    /// while a writer appends (buffered and chunk-completing writes) and flushes run.
    @Test func lockFreeReadsSeeEveryCompletedWrite() async throws {
        let fs = try Rig.fresh().fs
        let (_, fh) = try fs.create(root, n("grow"), mode: 0o644, flags: O_RDWR, caller: me)
        let total = 400_000, piece = 3_000
        let data = pattern(total, seed: 77)
        let shared = Progress()
        try await withThrowingTaskGroup(of: Void.self) { g in
            g.addTask {
                var off = 0
                while off < total {
                    let n = min(piece, total - off)
                    _ = try fs.writeAll(fh, UInt64(off), Array(data[off ..< off + n]))
                    off += n
                    shared.completed.store(off, ordering: .releasing)
                    if off % 30_000 == 0 { try fs.flush(fh) }
                }
            }
            for _ in 0..<2 {
                g.addTask {
                    let rfh = try fs.open(try fs.lookup(root, n("grow")).ino, flags: O_RDONLY).fh
                    while true {
                        let c = shared.completed.load(ordering: .acquiring)
                        let got = try fs.read(rfh, offset: 0, size: c)
                        if got.count < c || got[0..<c] != data[0..<c] { shared.failures.add(1, ordering: .relaxed) }
                        if c == total { break }
                    }
                    try fs.release(rfh)
                }
            }
            try await g.waitForAll()
        }
        #expect(shared.failures.load(ordering: .relaxed) == 0)
        try fs.release(fh)
    }
}

final class Progress: Sendable {
    let completed = Atomic<Int>(0)
    let failures = Atomic<Int>(0)
}
