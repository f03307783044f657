import Foundation
import Testing

/// An unlinked file stays readable and writable while open; when the daemon dies before the
/// orphan's reclaim is durable (sync_interval=0, the orphan marker fsynced), fsck reports the
/// orphan as pending (exit 0, no error) and the next mount reclaims it.
@Suite(.serialized)
struct OrphanTests {
    @Test func openUnlinkedFileSurvivesUntilCloseAndIsReclaimedAfterACrash() throws {
        let m = try MountedImage(size: "512M", options: "sync_interval=0")
        defer { m.close() }
        // A holder keeps the file open after unlinking it, writes and reads it, then waits.
        let script = """
            import os, sys, time
            fd = os.open('victim', os.O_RDWR | os.O_CREAT, 0o644)
            os.write(fd, os.urandom(300000)); os.unlink('victim')
            os.pwrite(fd, b'after-unlink', 0)
            assert os.pread(fd, 12, 0) == b'after-unlink'
            assert os.fstat(fd).st_nlink == 0 and os.fstat(fd).st_size == 300000
            os.fsync(fd)
            print('holding', flush=True)
            time.sleep(15)
            """
        try script.write(toFile: m.dir + "/hold.py", atomically: true, encoding: .utf8)
        let start = m.sh("(/usr/bin/python3 '\(m.dir)/hold.py' > '\(m.dir)/hold.out' 2>&1 &) ; for i in $(seq 100); do grep -q holding '\(m.dir)/hold.out' && exit 0; sleep 0.1; done; cat '\(m.dir)/hold.out'; exit 1")
        try #require(start.ok, "holder did not start: \(start.stdout)")
        #expect(!m.sh("test -e victim").ok)
        // Crash the daemon with the file still open.
        let pid = try #require(m.daemonPID())
        #expect(kill(pid, SIGKILL) == 0)
        try m.waitForDaemonExit(seconds: 30)
        Harness.sh("pkill -f -- '[h]old.py' || true; fusermount3 -uz '\(m.mnt)'", timeout: 60)
        let f = Harness.sh("'\(Harness.binary)' fsck '\(m.image)'", timeout: 120)
        #expect(f.status == 0, "fsck after the crash: \(f.stdout)\n\(f.stderr)")
        #expect(f.stdout.contains("1 orphan inode"), "\(f.stdout)")
        try m.mount()
        try m.unmount()
        let g = Harness.sh("'\(Harness.binary)' fsck '\(m.image)'", timeout: 120)
        #expect(g.status == 0 && !g.stdout.contains("orphan"), "orphan not reclaimed: \(g.stdout)")
        let d = Harness.sh("'\(Harness.binary)' dump '\(m.image)'")
        #expect(!d.stdout.contains("orphan "), "orphan key left")
        #expect(!d.stdout.contains("size=300000"), "orphan inode left")
    }
}
