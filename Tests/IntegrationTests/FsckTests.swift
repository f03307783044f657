import Foundation
import Testing

/// `lsmfs fsck` and `lsmfs dump` on real images: clean after ordinary use, non-zero and naming
/// the damaged structure after corruption (e2fsck exit codes: 0 clean, 4 uncorrected, 8 operational).
@Suite(.serialized)
struct FsckTests {
    static func fsck(_ image: String, _ args: String = "") -> Harness.Result {
        Harness.sh("'\(Harness.binary)' fsck '\(image)' \(args)", timeout: 120)
    }

    /// A populated, cleanly unmounted image.
    static func populated() throws -> MountedImage {
        let m = try MountedImage(size: "512M")
        let w = m.sh("""
            mkdir -p d/e/f && echo hello > d/a && ln d/a d/hard && ln -s a d/sym && mkfifo d/fifo
            head -c 3000000 /dev/urandom > big && truncate -s 10M sparse && echo x >> sparse
            for i in $(seq 1 200); do echo $i > d/e/f/n$i; done
            mv d/e/f/n1 d/moved && rm d/e/f/n2 && sync
            """)
        try #require(w.ok, "populate failed: \(w.stderr)")
        try m.unmount()
        return m
    }

    @Test func cleanImageChecksCleanAndDumps() throws {
        let m = try Self.populated()
        defer { m.close() }
        let r = Self.fsck(m.image)
        #expect(r.status == 0, "fsck of a clean image: \(r.status)\n\(r.stdout)\n\(r.stderr)")
        #expect(r.stdout.contains("clean"))
        #expect(r.stdout.contains("files"))
        let d = Harness.sh("'\(Harness.binary)' dump '\(m.image)'", timeout: 120)
        #expect(d.ok, "dump failed: \(d.stderr)")
        #expect(d.stdout.contains("superblock:"))
        #expect(d.stdout.contains("track map slot A"))
        #expect(d.stdout.contains("dentry 1/\"d\""))
        #expect(d.stdout.contains("\"sym\""))
        #expect(d.stdout.contains("chunk "))
        // Neither command changed the image: fsck still clean, and a mount sees the files.
        #expect(Self.fsck(m.image, "-q").status == 0)
        let rep = Self.fsck(m.image, "--repair")
        #expect(rep.status == 0, "fsck --repair of a clean image: \(rep.status) \(rep.stdout)")
        try m.mount()
        #expect(m.sh("test \"$(cat d/hard)\" = hello && test -p d/fifo && test $(ls d/e/f | wc -l) = 198").ok)
        try m.unmount()
        // A mounted image is refused as an operational error (8), not reported as damaged.
        try m.mount()
        let busy = Self.fsck(m.image)
        #expect(busy.status == 8, "fsck of a mounted image: \(busy.status) \(busy.stderr)")
        try m.unmount()
    }

    @Test func corruptSuperblockIsNamed() throws {
        let m = try Self.populated()
        defer { m.close() }
        #expect(Harness.sh("printf '\\x55' | dd of='\(m.image)' bs=1 seek=300 conv=notrunc status=none").ok)
        let r = Self.fsck(m.image)
        #expect(r.status == 4, "status \(r.status): \(r.stderr)")
        #expect(r.stderr.contains("superblock"), "\(r.stderr)")
        let missing = Self.fsck(m.dir + "/nothing.img")
        #expect(missing.status == 8, "missing image: \(missing.status)")
    }

    @Test func corruptTableIsNamed() throws {
        let m = try MountedImage(size: "512M")
        defer { m.close() }
        // Enough metadata and data that the engine writes SSTables.
        let w = m.sh("for i in $(seq 1 3000); do echo file$i > f$i; done; head -c 40000000 /dev/urandom > big; sync")
        try #require(w.ok, "\(w.stderr)")
        try m.unmount()
        let d = Harness.sh("'\(Harness.binary)' dump '\(m.image)' --no-keys", timeout: 120)
        try #require(d.ok, "\(d.stderr)")
        // "file N sstable level L size S" followed by "  extent ... @byte OFF".
        let lines = d.stdout.split(separator: "\n").map(String.init)
        var target: (off: UInt64, size: UInt64)?
        for (i, line) in lines.enumerated() where line.hasPrefix("file ") && line.contains(" sstable ") && i + 1 < lines.count {
            let f = line.split(separator: " ")
            guard let si = f.firstIndex(of: "size"), let size = UInt64(f[si + 1]),
                  let off = lines[i + 1].split(separator: " ").last.flatMap({ UInt64($0) }) else { continue }
            if size > 8192 { target = (off, size); break }
        }
        let t = try #require(target, "no SSTable in dump:\n\(d.stdout)")
        let at = t.off + min(t.size / 2, 1_000_000)
        #expect(Harness.sh("head -c 512 /dev/urandom | dd of='\(m.image)' bs=1 seek=\(at) conv=notrunc status=none").ok)
        let r = Self.fsck(m.image)
        #expect(r.status == 4, "status \(r.status)\n\(r.stdout)\n\(r.stderr)")
        #expect(r.stdout.contains("ERROR engine"), "\(r.stdout)")
        #expect(r.stdout.contains("table"), "\(r.stdout)")
    }

    @Test func corruptTrackMapSlotIsNamed() throws {
        let m = try Self.populated()
        defer { m.close() }
        let d = Harness.sh("'\(Harness.binary)' dump '\(m.image)' --no-keys", timeout: 120)
        try #require(d.ok, "\(d.stderr)")
        // Damage both slots' payloads: there is then no usable track map.
        var offsets: [Int] = []
        for line in d.stdout.split(separator: "\n") where line.hasPrefix("track map slot ") {
            if let r = line.range(of: "@meta+"), let end = line[r.upperBound...].firstIndex(of: ":"),
               let off = Int(line[r.upperBound..<end]) { offsets.append(off) }
        }
        try #require(offsets.count == 2, "\(d.stdout)")
        for off in offsets {
            // The meta zone starts after the 4 KiB superblock.
            let at = 4096 + off + 16
            #expect(Harness.sh("head -c 32 /dev/urandom | dd of='\(m.image)' bs=1 seek=\(at) conv=notrunc status=none").ok)
        }
        let r = Self.fsck(m.image)
        #expect(r.status != 0, "\(r.stdout)")
        #expect((r.stdout + r.stderr).contains("track map"), "\(r.stdout)\n\(r.stderr)")
    }
}
