import Foundation
import Testing

/// FUSE_HANDLE_KILLPRIV_V2 (Sources/LSMFSFuse/KillPriv.swift): the kernel asks for
/// `security.capability` once per written inode, not before every write, and the daemon then
/// clears set-ID bits itself (PosixTests.setIDBitsClearedAsLinuxDoes checks those rules on a
/// mount that negotiates it).
@Suite(.serialized)
struct KillPrivTests {
    static func calls(_ stats: String, _ op: String) -> Int {
        for line in stats.split(separator: "\n") where line.hasPrefix("  \(op): calls=") {
            let rest = line.dropFirst("  \(op): calls=".count)
            return Int(rest.prefix { $0.isNumber }) ?? -1
        }
        return 0
    }

    @Test func oneCapabilityProbePerWrittenFile() throws {
        let m = try MountedImage(size: "512M")
        defer { m.close() }
        let r = m.sh("""
            /usr/bin/python3 - <<'EOF'
            import os
            for name in ('a', 'b'):
                fd = os.open(name, os.O_CREAT | os.O_WRONLY, 0o644)
                for i in range(40): os.write(fd, b'x' * 4096)
                os.close(fd)
            EOF
            cat .lsmfs-stats
            """)
        try #require(r.ok, "\(r.stderr)")
        let writes = Self.calls(r.stdout, "write"), probes = Self.calls(r.stdout, "getxattr")
        #expect(writes >= 80, "writes: \(writes)")
        #expect(probes >= 1 && probes <= 4, "security.capability probes for 2 files and \(writes) writes: \(probes)")
        #expect(m.sh("stat -c %s a b").stdout == "163840\n163840\n")
    }
}
