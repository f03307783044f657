import Glibc
import LSMFS
import SystemPackage
import Testing

@Suite struct ErrorTests {
    @Test func fullDriveGivesENOSPC() throws {
        let r = try Rig.fresh(trackCount: 24)
        let fs = r.fs
        let (_, fh) = try fs.create(root, n("fill"), mode: 0o644, flags: O_RDWR, caller: me)
        let block = pattern(1 << 20, seed: 11)
        var failure: Errno?
        var written: UInt64 = 0
        for _ in 0..<400 {
            do {
                _ = try fs.writeAll(fh, written, block)
                written += UInt64(block.count)
                try fs.fsync(fh, datasync: true)
            } catch let e as Errno {
                failure = e
                break
            }
        }
        #expect(failure == errno(ENOSPC), "wrote \(written) bytes, then \(String(describing: failure))")
        try? fs.release(fh)
    }

    @Test func damagedRecordsGiveEIOAndCheckNamesThem() throws {
        let r = try Rig.fresh()
        let fs = r.fs
        let ino = try fs.createFile(root, "victim", n("data"))
        var key: [UInt8] = [0x49]
        withUnsafeBytes(of: ino.bigEndian) { key.append(contentsOf: $0) }
        try r.store.put(key, [1, 2, 3])  // an inode record that does not decode
        #expect(throws: errno(EIO)) { try fs.getattr(ino) }
        #expect(throws: errno(EIO)) { try fs.lookup(root, n("victim")) }
        #expect(throws: errno(EIO)) { try fs.unlink(root, n("victim")) }
        let report = try FileSystem.check(store: r.store)
        #expect(report.errors.contains { $0.contains("inode \(ino)") })
        try r.store.delete(key)
        #expect(throws: errno(ENOENT)) { try fs.lookup(root, n("victim")) }
        #expect(try FileSystem.check(store: r.store).errors.contains { $0.contains("missing") })
    }
}
