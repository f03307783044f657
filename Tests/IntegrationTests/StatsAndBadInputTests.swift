import Foundation
import Testing

/// Issue 2, points 5 and 6: the stats pseudo-file, and bad images refused with one line.
@Suite(.serialized)
struct StatsAndBadInputTests {
    @Test func statsFileShowsLevelsAndDriveCountersAndIsReadOnly() throws {
        let m = try MountedImage(size: "1G")
        defer { m.close() }
        let first = m.sh("cat .lsmfs-stats")
        try #require(first.ok, "cat stats failed: \(first.stderr)")
        let text = first.stdout.lowercased()
        #expect(text.contains("level") || text.contains("l0"), "no levels in: \(first.stdout)")
        #expect(text.contains("drive") || text.contains("track"), "no drive counters in: \(first.stdout)")
        let json = m.sh("cat .lsmfs-stats.json | python3 -m json.tool > /dev/null")
        #expect(json.ok, "stats JSON does not parse: \(json.stderr)")
        // Not listed by readdir, but reachable by name.
        let ls = m.sh("ls -a")
        #expect(!ls.stdout.contains(".lsmfs-stats"))
        // The numbers move as files are written.
        let w = m.sh("head -c 20000000 /dev/urandom > data && sync")
        try #require(w.ok)
        let second = m.sh("cat .lsmfs-stats")
        #expect(second.stdout != first.stdout)
        // Writing to it fails with EACCES or EPERM.
        let wr = m.sh("echo x > .lsmfs-stats")
        #expect(!wr.ok)
        #expect(wr.stderr.contains("Permission denied") || wr.stderr.contains("Operation not permitted"), "\(wr.stderr)")
        let fd = open(m.mnt + "/.lsmfs-stats", O_WRONLY)
        let err = errno
        #expect(fd == -1 && (err == EACCES || err == EPERM))
        // `lsmfs stats MOUNTPOINT` prints the same report.
        let cli = Harness.sh("'\(Harness.binary)' stats '\(m.mnt)'")
        #expect(cli.ok && cli.stdout.lowercased().contains("level"))
        // ... and from the unmounted image.
        try m.unmount()
        let offline = Harness.sh("'\(Harness.binary)' stats '\(m.image)'")
        #expect(offline.ok, "stats IMAGE failed: \(offline.stderr)")
        #expect(offline.stdout.lowercased().contains("level"))
    }

    /// Mount must exit non-zero with one line on stderr and mount nothing.
    func expectRefused(image: String, mnt: String, mentions: String) {
        let r = Harness.sh("'\(Harness.binary)' mount '\(image)' '\(mnt)'", timeout: 60)
        #expect(!r.ok, "mount of a bad image succeeded")
        let lines = r.stderr.split(separator: "\n")
        #expect(lines.count == 1, "expected one line, got: \(r.stderr)")
        #expect(r.stderr.lowercased().contains(mentions), "reason '\(r.stderr)' should mention \(mentions)")
        #expect(!Harness.isMounted(mnt))
        if Harness.isMounted(mnt) { Harness.sh("fusermount3 -uz '\(mnt)'") }
    }

    @Test func badImagesAreRefused() throws {
        let dir = Harness.makeTempDir("bad")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let mnt = dir + "/mnt"
        try FileManager.default.createDirectory(atPath: mnt, withIntermediateDirectories: true)
        expectRefused(image: dir + "/missing.img", mnt: mnt, mentions: "not found")
        #expect(Harness.sh("truncate -s 256M '\(dir)/zero.img'").ok)
        expectRefused(image: dir + "/zero.img", mnt: mnt, mentions: "zero")
        #expect(Harness.sh("head -c 1048576 /dev/urandom > '\(dir)/foreign.img'").ok)
        expectRefused(image: dir + "/foreign.img", mnt: mnt, mentions: "not an lsmfs image")
        #expect(Harness.sh("'\(Harness.binary)' mkfs '\(dir)/t.img' --size 1G && truncate -s 100M '\(dir)/t.img'").ok)
        expectRefused(image: dir + "/t.img", mnt: mnt, mentions: "truncated")
        // A bad mountpoint and bad CLI arguments are refused too.
        let noDir = Harness.sh("'\(Harness.binary)' mount '\(dir)/t.img' '\(dir)/nowhere'")
        #expect(!noDir.ok && noDir.stderr.contains("nowhere"))
        let badSize = Harness.sh("'\(Harness.binary)' mkfs '\(dir)/x.img' --size 12Q")
        #expect(!badSize.ok && badSize.stderr.contains("invalid size"))
        #expect(!FileManager.default.fileExists(atPath: dir + "/x.img"))
        let exists = Harness.sh("'\(Harness.binary)' mkfs '\(dir)/t.img' --size 1G")
        #expect(!exists.ok, "mkfs overwrote an existing file without --force")
    }

    @Test func imageInUseIsRefused() throws {
        let m = try MountedImage(size: "512M")
        defer { m.close() }
        let other = m.dir + "/mnt2"
        try FileManager.default.createDirectory(atPath: other, withIntermediateDirectories: true)
        expectRefused(image: m.image, mnt: other, mentions: "in use")
    }
}
