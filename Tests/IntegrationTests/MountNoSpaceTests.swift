import Foundation
import Testing

/// A full drive: writes fail with ENOSPC, what was written before stays intact, the image
/// unmounts, checks clean and mounts again.
@Suite(.serialized)
struct MountNoSpaceTests {
    @Test
    func fullDriveGivesENOSPCAndBreaksNothing() throws {
        let m = try MountedImage(size: "64M")
        defer { m.close() }
        #expect(m.sh("head -c 100000 /dev/urandom > keep && md5sum keep > '\(m.host)/keep.md5' && sync").ok)
        let fill = m.sh("dd if=/dev/urandom of=fill bs=1M count=200 conv=fsync")
        #expect(!fill.ok, "writing 200 MiB on a 64 MiB drive succeeded")
        #expect(fill.stderr.contains("No space left on device"), "\(fill.stderr)")
        // Metadata operations on the full drive fail cleanly or succeed; nothing crashes.
        m.sh("for i in $(seq 1 50); do mkdir d$i || true; done")
        #expect(m.sh("md5sum -c '\(m.host)/keep.md5'").ok, "an earlier file changed")
        #expect(m.sh("test -f .lsmfs-stats && cat .lsmfs-stats > /dev/null").ok, "daemon not answering")
        try m.unmount()
        let f = Harness.sh("'\(Harness.binary)' fsck '\(m.image)'", timeout: 120)
        #expect(f.status == 0, "\(f.stdout)\n\(f.stderr)")
        try m.mount()
        #expect(m.sh("md5sum -c '\(m.host)/keep.md5' && rm -f fill").ok)
    }
}
