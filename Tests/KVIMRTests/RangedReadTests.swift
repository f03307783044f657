import Foundation
import Glibc
import IMRDisk
import KVIMR
import Testing

/// `KVIMR.read(_:ranges:)`: several ranges of one file planned under one lock. Each range gets
/// exactly the bytes `read(_:at:into:)` would give it (short only at EOF), whether they lie on
/// tracks, in KVIMR's write buffer, or both; ranges may come in any order; a range at EOF reads
/// nothing, one past it is `.outOfRange`; a deleted file is `.notFound`.
@Suite struct RangedReadTests {
    /// One range to read: where, how many bytes asked.
    struct Want { var offset: Int; var count: Int }

    /// Reads `wants` with one `read(_:ranges:)` call; each result is the bytes read (its count
    /// as returned). Bytes past the returned count must be left as they were (0xEE).
    func readRanges(_ k: KVIMR, _ n: FileNumber, _ wants: [Want]) throws -> [[UInt8]] {
        let buffers = wants.map { UnsafeMutableRawBufferPointer.allocate(byteCount: max($0.count, 1), alignment: 16) }
        defer { buffers.forEach { $0.deallocate() } }
        for b in buffers { b.initializeMemory(as: UInt8.self, repeating: 0xEE) }
        var ranges: [(offset: UInt64, buffer: UnsafeMutableRawBufferPointer)] = []
        for (w, b) in zip(wants, buffers) {
            ranges.append((UInt64(w.offset), UnsafeMutableRawBufferPointer(rebasing: b[0..<w.count])))
        }
        let counts = try k.read(n, ranges: ranges)
        try #require(counts.count == wants.count)
        var out: [[UInt8]] = []
        for (i, b) in buffers.enumerated() {
            let rest = Array(UnsafeRawBufferPointer(rebasing: b[counts[i]..<wants[i].count]))
            #expect(rest.allSatisfy { $0 == 0xEE }, "range \(i) wrote past its count")
            out.append(Array(UnsafeRawBufferPointer(rebasing: b[0..<counts[i]])))
        }
        return out
    }

    /// Checks every range against `all` (the file's bytes): each gets min(count, EOF - offset).
    func check(_ k: KVIMR, _ n: FileNumber, _ all: [UInt8], _ wants: [Want], _ label: String) throws {
        let got = try readRanges(k, n, wants)
        for (w, g) in zip(wants, got) {
            let end = min(all.count, w.offset + w.count)
            let same = g[...] == all[w.offset..<end]
            #expect(same, "\(label): range \(w.offset)+\(w.count): \(g.count) bytes read, \(end - w.offset) expected")
        }
    }

    /// A file whose first `stored` bytes are on tracks (synced) and the next `buffered` bytes
    /// still in the write buffer.
    func storedThenBuffered(_ k: KVIMR, stored: Int, buffered: Int, seed: UInt64) throws -> (FileNumber, [UInt8]) {
        let n = try k.create(kind: .vlog, level: 0)
        let all = pattern(stored + buffered, seed: seed)
        try k.append(n, Array(all[0..<stored]))
        try k.sync([n])
        try k.append(n, Array(all[stored...]))
        return (n, all)
    }

    /// The cases every device must pass: ranges in order, out of order, overlapping, crossing
    /// from stored to buffered bytes, wholly buffered, at EOF and straddling EOF.
    func exercise(_ k: KVIMR, _ n: FileNumber, _ all: [UInt8], stored: Int, sector: Int) throws {
        let size = all.count
        try check(k, n, all, [Want(offset: 0, count: 1000), Want(offset: 1000, count: 5000),
                              Want(offset: sector * 3 + 7, count: sector * 2 + 11)], "in order")
        try check(k, n, all, [Want(offset: stored - 4000, count: 3000), Want(offset: 17, count: 333),
                              Want(offset: sector - 1, count: 2), Want(offset: 0, count: 1)], "out of order")
        try check(k, n, all, [Want(offset: 100, count: 900), Want(offset: 500, count: 900)], "overlapping")
        // Crossing: on tracks, then in the write buffer, in one range.
        try check(k, n, all, [Want(offset: stored - 777, count: 2000), Want(offset: 5, count: 10)], "crossing")
        try check(k, n, all, [Want(offset: stored + 10, count: 100), Want(offset: stored - 1, count: 1),
                              Want(offset: stored, count: size - stored)], "buffered")
        // At EOF: 0; straddling EOF: short; a zero-byte range: 0.
        try check(k, n, all, [Want(offset: size - 50, count: 4096), Want(offset: size, count: 4096),
                              Want(offset: 3, count: 0), Want(offset: stored - 9, count: 9)], "eof")
        // The whole file in pieces, last first.
        var pieces: [Want] = []
        var at = 0
        while at < size { pieces.append(Want(offset: at, count: min(size - at, 3 * sector + 5))); at += 3 * sector + 5 }
        try check(k, n, all, pieces.reversed(), "whole file reversed")
        // One range past EOF: the call fails (no partial counts are handed out).
        let past = kvimrError { _ = try readRanges(k, n, [Want(offset: 0, count: 10), Want(offset: size + 1, count: 10)]) }
        #expect(past?.kind == .outOfRange)
    }

    @Test func memoryDeviceStoredAndBuffered() throws {
        let g = smallGeometry(tracks: 64)
        let (_, k) = try makeKVIMR(g)
        let stored = 5 * g.bottomSectors * g.sectorSize + 1234    // several tracks, a partial sector
        let (n, all) = try storedThenBuffered(k, stored: stored, buffered: 3000, seed: 11)
        try exercise(k, n, all, stored: stored, sector: g.sectorSize)
        // Once everything is synced the same reads still agree.
        try k.sync([n])
        try exercise(k, n, all, stored: stored, sector: g.sectorSize)
    }

    @Test func imageDeviceStoredAndBuffered() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ranged-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("r.img").path
        let dev = try ImageTrackDevice.create(path: path, size: 64 << 20, policy: "two-phase")
        try KVIMR.format(device: dev)
        let k = try KVIMR(device: dev)
        let track = dev.geometry.bottomSectors * dev.geometry.sectorSize
        let stored = track + track / 2 + 4321                 // crosses a track boundary
        let (n, all) = try storedThenBuffered(k, stored: stored, buffered: 70_000, seed: 12)
        try exercise(k, n, all, stored: stored, sector: dev.geometry.sectorSize)
        // Ranges spanning the track boundary, given repeatedly so the read-ahead sees a stream
        // (reads then go through the device's streaming path).
        for round in 0..<4 {
            let base = track - 100_000 + round * 150_000
            try check(k, n, all, [Want(offset: base, count: 60_000), Want(offset: base + 60_000, count: 90_000),
                                  Want(offset: base + 10, count: 5)], "stream \(round)")
        }
        try k.sync([n])
        try exercise(k, n, all, stored: stored, sector: dev.geometry.sectorSize)
        // Reopened from the image: everything comes from tracks.
        try k.close()
        let k2 = try KVIMR(device: try ImageTrackDevice.open(path: path))
        try exercise(k2, n, all, stored: stored, sector: dev.geometry.sectorSize)
        try k2.close()
    }

    @Test func manyFilesOnImageKeepTheirBytes() throws {
        let path = "/tmp/kvimr-ranged-\(getpid())-\(UInt64.random(in: 0...UInt64.max)).img"
        defer { unlink(path) }
        let dev = try ImageTrackDevice.create(path: path, size: 64 << 20, policy: "two-phase")
        try KVIMR.format(device: dev)
        let k = try KVIMR(device: dev)
        var files: [(FileNumber, [UInt8])] = []
        for i in 0..<3 {
            let n = try k.create(kind: .vlog, level: 0)
            let all = pattern(300_000 + i * 77_777, seed: 40 + UInt64(i))
            try k.append(n, all)
            try k.sync([n])
            files.append((n, all))
        }
        var rng = TestRNG(seed: 5)
        for _ in 0..<30 {
            let (n, all) = files[rng.int(0...2)]
            let wants = (0..<rng.int(1...6)).map { _ -> Want in
                let off = rng.int(0...all.count)
                return Want(offset: off, count: rng.int(0...50_000))
            }
            try check(k, n, all, wants, "random")
        }
        try k.close()
    }

    @Test func deletedFileIsNotFound() throws {
        let (_, k) = try makeKVIMR(smallGeometry())
        let (n, _) = try storedThenBuffered(k, stored: 20_000, buffered: 500, seed: 3)
        try k.delete(n)
        let e = kvimrError { _ = try readRanges(k, n, [Want(offset: 0, count: 10), Want(offset: 100, count: 10)]) }
        #expect(e?.kind == .notFound)
        let never = kvimrError { _ = try readRanges(k, FileNumber(9_999), [Want(offset: 0, count: 1)]) }
        #expect(never?.kind == .notFound)
    }

    /// An empty list of ranges reads nothing and returns no counts.
    @Test func noRanges() throws {
        let (_, k) = try makeKVIMR(smallGeometry())
        let (n, _) = try storedThenBuffered(k, stored: 4096, buffered: 10, seed: 4)
        #expect(try k.read(n, ranges: []).isEmpty)
    }
}
