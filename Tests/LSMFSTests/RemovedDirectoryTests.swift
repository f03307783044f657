import Glibc
import LSMFS
import SystemPackage
import Testing

/// A removed directory the kernel still holds (some process's working directory) keeps
/// answering getattr (nlink 0) and opendir until the kernel's forget, as on ext4; nothing of
/// it is stored.
@Suite struct RemovedDirectoryTests {
    @Test func removedDirectoryAnswersUntilForget() throws {
        let fs = try Rig.fresh().fs
        let d = try fs.mkdir(1, n("d"), mode: 0o755, caller: me)  // the entry reply: lookup count 1
        let kept = try fs.mkdir(1, n("k"), mode: 0o755, caller: me)
        fs.forget(kept.ino, 1)  // not held by the kernel
        try fs.rmdir(1, n("d"))
        try fs.rmdir(1, n("k"))
        let a = try fs.getattr(d.ino)
        #expect(a.nlink == 0 && a.mode == UInt32(S_IFDIR) | 0o755)
        let fh = try fs.opendir(d.ino)
        fs.releasedir(fh)
        #expect(throws: errno(ENOENT)) { try fs.lookup(1, n("d")) }
        #expect(throws: errno(ENOENT)) { try fs.mkdir(d.ino, n("x"), mode: 0o755, caller: me) }
        #expect(throws: errno(ENOENT)) { try fs.getattr(kept.ino) }
        fs.forget(d.ino, 1)
        #expect(throws: errno(ENOENT)) { try fs.getattr(d.ino) }
        #expect(throws: errno(ENOENT)) { try fs.opendir(d.ino) }
    }
}
