import Glibc
import LSMFS
import SystemPackage
import Testing

@Suite struct StatsFileTests {
    @Test func statsPseudoFiles() throws {
        let fs = try Rig.fresh().fs
        let a = try fs.lookup(root, n(".lsmfs-stats"))
        #expect(a.mode == UInt32(S_IFREG) | 0o444 && a.size > 0)
        #expect(throws: errno(EACCES)) { try fs.open(a.ino, flags: O_WRONLY) }
        #expect(throws: errno(EACCES)) { try fs.open(a.ino, flags: O_RDWR) }
        #expect(throws: errno(EPERM)) { try fs.setattr(a.ino, SetAttr(mode: 0o666)) }
        let o = try fs.open(a.ino, flags: O_RDONLY)
        #expect(o.directIO)
        let text = String(decoding: try fs.read(o.fh, offset: 0, size: 1 << 20), as: UTF8.self)
        try fs.release(o.fh)
        for word in ["engine", "levels", "kvimr", "policy", "drive", "write_amplification", "bloom_negatives"] {
            #expect(text.contains(word), "missing \(word)")
        }
        // numbers change as files are written
        fs.recordOp(.write, nanos: 1000, failed: false, bytes: 5)
        _ = try fs.createFile(root, "f", pattern(300_000, seed: 8))
        let json = try fs.lookup(root, n(".lsmfs-stats.json"))
        let j = try fs.open(json.ino, flags: O_RDONLY)
        let body = String(decoding: try fs.read(j.fh, offset: 0, size: 1 << 20), as: UTF8.self)
        try fs.release(j.fh)
        #expect(body.hasPrefix("{") && body.contains("\"fuse_ops\"") && body.contains("\"write\""))
        #expect(fs.statsText() != text)
    }

    @Test func opLatencyPercentiles() throws {
        let fs = try Rig.fresh().fs
        for _ in 0..<98 { fs.recordOp(.getattr, nanos: 3_000, failed: false) }  // 3 us
        fs.recordOp(.getattr, nanos: 900_000, failed: false)                   // 900 us
        fs.recordOp(.getattr, nanos: 5_000_000, failed: true)                  // 5 ms
        let c = fs.opCounters()[FSOp.getattr.rawValue]
        #expect(c.calls == 100 && c.errors == 1)
        #expect(c.percentileMicros(0.5) == 4.096)   // the [2048, 4096) ns bucket
        #expect(c.percentileMicros(0.99) > 500 && c.percentileMicros(0.99) <= 1048.576)
        #expect(c.percentileMicros(1.0) == 5000)
        #expect(fs.statsText().contains("getattr: calls=100 errors=1"))
        #expect(fs.statsJSON().contains("\"p99_us\""))
    }
}
