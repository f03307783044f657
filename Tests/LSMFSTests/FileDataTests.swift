import Glibc
import LSMFS
import SystemPackage
import Testing

@Suite struct FileDataTests {
    @Test func createWriteReadAcrossChunks() throws {
        let r = try Rig.fresh()
        let fs = r.fs
        let (attr, fh) = try fs.create(root, n("a"), mode: 0o640, flags: O_RDWR, caller: me)
        #expect(attr.isRegular && attr.mode & 0o777 == 0o640 && attr.size == 0 && attr.nlink == 1)
        let data = pattern(300_000, seed: 1)
        #expect(try fs.writeAll(fh, 0, data) == data.count)
        #expect(try fs.getattr(attr.ino).size == 300_000)
        #expect(try fs.read(fh, offset: 0, size: 400_000) == data)
        // partial overwrite straddling the 64 KiB boundary
        let patch = pattern(1000, seed: 2)
        _ = try fs.writeAll(fh, 65_000, patch)
        var expected = data
        expected.replaceSubrange(65_000..<66_000, with: patch)
        #expect(try fs.read(fh, offset: 0, size: 300_000) == expected)
        #expect(try fs.read(fh, offset: 64_000, size: 3000) == Array(expected[64_000..<67_000]))
        #expect(try fs.read(fh, offset: 300_000, size: 10).isEmpty)
        try fs.release(fh)
        #expect(try r.keyCount([0x42]) == 5)  // ceil(300000 / 65536) chunks
    }

    @Test func sparseWriteReadsZeros() throws {
        let fs = try Rig.fresh().fs
        let (attr, fh) = try fs.create(root, n("sparse"), mode: 0o644, flags: O_RDWR, caller: me)
        _ = try fs.writeAll(fh, 200_000, [1, 2, 3])
        #expect(try fs.getattr(attr.ino).size == 200_003)
        let all = try fs.read(fh, offset: 0, size: 300_000)
        #expect(all.count == 200_003)
        #expect(all[0..<200_000].allSatisfy { $0 == 0 })
        #expect(Array(all[200_000...]) == [1, 2, 3])
        try fs.release(fh)
    }

    @Test func truncateDownAndUpZeroFills() throws {
        let r = try Rig.fresh()
        let fs = r.fs
        let ino = try fs.createFile(root, "t", pattern(200_000, seed: 3))
        let before = try fs.getattr(ino)
        var a = try fs.setattr(ino, SetAttr(size: 70_000))
        #expect(a.size == 70_000)
        #expect(try r.keyCount([0x42]) == 2)
        #expect(a.ctime.sec >= before.ctime.sec)
        a = try fs.setattr(ino, SetAttr(size: 150_000))
        let data = try fs.readAll(ino)
        #expect(data.count == 150_000)
        #expect(Array(data[0..<70_000]) == Array(pattern(200_000, seed: 3)[0..<70_000]))
        #expect(data[70_000...].allSatisfy { $0 == 0 })
        _ = try fs.setattr(ino, SetAttr(size: 65_536))
        #expect(try r.keyCount([0x42]) == 1)
        _ = try fs.setattr(ino, SetAttr(size: 0))
        #expect(try r.keyCount([0x42]) == 0)
        #expect(try fs.readAll(ino).isEmpty)
        // O_TRUNC at open
        let ino2 = try fs.createFile(root, "t2", [9, 9, 9])
        let fh = try fs.open(ino2, flags: O_WRONLY | O_TRUNC).fh
        #expect(try fs.getattr(ino2).size == 0)
        try fs.release(fh)
    }

    @Test func appendModeWritesAtEOF() throws {
        let fs = try Rig.fresh().fs
        let ino = try fs.createFile(root, "log", n("one\n"))
        let fh = try fs.open(ino, flags: O_WRONLY | O_APPEND).fh
        _ = try fs.writeAll(fh, 0, n("two\n"))
        _ = try fs.writeAll(fh, 0, n("three\n"))
        try fs.release(fh)
        #expect(try fs.readAll(ino) == n("one\ntwo\nthree\n"))
    }

    @Test func setattrModeOwnerTimes() throws {
        let fs = try Rig.fresh().fs
        let ino = try fs.createFile(root, "f")
        var a = try fs.setattr(ino, SetAttr(mode: 0o4755))
        #expect(a.mode == UInt32(S_IFREG) | 0o4755)
        a = try fs.setattr(ino, SetAttr(atime: .time(TimeSpec(sec: 1000, nsec: 5)), mtime: .time(TimeSpec(sec: 2000, nsec: 7))))
        #expect(a.atime == TimeSpec(sec: 1000, nsec: 5) && a.mtime == TimeSpec(sec: 2000, nsec: 7))
        #expect(a.ctime.sec > 2000)
        a = try fs.setattr(ino, SetAttr(mtime: .now))
        #expect(a.mtime.sec > 2000 && a.atime == TimeSpec(sec: 1000, nsec: 5))
        a = try fs.setattr(ino, SetAttr(uid: 4242, gid: 4343))
        #expect(a.uid == 4242 && a.gid == 4343)
        #expect(a.mode & UInt32(S_ISUID) == 0)  // chown clears set-user-ID
        let dir = try fs.mkdir(root, n("d"), mode: 0o755, caller: me)
        #expect(throws: errno(EISDIR)) { try fs.setattr(dir.ino, SetAttr(size: 0)) }
    }

    @Test func concurrentWritersToOneFile() async throws {
        let fs = try Rig.fresh().fs
        let (attr, fh) = try fs.create(root, n("shared"), mode: 0o644, flags: O_RDWR, caller: me)
        let pieces = 16, piece = 10_000  // pieces straddle chunk boundaries
        try await withThrowingTaskGroup(of: Void.self) { g in
            for i in 0..<pieces {
                g.addTask {
                    _ = try fs.writeAll(fh, UInt64(i * piece), pattern(piece, seed: UInt64(i)))
                }
            }
            try await g.waitForAll()
        }
        let all = try fs.read(fh, offset: 0, size: pieces * piece)
        #expect(try fs.getattr(attr.ino).size == UInt64(pieces * piece))
        for i in 0..<pieces {
            #expect(Array(all[i * piece ..< (i + 1) * piece]) == pattern(piece, seed: UInt64(i)))
        }
        try fs.release(fh)
    }

    @Test func fsyncAndReadOnlyHandles() throws {
        let fs = try Rig.fresh().fs
        let ino = try fs.createFile(root, "f", [1])
        let fh = try fs.open(ino, flags: O_RDONLY).fh
        #expect(throws: errno(EBADF)) { try fs.writeAll(fh, 0, [2]) }
        try fs.fsync(fh, datasync: true)
        try fs.release(fh)
        #expect(throws: errno(EBADF)) { try fs.release(fh) }
        let d = try fs.mkdir(root, n("d"), mode: 0o755, caller: me)
        #expect(throws: errno(EISDIR)) { try fs.open(d.ino, flags: O_RDONLY) }
    }
}

@Suite struct BlocksTests {
    /// st_blocks counts the 4 KiB pages that hold stored data, as on ext4: holes count nothing.
    @Test func blocksFollowStoredData() throws {
        let r = try Rig.fresh()
        let fs = r.fs
        let a = try fs.createFile(root, "a", n("hi\n"))
        #expect(try fs.getattr(a).blocks == 8)
        let sparse = try fs.createFile(root, "sparse")
        _ = try fs.setattr(sparse, SetAttr(size: 5000))
        #expect(try fs.getattr(sparse).blocks == 0)
        let big = try fs.createFile(root, "big", pattern(200_000, seed: 1))
        #expect(try fs.getattr(big).blocks == 49 * 8)
        _ = try fs.setattr(big, SetAttr(size: 70_000))
        #expect(try fs.getattr(big).blocks == 18 * 8)
        _ = try fs.setattr(big, SetAttr(size: 1_000_000))
        #expect(try fs.getattr(big).blocks == 18 * 8)
        let fh = try fs.open(big, flags: O_WRONLY).fh
        _ = try fs.writeAll(fh, 500_000, [1])  // in a hole: its chunk stores 11 zero-filled pages
        try fs.release(fh)
        #expect(try fs.getattr(big).blocks == (18 + 11) * 8)
        _ = try fs.setattr(big, SetAttr(size: 3))
        #expect(try fs.getattr(big).blocks == 8)
        _ = try fs.setattr(big, SetAttr(size: 0))
        #expect(try fs.getattr(big).blocks == 0)
        #expect(try FileSystem.check(store: r.store).errors == [])
    }
}
