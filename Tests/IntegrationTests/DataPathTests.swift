import Foundation
import Testing

/// File data through a real mount: the write buffer (random and sequential writes that fill
/// it, write-behind, flush at fsync), the kernel's read-ahead window, the page cache kept
/// across writes (no auto_inval_data), and a crash in the middle of buffered writes.
@Suite(.serialized)
struct DataPathTests {
    /// Random partial writes over a large file (many buffered chunks, several buffer flushes
    /// and write-behinds) and sequential overwrites, read back through the page cache and,
    /// after dropping it, from the daemon: both must match a model kept on the host.
    @Test func randomAndSequentialWritesReadBackCachedAndCold() throws {
        let m = try MountedImage(size: "1G")
        defer { m.close() }
        let script = """
            import os, random
            rnd = random.Random(7)
            size = 40 << 20
            model = bytearray(os.urandom(size))
            with open('f', 'wb') as f:
                for i in range(0, size, 1 << 20): f.write(model[i:i + (1 << 20)])
            fd = os.open('f', os.O_RDWR)
            for i in range(3000):
                off = rnd.randrange(size + 100000)
                n = rnd.randrange(1, 9000)
                b = os.urandom(n)
                os.pwrite(fd, b, off)
                if off > len(model): model += bytes(off - len(model))
                model[off:off + n] = b
                if i % 500 == 0:
                    o = rnd.randrange(len(model)); k = rnd.randrange(1, 300000)
                    assert os.pread(fd, k, o) == bytes(model[o:o + k]), ('cached', i)
            # a sequential overwrite of the middle, in 1 MiB pieces (fills a buffer: write-behind)
            for i in range(8 << 20, 28 << 20, 1 << 20):
                b = os.urandom(1 << 20); os.pwrite(fd, b, i); model[i:i + len(b)] = b
            print('cached', os.pread(fd, len(model) + 10, 0) == bytes(model), os.fstat(fd).st_size == len(model))
            os.fsync(fd); os.close(fd)
            os.system('sync; echo 3 > /proc/sys/vm/drop_caches')
            print('cold', open('f', 'rb').read() == bytes(model))
            open('model', 'wb').write(model)
            """
        let r = m.sh("/usr/bin/python3 - <<'EOF'\n\(script)\nEOF", timeout: 600)
        try #require(r.ok, "\(r.stderr)")
        #expect(r.stdout.contains("cached True True"), "\(r.stdout)")
        #expect(r.stdout.contains("cold True"), "\(r.stdout)")
        #expect(m.sh("mv model '\(m.host)/model'").ok)
        try m.unmount()
        let f = Harness.sh("'\(Harness.binary)' fsck '\(m.image)'")
        #expect(f.status == 0, "\(f.stdout)\n\(f.stderr)")
        try m.mount()
        #expect(m.sh("cmp f '\(m.host)/model'").ok)
    }

    /// Overwrites of a file the page cache holds are seen by later reads (the kernel updates
    /// its own pages; nothing re-validates them), also across opens and after the cache is
    /// dropped; a truncate and a punched hole drop the cached pages they cover.
    @Test func cachedPagesFollowOverwritesTruncateAndPunch() throws {
        let m = try MountedImage(size: "512M")
        defer { m.close() }
        let script = """
            import os
            data = bytearray(os.urandom(4 << 20))
            open('f', 'wb').write(data)
            assert open('f', 'rb').read() == data            # now cached
            fd = os.open('f', os.O_WRONLY)
            os.pwrite(fd, b'x' * 5000, 70000); data[70000:75000] = b'x' * 5000
            os.close(fd)
            print('overwrite', open('f', 'rb').read() == data)
            os.truncate('f', 100000); del data[100000:]
            os.truncate('f', 300000); data += bytes(200000)
            print('truncate', open('f', 'rb').read() == data)
            os.system('fallocate -p -o 4096 -l 65536 f'); data[4096:69632] = bytes(65536)
            print('punch', open('f', 'rb').read() == data)
            os.system('sync; echo 3 > /proc/sys/vm/drop_caches')
            print('cold', open('f', 'rb').read() == data)
            """
        let r = m.sh("/usr/bin/python3 - <<'EOF'\n\(script)\nEOF")
        try #require(r.ok, "\(r.stderr)")
        for line in ["overwrite True", "truncate True", "punch True", "cold True"] {
            #expect(r.stdout.contains(line), "\(line): \(r.stdout)")
        }
    }

    /// The mount's read-ahead window is set (256 KiB by default, `read_ahead_kb=` to change,
    /// bad values refused); sequential reads then arrive as requests of that size.
    @Test func readAheadWindowIsSet() throws {
        guard getuid() == 0 else { return }   // /sys/class/bdi is root's
        let m = try MountedImage(size: "512M")
        defer { m.close() }
        let ra = m.sh("cat /sys/class/bdi/$(mountpoint -d '\(m.mnt)')/read_ahead_kb")
        #expect(ra.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "256", "\(ra.stdout) \(ra.stderr)")
        let r = m.sh("""
            dd if=/dev/urandom of=f bs=1M count=8 status=none && sync && echo 3 > /proc/sys/vm/drop_caches
            reads() { grep -o ' read: calls=[0-9]*' .lsmfs-stats | grep -o '[0-9]*$' || echo 0; }
            before=$(reads)
            cat f > /dev/null
            after=$(reads)
            echo reads $(( after - before ))
            """)
        try #require(r.ok, "\(r.stderr)")
        let reads = Int(r.stdout.split(separator: " ").last?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "") ?? -1
        #expect(reads > 0 && reads <= 40, "8 MiB read in \(reads) requests")
        try m.unmount()
        try m.mount(options: "read_ahead_kb=1024")
        let ra2 = m.sh("cat /sys/class/bdi/$(mountpoint -d '\(m.mnt)')/read_ahead_kb")
        #expect(ra2.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "1024", "\(ra2.stdout)")
        try m.unmount()
        for bad in ["read_ahead_kb=-1", "read_ahead_kb=x", "read_ahead_kb=100000"] {
            let b = Harness.sh("'\(Harness.binary)' mount '\(m.image)' '\(m.mnt)' -o \(bad)", timeout: 60)
            #expect(!b.ok && b.stderr.contains("invalid"), "\(bad): \(b.stderr)")
            #expect(!Harness.isMounted(m.mnt))
        }
    }

    /// kill -9 while partial-chunk writes into many chunks sit in the write buffer (no
    /// periodic sync): after remounting, what an fsync covered is there in full (an fsync of
    /// any file stores every buffer), the one unsynced write is either all there or not at all,
    /// and fsck is clean.
    @Test func killDashNineDuringBufferedWrites() throws {
        let m = try MountedImage(size: "1G", options: "sync_interval=0")
        defer { m.close() }
        let script = """
            import os
            base = os.urandom(6 << 20)
            for name in ('a', 'b'):
                with open(name, 'wb') as f: f.write(base); f.flush(); os.fsync(f.fileno())
            fd = os.open('a', os.O_RDWR)
            new = bytearray(base)
            for i in range(0, 6 << 20, 70000):
                os.pwrite(fd, b'z' * 3000, i); new[i:i + 3000] = b'z' * 3000
            os.pwrite(fd, b'tail', (6 << 20) + 5); new += bytes(5) + b'tail'
            open('\(m.host)/new', 'wb').write(new)
            new[1000:3000] = b'q' * 2000
            open('\(m.host)/newer', 'wb').write(new)
            fb = os.open('b', os.O_RDWR)
            os.pwrite(fb, b'y' * 100, 10)
            os.fsync(fb)
            os.pwrite(fd, b'q' * 2000, 1000)              # buffered, never synced
            print('written')
            """
        let w = m.sh("/usr/bin/python3 - <<'EOF'\n\(script)\nEOF")
        try #require(w.ok && w.stdout.contains("written"), "\(w.stderr)")
        let pid = try #require(m.daemonPID())
        #expect(kill(pid, SIGKILL) == 0)
        try m.waitForDaemonExit(seconds: 30)
        Harness.sh("fusermount3 -uz '\(m.mnt)'", timeout: 60)
        try m.mount(options: "sync_interval=0")
        let check = m.sh("""
            (cmp -s a '\(m.host)/new' || cmp -s a '\(m.host)/newer') && echo a-ok
            head -c 110 b | tail -c 100 | tr -d y | wc -c
            """)
        #expect(check.stdout.contains("a-ok"), "\(check.stdout) \(check.stderr)")
        #expect(check.stdout.hasSuffix("0\n"), "\(check.stdout)")
        try m.unmount()
        let f = Harness.sh("'\(Harness.binary)' fsck '\(m.image)'")
        #expect(f.status == 0, "\(f.stdout)\n\(f.stderr)")
    }
}
