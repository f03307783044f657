import Foundation
import Testing

/// Reads through a real mount by several threads at once — the kernel sends their READs (and
/// its read-ahead for each) in parallel, and KVIMR serves them without its lock and prefetches
/// in-order readers itself — while another thread writes, syncs and deletes other files.
@Suite(.serialized)
struct ConcurrentReadMountTests {
    @Test func parallelColdReadersBesideAWriter() throws {
        let m = try MountedImage(size: "1G")
        defer { m.close() }
        let script = """
            import os, random, threading, hashlib
            size = 48 << 20
            data = os.urandom(size)
            with open('f', 'wb') as f: f.write(data); f.flush(); os.fsync(f.fileno())
            os.system('sync; echo 3 > /proc/sys/vm/drop_caches')
            bad = []
            def sequential(t):
                fd = os.open('f', os.O_RDONLY); off = 0
                while off < size:
                    b = os.pread(fd, 1 << 20, off)
                    if b != data[off:off + len(b)] or not b: bad.append(('seq', t, off)); break
                    off += len(b)
                os.close(fd)
            def scattered(t):
                rnd = random.Random(t); fd = os.open('f', os.O_RDONLY)
                for i in range(400):
                    o = rnd.randrange(size); n = rnd.randrange(1, 200000)
                    if os.pread(fd, n, o) != data[o:o + n]: bad.append(('rnd', t, o, n)); break
                os.close(fd)
            def writer():
                for i in range(12):
                    with open('w%d' % i, 'wb') as f: f.write(os.urandom(3 << 20)); f.flush(); os.fsync(f.fileno())
                    if i >= 2: os.unlink('w%d' % (i - 2))
            ts = [threading.Thread(target=sequential, args=(i,)) for i in range(3)]
            ts += [threading.Thread(target=scattered, args=(i,)) for i in range(2)]
            ts.append(threading.Thread(target=writer))
            for t in ts: t.start()
            for t in ts: t.join()
            print('bad', bad)
            os.system('sync; echo 3 > /proc/sys/vm/drop_caches')
            print('whole', hashlib.sha256(open('f', 'rb').read()).hexdigest() == hashlib.sha256(data).hexdigest())
            """
        let r = m.sh("/usr/bin/python3 - <<'EOF'\n\(script)\nEOF", timeout: 600)
        try #require(r.ok, "\(r.stderr)")
        #expect(r.stdout.contains("bad []"), "\(r.stdout)")
        #expect(r.stdout.contains("whole True"), "\(r.stdout)")
        #expect(!m.log().contains("checksum"), "\(m.log())")
        try m.unmount()
        let f = Harness.sh("'\(Harness.binary)' fsck '\(m.image)'")
        #expect(f.status == 0, "\(f.stdout)\n\(f.stderr)")
    }
}
