import Glibc
import IMRDisk
import KVIMR
import LSMFS
import LSMStore
import SystemPackage
import Testing

/// The multi-chunk write buffer (DirtyFile): random and sequential writes over many chunks
/// are buffered, read back through the buffer and the store, reach the store in one batch per
/// flush (or when a budget fills), and a crash keeps either all of a file's buffered writes or
/// none of them.
@Suite struct WriteBufferTests {
    /// A model of the file next to the filesystem: random partial writes over a file with
    /// stored chunks, holes and buffered chunks; reads at random offsets must match the model
    /// before and after each flush.
    @Test func randomWritesOverStoredAndBufferedChunksReadBack() throws {
        let r = try Rig.fresh()
        let fs = r.fs
        let (attr, fh) = try fs.create(root, n("rand"), mode: 0o644, flags: O_RDWR, caller: me)
        var model = pattern(10 * 65_536 + 1234, seed: 5)
        _ = try fs.writeAll(fh, 0, model)
        try fs.flush(fh)
        // A hole: chunks 12-13 never written, chunk 14 partly.
        _ = try fs.writeAll(fh, 14 * 65_536 + 100, [1, 2, 3])
        model += [UInt8](repeating: 0, count: 14 * 65_536 + 100 - model.count) + [1, 2, 3]
        var rng = SystemRandomNumberGenerator()
        for round in 0..<6 {
            for _ in 0..<40 {
                let off = Int.random(in: 0..<(16 * 65_536), using: &rng)
                let len = Int.random(in: 1...9000, using: &rng)
                let bytes = (0..<len).map { _ in UInt8.random(in: 0...255, using: &rng) }
                _ = try fs.writeAll(fh, UInt64(off), bytes)
                if model.count < off + len { model += [UInt8](repeating: 0, count: off + len - model.count) }
                model.replaceSubrange(off..<(off + len), with: bytes)
                let ro = Int.random(in: 0..<model.count, using: &rng)
                let rl = Int.random(in: 1...200_000, using: &rng)
                #expect(try fs.read(fh, offset: UInt64(ro), size: rl) == Array(model[ro..<min(model.count, ro + rl)]))
            }
            #expect(try fs.getattr(attr.ino).size == UInt64(model.count))
            if round % 2 == 0 { try fs.flush(fh) }
            #expect(try fs.read(fh, offset: 0, size: model.count + 10) == model)
        }
        try fs.release(fh)
        try expectStoredAcrossRemount(r, attr.ino, model)
    }

    /// Partial-chunk writes into many chunks, then a crash before any flush: the file is what
    /// was last stored (all of the buffered writes lost together, nothing torn); after an
    /// fsync all of them survive.
    @Test func crashKeepsAllOrNoneOfAFilesBufferedWrites() throws {
        let r = try Rig.fresh()
        let (attr, fh) = try r.fs.create(root, n("f"), mode: 0o644, flags: O_RDWR, caller: me)
        let base = pattern(8 * 65_536, seed: 9)
        _ = try r.fs.writeAll(fh, 0, base)
        try r.fs.fsync(fh, datasync: false)
        var changed = base
        for i in 0..<8 {
            let off = i * 65_536 + 1000 * (i + 1)
            _ = try r.fs.writeAll(fh, UInt64(off), [UInt8](repeating: UInt8(i + 1), count: 4096))
            changed.replaceSubrange(off..<(off + 4096), with: [UInt8](repeating: UInt8(i + 1), count: 4096))
        }
        _ = try r.fs.writeAll(fh, UInt64(base.count + 70_000), [7])   // grows the file, with a hole
        changed += [UInt8](repeating: 0, count: 70_000) + [7]
        try r.store.sync()   // the store alone: the buffers are not in it
        let crashed = try Rig.open(r.dev.crashed())
        #expect(try crashed.fs.readAll(attr.ino) == base)
        #expect(try FileSystem.check(store: crashed.store).errors == [])
        try crashed.fs.shutdown()

        try r.fs.fsync(fh, datasync: true)
        let synced = try Rig.open(r.dev.crashed())
        #expect(try synced.fs.readAll(attr.ino) == changed)
        #expect(try FileSystem.check(store: synced.store).errors == [])
        try synced.fs.shutdown()
        try r.fs.release(fh)
    }

    /// A file's buffer goes to the store by itself once it passes its budget (16 MiB), so a
    /// long sequential writer holds a bounded amount; blocks count whole-chunk overwrites of
    /// stored chunks right (their stored length is looked up, not read).
    @Test func aFullBufferFlushesItselfAndBlocksStayRight() throws {
        let r = try Rig.fresh(trackCount: 4000)
        let fs = r.fs
        let (attr, fh) = try fs.create(root, n("big"), mode: 0o644, flags: O_RDWR, caller: me)
        let piece = pattern(1 << 20, seed: 4)
        for i in 0..<20 { _ = try fs.writeAll(fh, UInt64(i << 20), piece) }
        // 16 MiB reached the store on their own; the rest is still buffered.
        #expect(try r.keyCount([FSFormat.chunkPrefix]) == 256)
        #expect(try fs.getattr(attr.ino).size == 20 << 20)
        // Overwrite stored whole chunks and a partial one; blocks must not change.
        let blocks = try fs.getattr(attr.ino).blocks
        _ = try fs.writeAll(fh, 65_536, pattern(3 * 65_536, seed: 8))
        _ = try fs.writeAll(fh, 10, [1])
        #expect(try fs.getattr(attr.ino).blocks == blocks)
        try fs.release(fh)
        #expect(try fs.getattr(attr.ino).blocks == blocks)
        let rfh = try fs.open(attr.ino, flags: O_RDONLY).fh
        let got = try fs.read(rfh, offset: 0, size: 1 << 20)
        try fs.release(rfh)
        var expected = piece
        expected.replaceSubrange(65_536..<(4 * 65_536), with: pattern(3 * 65_536, seed: 8))
        expected[10] = 1
        #expect(got == expected)
        #expect(try FileSystem.check(store: r.store).errors == [])
    }

    /// Small writes into stored chunks are buffered without reading the stored content (only
    /// the written ranges): reads, a times-only setattr, a truncate, the flush and blocks all
    /// see the stored bytes under the written ones, also when the stored chunk is shorter than
    /// the write's end.
    @Test func partialWritesIntoStoredChunksComposeWithTheStoredBytes() throws {
        let r = try Rig.fresh()
        let fs = r.fs
        let (attr, fh) = try fs.create(root, n("p"), mode: 0o644, flags: O_RDWR, caller: me)
        var model = pattern(2 * 65_536 + 1000, seed: 21)   // two whole chunks and 1000 bytes
        _ = try fs.writeAll(fh, 0, model)
        try fs.flush(fh)
        let blocks = try fs.getattr(attr.ino).blocks
        func put(_ off: Int, _ bytes: [UInt8]) throws {
            _ = try fs.writeAll(fh, UInt64(off), bytes)
            if model.count < off + bytes.count { model += [UInt8](repeating: 0, count: off + bytes.count - model.count) }
            model.replaceSubrange(off..<(off + bytes.count), with: bytes)
        }
        try put(100, [1, 2, 3])
        try put(70_000, [4, 5])
        try put(65_536 + 200, [6])          // merges with nothing: a second range
        try put(65_536 + 201, [7, 8])       // touches the previous range
        #expect(try fs.getattr(attr.ino).blocks == blocks)
        try put(2 * 65_536 + 3000, [9])     // past the stored 1000 bytes of the last chunk
        #expect(try fs.read(fh, offset: 0, size: model.count + 5) == model)
        var times = SetAttr()
        times.mtime = .time(TimeSpec(sec: 77, nsec: 0))
        _ = try fs.setattr(attr.ino, times)  // stores the buffer in its own batch
        #expect(try fs.read(fh, offset: 0, size: model.count + 5) == model)
        try put(5, [10])
        _ = try fs.setattr(attr.ino, SetAttr(size: 60_000))
        model.removeSubrange(60_000...)
        #expect(try fs.read(fh, offset: 0, size: 100_000) == model)
        try put(65_536 * 3 + 7, [11])
        try fs.release(fh)
        try expectStoredAcrossRemount(r, attr.ino, model)
    }

    /// The file reads `model` now and after a clean remount, and both checks are clean.
    private func expectStoredAcrossRemount(_ r: Rig, _ ino: UInt64, _ model: [UInt8]) throws {
        #expect(try r.fs.readAll(ino) == model)
        #expect(try FileSystem.check(store: r.store).errors == [])
        let r2 = try r.remount()
        #expect(try r2.fs.readAll(ino) == model)
        #expect(try FileSystem.check(store: r2.store).errors == [])
        try r2.fs.shutdown()
    }

    /// Write-behind as the FUSE handler drives it: a writer fills buffers with `writeBehind`
    /// while another task stores the detached ones (`runDueFlushes`) and a third changes the
    /// mode and reads: no read misses a completed write, the mode set last survives every
    /// write-behind's inode record, and the end state is complete after a remount.
    @Test func writeBehindKeepsReadsAndInodeRecordsRight() async throws {
        let r = try Rig.fresh(trackCount: 4000)
        let fs = r.fs
        let (attr, fh) = try fs.create(root, n("wb"), mode: 0o644, flags: O_RDWR, caller: me)
        let piece = 1 << 20, total = 40 << 20
        let data = pattern(piece, seed: 31)
        let shared = Progress()
        try await withThrowingTaskGroup(of: Void.self) { g in
            g.addTask {
                var off = 0
                while off < total {
                    _ = try data.withUnsafeBytes { p throws(Errno) in try fs.writeBehind(fh, offset: UInt64(off), data: p) }
                    off += piece
                    shared.completed.store(off, ordering: .releasing)
                }
            }
            g.addTask {
                while shared.completed.load(ordering: .acquiring) < total { fs.runDueFlushes(); usleep(200) }
                fs.runDueFlushes()
            }
            g.addTask {
                var mode: UInt32 = 0o600
                while true {
                    let c = shared.completed.load(ordering: .acquiring)
                    _ = try fs.setattr(attr.ino, SetAttr(mode: mode))
                    mode = mode == 0o600 ? 0o640 : 0o600
                    if c >= piece {
                        let at = UInt64(c - piece)
                        if try fs.read(fh, offset: at, size: piece) != data { shared.failures.add(1, ordering: .relaxed) }
                    }
                    if c == total { break }
                }
                _ = try fs.setattr(attr.ino, SetAttr(mode: 0o604))
            }
            try await g.waitForAll()
        }
        #expect(shared.failures.load(ordering: .relaxed) == 0)
        try fs.fsync(fh, datasync: false)
        #expect(try fs.getattr(attr.ino).mode & 0o7777 == 0o604)
        #expect(try fs.getattr(attr.ino).size == UInt64(total))
        try fs.release(fh)
        let r2 = try r.remount()
        let a2 = try r2.fs.getattr(attr.ino)
        #expect(a2.mode & 0o7777 == 0o604 && a2.size == UInt64(total))
        let rfh = try r2.fs.open(attr.ino, flags: O_RDONLY).fh
        for i in stride(from: 0, to: total, by: piece * 7) {
            #expect(try r2.fs.read(rfh, offset: UInt64(i), size: piece) == data)
        }
        try r2.fs.release(rfh)
        #expect(try FileSystem.check(store: r2.store).errors == [])
        try r2.fs.shutdown()
    }
}

