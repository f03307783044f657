import Glibc
import IMRDisk
import KVIMR
import LSMCommon
import LSMFS
import LSMStore
import SystemPackage
import Testing

/// READ of a file with no buffered writes goes straight from the store into the caller's
/// buffer (`readStored`): chunk bytes, zeros for holes and past a chunk's length, patches over
/// their chunk. Checked against a model over random sparse writes, truncates, punched holes and
/// 4 KiB writes into holes (patches), with unaligned reads crossing chunk boundaries and past
/// EOF, into a buffer full of garbage (every byte of the result must be written); the same reads
/// with the data still buffered (the other path) agree. A damaged chunk record is EIO.
@Suite struct StoredReadTests {
    let cs = FSFormat.chunkSize
    let bs = FSFormat.patchBlockSize

    /// Reads `size` bytes at `offset` into a buffer of garbage (0xA5); returns the bytes read.
    /// The bytes past the count must stay garbage (nothing written beyond the result).
    func poisonedRead(_ fs: FileSystem, _ fh: UInt64, _ offset: Int, _ size: Int) throws -> [UInt8] {
        var buf = [UInt8](repeating: 0xA5, count: size)
        let n = try buf.withUnsafeMutableBytes { p throws(Errno) in try fs.read(fh, offset: UInt64(offset), into: p) }
        #expect(buf[n...].allSatisfy { $0 == 0xA5 }, "read at \(offset)+\(size) wrote past its count \(n)")
        return Array(buf[0..<n])
    }

    /// Reads that probe chunk and block boundaries, odd offsets, EOF and beyond.
    func probes(_ size: Int, _ rnd: (Int) -> Int) -> [(Int, Int)] {
        var out: [(Int, Int)] = [(0, size + 100), (size, 10), (size + 5000, 10), (max(0, size - 1), 4096)]
        for c in stride(from: cs, to: size + cs, by: cs) {
            out.append((c - 1, 2))                       // one byte each side of a chunk boundary
            out.append((max(0, c - 3 * bs - 17), 2 * cs + 33))
        }
        for _ in 0..<12 { out.append((rnd(size + 1), 1 + rnd(3 * cs))) }
        out.append((rnd(size + 1), 0))
        return out
    }

    /// Where two byte arrays first differ (a failure message without megabytes of operands).
    func firstDifference(_ a: [UInt8], _ b: [UInt8]) -> String {
        if let i = (0..<min(a.count, b.count)).first(where: { a[$0] != b[$0] }) { return "first difference at \(i): \(a[i]) vs \(b[i])" }
        return a.count == b.count ? "same" : "counts \(a.count) vs \(b.count)"
    }

    func expectReads(_ fs: FileSystem, _ fh: UInt64, _ model: [UInt8], _ rnd: (Int) -> Int, _ what: String) throws {
        for (off, len) in probes(model.count, rnd) {
            let got = try poisonedRead(fs, fh, off, len)
            let want = off >= model.count ? [] : Array(model[off..<min(model.count, off + len)])
            let same = got == want
            #expect(same, "\(what): read \(off)+\(len) (size \(model.count)): \(firstDifference(got, want))")
        }
    }

    @Test(arguments: [UInt64(1), 2, 3])
    func randomSparseFilesMatchTheModel(seed: UInt64) throws {
        var r = try Rig.fresh()
        var x = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        func rnd(_ n: Int) -> Int {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17
            return n <= 0 ? 0 : Int(x % UInt64(n))
        }
        let span = 10 * cs
        var model: [UInt8] = []
        let ino = try r.fs.createFile(root, "f")
        var fh = try r.fs.open(ino, flags: O_RDWR).fh
        for step in 0..<60 {
            switch rnd(10) {
            case 0..<3:    // a sparse write anywhere, any size (small ones stay inline in the tree)
                let off = rnd(span), len = 1 + rnd(rnd(3) == 0 ? 2 * cs : 3000)
                let data = pattern(len, seed: seed &* 1000 &+ UInt64(step))
                model.zeroExtend(off + len)
                model.replaceSubrange(off..<off + len, with: data)
                _ = try r.fs.writeAll(fh, UInt64(off), data)
            case 3..<5:    // 4 KiB blocks into holes (beyond EOF or punched): patches
                for _ in 0..<(1 + rnd(3)) {
                    let off = rnd(span / bs) * bs
                    let data = pattern(bs, seed: seed &* 2000 &+ UInt64(step))
                    model.zeroExtend(off + bs)
                    model.replaceSubrange(off..<off + bs, with: data)
                    _ = try r.fs.writeAll(fh, UInt64(off), data)
                }
            case 5:        // truncate, down or up, sometimes to a chunk boundary
                let size = rnd(3) == 0 ? cs * rnd(6) : rnd(span)
                _ = try r.fs.setattr(ino, SetAttr(size: UInt64(size)))
                if size < model.count { model.removeSubrange(size...) } else { model.zeroExtend(size) }
            case 6:        // punch a hole (whole chunks and parts)
                guard !model.isEmpty else { break }
                let off = rnd(model.count), len = 1 + rnd(3 * cs)
                try r.fs.fallocate(fh, mode: FallocMode.punchHole | FallocMode.keepSize, offset: UInt64(off), length: UInt64(len))
                let hi = min(model.count, off + len)
                model.replaceSubrange(off..<hi, with: [UInt8](repeating: 0, count: hi - off))
            case 7:        // the store's tables, not its memtable
                try r.fs.fsync(fh, datasync: false)
                try r.store.flush()
            case 8:        // remount: everything from the drive
                try r.fs.release(fh)
                r = try r.remount()
                fh = try r.fs.open(ino, flags: O_RDWR).fh
            default:
                break
            }
            // Still buffered (the buffered path), then in the store (the stored path).
            try expectReads(r.fs, fh, model, rnd, "seed \(seed) step \(step) buffered")
            try r.fs.fsync(fh, datasync: false)
            try expectReads(r.fs, fh, model, rnd, "seed \(seed) step \(step) stored")
            #expect(try r.fs.getattr(ino).size == UInt64(model.count))
        }
        try r.fs.release(fh)
        #expect(try FileSystem.check(store: r.store).errors == [])
    }

    /// A file of one small inline chunk, one of whole chunks and a short last chunk, and an
    /// empty file: stored reads agree with what was written, on a second handle too.
    @Test func plainFilesReadBack() throws {
        let r = try Rig.fresh()
        let small = pattern(700, seed: 5), big = pattern(5 * cs + 1234, seed: 6)
        let a = try r.fs.createFile(root, "small", small)
        let b = try r.fs.createFile(root, "big", big)
        let e = try r.fs.createFile(root, "empty")
        try r.fs.fsync(nil, datasync: false)
        for (ino, model) in [(a, small), (b, big), (e, [])] {
            let fh = try r.fs.open(ino, flags: O_RDONLY).fh
            defer { try? r.fs.release(fh) }
            var x: UInt64 = 77
            try expectReads(r.fs, fh, model, { n in x = x &* 6_364_136_223_846_793_005 &+ 1; return n <= 0 ? 0 : Int((x >> 33) % UInt64(n)) }, "ino \(ino)")
            // Sequential 128 KiB reads (a kernel's READs) rebuild the file.
            var whole: [UInt8] = []
            while true {
                let piece = try poisonedRead(r.fs, fh, whole.count, 128 << 10)
                if piece.isEmpty { break }
                whole += piece
            }
            let same = whole == model
            #expect(same, "sequential reads: \(firstDifference(whole, model))")
        }
    }

    /// The value-log record of one chunk damaged on the drive: any read touching that chunk
    /// (whole or a few bytes of it) is EIO, never other bytes; reads of the other chunks work.
    @Test func damagedChunkIsEIO() throws {
        var r = try Rig.fresh()
        let model = pattern(4 * cs, seed: 8)
        let ino = try r.fs.createFile(root, "f", model)
        try r.fs.fsync(nil, datasync: false)
        var key: [UInt8] = [FSFormat.chunkPrefix]
        key.appendBE(ino)
        key.appendBE(UInt64(1))
        let p = try #require(try r.store.valuePointer(key), "a 64 KiB chunk lives in the value log")
        try r.fs.shutdown()
        let damaged = try flipByte(r.dev.crashed(), file: p.segment, at: p.offset + UInt64(p.length) - 100)
        r = try Rig.open(damaged)
        let fh = try r.fs.open(ino, flags: O_RDONLY).fh
        defer { try? r.fs.release(fh) }
        for (off, len) in [(0, 4 * cs), (cs + 10, 20), (cs - 5, 10), (2 * cs - 1, 1), (cs + cs / 2, cs)] {
            var buf = [UInt8](repeating: 0xA5, count: len)
            let err = buf.withUnsafeMutableBytes { b -> Errno? in
                do throws(Errno) { _ = try r.fs.read(fh, offset: UInt64(off), into: b); return nil } catch { return error }
            }
            #expect(err == .ioError, "read \(off)+\(len)")
        }
        let head = try poisonedRead(r.fs, fh, 0, cs) == Array(model[0..<cs])
        #expect(head)
        let tail = try poisonedRead(r.fs, fh, 2 * cs, 2 * cs) == Array(model[(2 * cs)...])
        #expect(tail)
        #expect(r.store.stats().vlog.checksumErrors > 0)
    }

    /// `closed` with one byte of KVIMR file `file` at `offset` flipped on the drive.
    func flipByte(_ closed: MemoryTrackDevice, file: UInt64, at offset: UInt64) throws -> MemoryTrackDevice {
        try #require(try closed.flippingByte(ofFile: file, at: offset, mask: 0x40), "offset \(offset) lies outside file \(file)")
    }
}
