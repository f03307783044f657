import Foundation
import Testing

/// Mount options: writeback cache with O_APPEND and sizes right, read-only mounts, cache
/// timeouts and sync_interval accepted, bad values refused.
@Suite(.serialized)
struct MountOptionTests {
    static let appendScript = """
        for i in $(seq 1 200); do echo "line $i" >> f; done
        test $(wc -l < f) = 200 && test "$(tail -n1 f)" = "line 200"
        (for i in $(seq 1 150); do echo "a$i" >> g; done) & (for i in $(seq 1 150); do echo "b$i" >> g; done) & wait
        test $(wc -l < g) = 300 && test $(grep -c '^a[0-9]*$' g) = 150 && test $(grep -c '^b[0-9]*$' g) = 150
        /usr/bin/python3 - <<'EOF'
        import os
        fd = os.open('h', os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        other = os.open('h', os.O_RDWR)
        os.write(fd, b'12345'); assert os.fstat(fd).st_size == 5
        os.pwrite(other, b'abcdefghij', 0)          # another handle grows the file
        os.write(fd, b'XY')                         # O_APPEND goes to the new end
        assert os.stat('h').st_size == 12, os.stat('h').st_size
        os.ftruncate(other, 3); os.write(fd, b'Z')
        os.close(fd); os.close(other)
        assert open('h', 'rb').read() == b'abcZ', open('h', 'rb').read()
        print('append-ok')
        EOF
        truncate -s 100000 big && echo tail >> big && test $(stat -c %s big) = 100005
        """

    @Test func writebackCacheKeepsAppendAndSizeRight() throws {
        let m = try MountedImage(size: "512M", options: "writeback_cache")
        defer { m.close() }
        let r = m.sh(Self.appendScript)
        #expect(r.ok && r.stdout.contains("append-ok"), "\(r.stdout)\n\(r.stderr)")
        let before = m.sh("md5sum f g h big").stdout
        try m.unmount()
        try m.mount()
        #expect(m.sh("md5sum f g h big").stdout == before, "contents changed across the remount")
        try m.unmount()
        #expect(Harness.sh("'\(Harness.binary)' fsck '\(m.image)'").status == 0)
    }

    @Test func appendWithoutWritebackToo() throws {
        let m = try MountedImage(size: "512M", options: "entry_timeout=0,attr_timeout=0,sync_interval=1")
        defer { m.close() }
        let r = m.sh(Self.appendScript)
        #expect(r.ok && r.stdout.contains("append-ok"), "\(r.stdout)\n\(r.stderr)")
    }

    @Test func readOnlyMountAndBadOptions() throws {
        let m = try MountedImage(size: "512M")
        defer { m.close() }
        #expect(m.sh("mkdir d && echo hi > d/f && setfattr -n user.x -v 1 d/f 2>/dev/null || true").ok)
        try m.unmount()
        try m.mount(options: "ro")
        #expect(m.sh("cat d/f").stdout == "hi\n")
        let w = m.sh("echo x > d/g")
        #expect(!w.ok && w.stderr.contains("Read-only file system"), "\(w.stderr)")
        #expect(!m.sh("rm d/f").ok)
        #expect(!m.sh("touch d/f").ok)
        try m.unmount()
        for bad in ["attr_timeout=-1", "entry_timeout=abc", "sync_interval=x"] {
            let r = Harness.sh("'\(Harness.binary)' mount '\(m.image)' '\(m.mnt)' -o \(bad)", timeout: 60)
            #expect(!r.ok && r.stderr.contains("invalid"), "\(bad): \(r.stderr)")
            #expect(!Harness.isMounted(m.mnt))
        }
    }
}
