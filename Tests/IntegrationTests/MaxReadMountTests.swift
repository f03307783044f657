import Foundation
import Testing

/// `-o max_read=N`: libfuse refuses INIT unless the init callback asks for the same max_read,
/// and the mount then vanished right after `lsmfs mount` reported success. With it: the mount
/// stays, the kernel has the limit, and files written and read back (also after a remount,
/// so the reads reach the daemon in READs of at most N bytes) are intact — over io_uring and
/// over /dev/fuse.
@Suite(.serialized)
struct MaxReadMountTests {
    /// Writes a 6 MiB random file and a small one on the host, copies them in, and checks they
    /// read back the same (cmp) and by sequential and unaligned dd reads.
    static let roundTrip = """
        head -c 6291456 /dev/urandom > "$HOST/big"
        head -c 70001 /dev/urandom > "$HOST/small"
        cp "$HOST/big" big && cp "$HOST/small" small && sync
        cmp big "$HOST/big" && cmp small "$HOST/small"
        cmp <(dd if=big bs=1000000 skip=1 count=3 status=none) <(dd if="$HOST/big" bs=1000000 skip=1 count=3 status=none)
        cmp <(dd if=big bs=4096 skip=777 count=300 status=none) <(dd if="$HOST/big" bs=4096 skip=777 count=300 status=none)
        echo roundtrip-ok
        """

    func check(_ options: String, maxRead: Int) throws {
        let m = try MountedImage(size: "512M", options: options)
        defer { m.close() }
        sleep(1)   // the failure this guards against: the mount gone a moment after success
        #expect(Harness.isMounted(m.mnt), "\(options): mount vanished; log: \(m.log())")
        let opts = Harness.sh("grep ' \(m.mnt) ' /proc/mounts", timeout: 30).stdout
        #expect(opts.contains("max_read=\(maxRead)"), "\(options): kernel options \(opts)")
        let r = m.sh("HOST='\(m.host)'\n" + Self.roundTrip)
        #expect(r.ok && r.stdout.contains("roundtrip-ok"), "\(options): \(r.stdout)\n\(r.stderr)\nlog: \(m.log())")
        // Remounted with the same option: every byte comes from the daemon again.
        try m.unmount()
        try m.mount(options: options)
        sleep(1)
        #expect(Harness.isMounted(m.mnt), "\(options): remount vanished; log: \(m.log())")
        let again = m.sh("cmp big '\(m.host)/big' && cmp small '\(m.host)/small' && echo again-ok")
        #expect(again.ok && again.stdout.contains("again-ok"), "\(options): \(again.stdout)\n\(again.stderr)")
        try m.unmount()
        #expect(Harness.sh("'\(Harness.binary)' fsck '\(m.image)'").status == 0)
    }

    @Test func maxRead128KiB() throws { try check("max_read=131072", maxRead: 131072) }

    @Test func maxRead128KiBWithoutIOUring() throws { try check("max_read=131072,no_io_uring", maxRead: 131072) }

    /// A small limit: many 4 KiB READs per kernel read-ahead window.
    @Test func maxRead4KiB() throws { try check("max_read=4096", maxRead: 4096) }
}
