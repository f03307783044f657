import Foundation
import Testing

/// Chunk patches through a real mount (docs/format/keys.md): the kernel's writeback sends
/// random 4 KiB writes as whole pages, which the daemon stores as patches of the stored
/// chunks (folded past 8 per chunk); the data must read back cached and cold, survive a
/// remount, truncation to one chunk and an unlink, with fsck clean at each step.
@Suite(.serialized)
struct ChunkPatchMountTests {
    @Test func randomBlockWritesReadBackAndFsckClean() throws {
        let m = try MountedImage(size: "1G")
        defer { m.close() }
        let script = """
            import os, random
            rnd = random.Random(5)
            size = 24 << 20
            model = bytearray(os.urandom(size))
            with open('f', 'wb') as f:
                for i in range(0, size, 1 << 20): f.write(model[i:i + (1 << 20)])
                os.fsync(f.fileno())
            fd = os.open('f', os.O_RDWR)
            for i in range(4000):
                off = rnd.randrange(size // 4096) * 4096
                b = os.urandom(4096)
                os.pwrite(fd, b, off)
                model[off:off + 4096] = b
                if i % 1000 == 999:
                    os.fsync(fd)
                    o = rnd.randrange(size); k = rnd.randrange(1, 200000)
                    assert os.pread(fd, k, o) == bytes(model[o:o + k]), ('cached', i)
            # one chunk written block by block (folds past 8 patches)
            for blk in range(16):
                b = os.urandom(4096); os.pwrite(fd, b, (5 << 16) + blk * 4096); model[(5 << 16) + blk * 4096:(5 << 16) + (blk + 1) * 4096] = b
                os.fsync(fd)
            os.fsync(fd); os.close(fd)
            os.system('sync; echo 3 > /proc/sys/vm/drop_caches')
            print('cold', open('f', 'rb').read() == bytes(model))
            open('model', 'wb').write(model)
            """
        let r = m.sh("/usr/bin/python3 - <<'EOF'\n\(script)\nEOF", timeout: 600)
        try #require(r.ok, "\(r.stderr)")
        #expect(r.stdout.contains("cold True"), "\(r.stdout)")
        #expect(m.sh("mv model '\(m.host)/model'").ok)
        try m.unmount()
        let f = Harness.sh("'\(Harness.binary)' fsck '\(m.image)'")
        #expect(f.status == 0, "\(f.stdout)\n\(f.stderr)")
        let dump = Harness.sh("'\(Harness.binary)' dump '\(m.image)' | grep -c 'patch block' || true")
        #expect((Int(dump.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0) > 100, "patches stored: \(dump.stdout) \(dump.stderr)")
        try m.mount()
        #expect(m.sh("cmp f '\(m.host)/model'").ok)
        // Cut to exactly one chunk, then unlink: nothing of the file stays (fsck counts chunks).
        #expect(m.sh("truncate -s 65536 f && head -c 65536 '\(m.host)/model' | cmp - f && rm f").ok)
        try m.unmount()
        let g = Harness.sh("'\(Harness.binary)' fsck '\(m.image)'")
        #expect(g.status == 0, "\(g.stdout)\n\(g.stderr)")
        #expect(g.stdout.contains("0 chunks"), "\(g.stdout)")
    }
}
