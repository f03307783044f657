import Glibc
import LSMCommon
import LSMFS
import LSMStore
import Synchronization
import SystemPackage
import Testing

/// Chunk patches (docs/format/keys.md) against the paths ChunkPatchTests leaves out: a
/// write-behind holding patches while newer writes of the same chunks fill the next buffer
/// (readers layer store < behind < filling), and the namespace and fallocate paths that must
/// drop or fold patches (ZERO_RANGE, O_TRUNC, copy_file_range, rename over, unlink of an open
/// file then a crash, truncate into a block then regrow).
@Suite struct ChunkPatchReviewTests {
    let cs = FSFormat.chunkSize
    let bs = FSFormat.patchBlockSize

    func patchCount(_ r: Rig) throws -> Int {
        var k = 0
        try r.store.scan(from: [FSFormat.chunkPrefix], to: [FSFormat.chunkPrefix + 1]) { key, _ in
            if key.count == FSFormat.patchKeyLength { k += 1 }
            return true
        }
        return k
    }

    func put(_ fs: FileSystem, _ fh: UInt64, _ model: inout [UInt8], _ off: Int, _ data: [UInt8], behind: Bool = false) throws {
        if model.count < off + data.count { model += [UInt8](repeating: 0, count: off + data.count - model.count) }
        model.replaceSubrange(off..<off + data.count, with: data)
        _ = try data.withUnsafeBytes { p throws(Errno) in
            behind ? try fs.writeBehind(fh, offset: UInt64(off), data: p) : try fs.write(fh, offset: UInt64(off), data: p)
        }
    }

    func expectRead(_ fs: FileSystem, _ fh: UInt64, _ model: [UInt8], _ note: String) throws {
        let got = try fs.read(fh, offset: 0, size: model.count + 10)
        #expect(got.count == model.count, "\(note): \(got.count) bytes")
        if got != model, let i = zip(got, model).enumerated().first(where: { $0.element.0 != $0.element.1 })?.offset {
            Issue.record("\(note): first difference at \(i) (chunk \(i / cs) block \(i % cs / bs))")
        }
    }

    @Test func writeBehindOfPatchesUnderNewerWrites() throws {
        var r = try Rig.fresh(trackCount: 4000)
        let chunks = 270
        var model = pattern(chunks * cs, seed: 40)
        let ino = try r.fs.createFile(root, "f", model)
        try r.fs.fsync(nil, datasync: false)
        let fh = try r.fs.open(ino, flags: O_RDWR).fh
        // Block 15 of each chunk: every partial buffer is 64 KiB, so 256 chunks fill the
        // file's buffer and it is detached for write-behind (not started yet).
        for i in 0..<chunks - 10 { try put(r.fs, fh, &model, i * cs + 15 * bs, pattern(bs, seed: UInt64(1000 + i)), behind: true) }
        // Newer writes of the same chunks go into the next buffer, over the detached one.
        try put(r.fs, fh, &model, 10 * cs + 15 * bs, pattern(bs, seed: 1))           // same block again
        try put(r.fs, fh, &model, 11 * cs + 3 * bs, pattern(bs, seed: 2))            // another block
        try put(r.fs, fh, &model, 12 * cs, pattern(cs, seed: 3))                     // the whole chunk
        try put(r.fs, fh, &model, 13 * cs + 15 * bs + 100, pattern(200, seed: 4))    // inside the block
        try put(r.fs, fh, &model, 14 * cs + 2 * bs + 7, pattern(bs, seed: 5))        // across two blocks
        #expect(try patchCount(r) == 0, "the buffer waits for its write-behind")
        try expectRead(r.fs, fh, model, "before the write-behind")
        r.fs.runDueFlushes()
        #expect(try patchCount(r) > 200)
        try expectRead(r.fs, fh, model, "after the write-behind")
        try put(r.fs, fh, &model, 12 * cs + 15 * bs, pattern(bs, seed: 6))
        try r.fs.fsync(fh, datasync: false)
        try expectRead(r.fs, fh, model, "after fsync")
        try r.fs.release(fh)
        #expect(try FileSystem.check(store: r.store).errors == [])
        r = try r.remount()
        #expect(try r.fs.readAll(ino) == model)
        #expect(try FileSystem.check(store: r.store).errors == [])
    }

    /// A 3-chunk file with a patch in every chunk (stored, not buffered).
    func patched(_ r: Rig, _ name: String, seed: UInt64) throws -> (ino: UInt64, model: [UInt8]) {
        var model = pattern(3 * cs, seed: seed)
        let ino = try r.fs.createFile(root, name, model)
        let fh = try r.fs.open(ino, flags: O_RDWR).fh
        for i in 0..<3 { try put(r.fs, fh, &model, i * cs + (5 + i) * bs, pattern(bs, seed: seed &+ UInt64(i) &+ 1)) }
        try r.fs.release(fh)
        return (ino, model)
    }

    @Test func namespaceAndFallocatePathsDropPatches() throws {
        var r = try Rig.fresh()
        // ZERO_RANGE growing the file, over a patch.
        var (a, am) = try patched(r, "a", seed: 50)
        #expect(try patchCount(r) == 3)
        var fh = try r.fs.open(a, flags: O_RDWR).fh
        try r.fs.fallocate(fh, mode: FallocMode.zeroRange, offset: UInt64(2 * cs + 6 * bs), length: UInt64(2 * cs))
        am.replaceSubrange((2 * cs + 6 * bs)..., with: [UInt8](repeating: 0, count: cs - 6 * bs))
        am += [UInt8](repeating: 0, count: 2 * cs + 6 * bs - cs)
        try expectRead(r.fs, fh, am, "zero range")
        // Truncate into the middle of a patched block, regrow: zeros past the cut.
        _ = try r.fs.setattr(a, SetAttr(size: UInt64(cs + 6 * bs + 1000)))
        _ = try r.fs.setattr(a, SetAttr(size: UInt64(3 * cs)))
        am = Array(am[0..<(cs + 6 * bs + 1000)]) + [UInt8](repeating: 0, count: 3 * cs - (cs + 6 * bs + 1000))
        try expectRead(r.fs, fh, am, "truncate and regrow")
        try put(r.fs, fh, &am, cs + 9 * bs, pattern(bs, seed: 51))   // a patch past the cut chunk's end
        try r.fs.release(fh)
        #expect(try r.fs.readAll(a) == am)
        // copy_file_range from a patched file into a patched file.
        let (b, bm) = try patched(r, "b", seed: 60)
        let inFh = try r.fs.open(b, flags: O_RDONLY).fh
        fh = try r.fs.open(a, flags: O_RDWR).fh
        #expect(try r.fs.copyFileRange(from: inFh, at: UInt64(5 * bs), to: fh, at: UInt64(cs + 8 * bs), length: 2 * bs) == 2 * bs)
        am.replaceSubrange((cs + 8 * bs)..<(cs + 10 * bs), with: bm[(5 * bs)..<(7 * bs)])
        try r.fs.release(inFh)
        try r.fs.fsync(fh, datasync: false)
        try expectRead(r.fs, fh, am, "copy_file_range")
        try r.fs.release(fh)
        // O_TRUNC, then regrow by a write far out: the old patches must not come back.
        fh = try r.fs.open(a, flags: O_RDWR | O_TRUNC).fh
        am = []
        try put(r.fs, fh, &am, 2 * cs + 5 * bs, pattern(bs, seed: 52))
        try r.fs.fsync(fh, datasync: false)
        try expectRead(r.fs, fh, am, "O_TRUNC and regrow")
        try r.fs.release(fh)
        // rename over a patched file; unlink of an open patched file, then a crash.
        let (c, _) = try patched(r, "c", seed: 70)
        try r.fs.rename(root, n("c"), root, n("b"))
        let open = try r.fs.open(c, flags: O_RDONLY).fh
        _ = open
        try r.fs.unlink(root, n("b"))
        try r.fs.fsync(nil, datasync: false)
        r = try Rig.open(r.dev.crashed())   // no release: the orphan is reclaimed at mount
        #expect(try r.fs.readAll(a) == am)
        #expect(try FileSystem.check(store: r.store).errors == [])
        a = try r.fs.lookup(root, n("a")).ino
        try r.fs.unlink(root, n("a"))
        #expect(try r.keyCount([FSFormat.chunkPrefix]) == 0)
        _ = b
    }

    /// 4 KiB block `b` at `version`: 16-byte stamps (block, version) repeated.
    static func stamped(_ b: Int, _ version: UInt64) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(4096)
        for _ in 0..<256 { out.appendLE(UInt64(b)); out.appendLE(version) }
        return out
    }

    /// One writer (4 KiB blocks, write-behind, fsyncs that store patches and fold chunks) and
    /// one reader: every read of a block shows that block at a version no older than the
    /// newest write completed before the read began (a stale patch or chunk would go back).
    @Test func concurrentReaderNeverSeesAnOlderBlock() async throws {
        let r = try Rig.fresh(trackCount: 4000)
        let fs = r.fs
        let blocks = 24 * 16
        var initial: [UInt8] = []
        for b in 0..<blocks { initial += Self.stamped(b, 0) }
        let ino = try fs.createFile(root, "f", initial)
        try fs.fsync(nil, datasync: false)
        let done = Completed(blocks)
        let fh = try fs.open(ino, flags: O_RDWR).fh
        try await withThrowingTaskGroup(of: Void.self) { g in
            g.addTask {
                var x: UInt64 = 0x1234_5678_9ABC_DEF1
                for step in 1...3000 {
                    x ^= x << 13; x ^= x >> 7; x ^= x << 17
                    let b = Int(x % UInt64(blocks))
                    let v = UInt64(step)
                    _ = try Self.stamped(b, v).withUnsafeBytes { p throws(Errno) in try fs.writeBehind(fh, offset: UInt64(b * 4096), data: p) }
                    fs.runDueFlushes()
                    done.m.withLock { $0[b] = v }
                    if step % 97 == 0 { try fs.fsync(fh, datasync: false) }
                    if step % 1001 == 0 { _ = try fs.read(fh, offset: 0, size: 1) }
                }
            }
            g.addTask {
                var x: UInt64 = 0x0F0F_1234_5555_AAA1
                for _ in 0..<3000 {
                    x ^= x << 13; x ^= x >> 7; x ^= x << 17
                    let b0 = Int(x % UInt64(blocks)), n = 1 + Int(x >> 40 % 40)
                    let count = min(n, blocks - b0)
                    let floor = done.m.withLock { Array($0[b0..<b0 + count]) }
                    let got = try fs.read(fh, offset: UInt64(b0 * 4096), size: count * 4096)
                    #expect(got.count == count * 4096)
                    for i in 0..<min(count, got.count / 4096) {
                        let blk = got.readLE(UInt64.self, at: i * 4096), ver = got.readLE(UInt64.self, at: i * 4096 + 8)
                        if blk != UInt64(b0 + i) || ver < floor[i] {
                            Issue.record("block \(b0 + i): read block \(blk) version \(ver), completed version \(floor[i])")
                            return
                        }
                    }
                }
            }
            try await g.waitForAll()
        }
        try fs.release(fh)
        let final = done.m.withLock { $0 }
        let all = try fs.readAll(ino)
        for b in 0..<blocks where Array(all[b * 4096..<(b + 1) * 4096]) != Self.stamped(b, final[b]) {
            Issue.record("block \(b) wrong at the end")
        }
        #expect(try FileSystem.check(store: r.store).errors == [])
    }
}

/// Newest completed version of each block (shared by the writer and reader tasks).
final class Completed: Sendable {
    let m: Mutex<[UInt64]>
    init(_ n: Int) { m = Mutex([UInt64](repeating: 0, count: n)) }
}
