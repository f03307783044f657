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
}
