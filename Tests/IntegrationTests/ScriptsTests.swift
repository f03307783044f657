import Foundation
import Testing

/// The README's start command and `mount -t fuse.lsmfs` (issue 2, points 1 and 7).
@Suite(.serialized)
struct ScriptsTests {
    @Test func startScriptMountsADefaultImage() throws {
        let dir = Harness.makeTempDir("start")
        defer {
            Harness.sh("fusermount3 -uz '\(dir)/mnt' 2>/dev/null; pkill -9 -f -- '[m]ount \(dir)/data/lsmfs.img ' || true")
            try? FileManager.default.removeItem(atPath: dir)
        }
        let r = Harness.sh("LSMFS_DATA='\(dir)/data' LSMFS_MNT='\(dir)/mnt' LSMFS_SIZE=1G '\(Harness.repoRoot)/mount-scripts/start.sh'",
                           timeout: 1200)
        #expect(r.ok, "start.sh failed: \(r.stdout) \(r.stderr)")
        #expect(Harness.isMounted(dir + "/mnt"))
        #expect(r.stdout.contains("fusermount3 -u"))
        let use = Harness.sh("echo hello > f && cat f", cwd: dir + "/mnt")
        #expect(use.stdout == "hello\n")
        // Running it again is harmless: the image exists and stays mounted.
        let again = Harness.sh("LSMFS_DATA='\(dir)/data' LSMFS_MNT='\(dir)/mnt' '\(Harness.repoRoot)/mount-scripts/start.sh'", timeout: 1200)
        #expect(again.ok && again.stdout.contains("already mounted"))
        #expect(Harness.sh("fusermount3 -u '\(dir)/mnt'").ok)
    }

    @Test(.enabled(if: getuid() == 0 && FileManager.default.fileExists(atPath: "/sbin/mount.fuse.lsmfs")))
    func mountTypeFuseLsmfs() throws {
        let dir = Harness.makeTempDir("mountt")
        defer {
            Harness.sh("fusermount3 -uz '\(dir)/mnt' 2>/dev/null; pkill -9 -f -- '[m]ount \(dir)/i.img ' || true")
            try? FileManager.default.removeItem(atPath: dir)
        }
        try #require(Harness.sh("mkdir -p '\(dir)/mnt' && '\(Harness.binary)' mkfs '\(dir)/i.img' --size 512M").ok)
        let r = Harness.sh("mount -t fuse.lsmfs '\(dir)/i.img' '\(dir)/mnt' -o sync_interval=2", timeout: 120)
        #expect(r.ok, "mount -t fuse.lsmfs failed: \(r.stderr)")
        #expect(Harness.isMounted(dir + "/mnt"))
        #expect(Harness.sh("echo x > '\(dir)/mnt/f' && umount '\(dir)/mnt'").ok)
    }
}
