import Foundation
import Testing

/// FUSE over io_uring (Sources/CFuseRing, FuseRing.swift): the same work gives the same bytes
/// through the ring and through /dev/fuse, callers on every CPU are served, and the daemon stops
/// cleanly with ring workers running. When the kernel's `fuse.enable_uring` is off (the test
/// command turns it on where it can) the mount serves /dev/fuse and says so.
@Suite(.serialized)
struct FuseRingMountTests {
    static var kernelAllows: Bool {
        let v = (try? String(contentsOfFile: "/sys/module/fuse/parameters/enable_uring", encoding: .utf8)) ?? ""
        return v.hasPrefix("Y")
    }

    /// Mixed work: small and 1 MiB writes, appends, reads, renames, links, xattrs, O_TMPFILE
    /// linked in, a directory tree copied and removed; prints the md5s of what stays.
    static let work = """
        set -e
        mkdir -p d/e && for i in $(seq 1 200); do echo "file $i" > d/e/f$i; done
        dd if="$SRC" of=big bs=1M status=none
        cp big big2 && cmp big big2
        for i in $(seq 1 50); do echo "line $i" >> log; done
        mv d/e/f1 d/moved && ln d/moved d/hard && ln -s moved d/sym
        python3 -c "
        import ctypes, os
        os.setxattr('d/moved', 'user.k', b'value')
        assert os.getxattr('d/hard', 'user.k') == b'value'
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open('d', os.O_TMPFILE | os.O_WRONLY, 0o600)
        os.write(fd, b'from tmpfile')
        # linkat(AT_FDCWD, /proc/self/fd/N, AT_FDCWD, name, AT_SYMLINK_FOLLOW)
        if libc.linkat(-100, ('/proc/self/fd/%d' % fd).encode(), -100, b'd/linked', 0x400) != 0:
            raise OSError(ctypes.get_errno(), 'linkat')
        os.close(fd)"
        cp -r /usr/include/linux tree && rm -r tree/usb && test "$(diff -r /usr/include/linux tree | grep -c '^Only')" = 1
        truncate -s 5000000 big2 && dd if=big of=big2 bs=4k count=3 seek=100 conv=notrunc status=none
        sync
        md5sum big big2 log d/moved d/hard d/linked d/e/f200 | sort
        cat d/sym d/linked; echo; find . -type f | wc -l
        """

    @Test func sameBytesThroughTheRingAndDevFuse() throws {
        let ring = try MountedImage(size: "1G")
        defer { ring.close() }
        let src = ring.host + "/random"
        #expect(Harness.sh("dd if=/dev/urandom of='\(src)' bs=1M count=24 status=none").ok)
        let work = "SRC='\(src)'\n" + Self.work
        let transport = ring.sh("grep fuse_transport .lsmfs-stats").stdout
        #expect(transport.contains(Self.kernelAllows ? "io_uring, " : "/dev/fuse"), "\(transport)")
        let a = ring.sh(work)
        #expect(a.ok, "\(a.stdout)\n\(a.stderr)")
        let listing = ring.sh("ls -lR --time-style=+ . | md5sum").stdout

        let plain = try MountedImage(size: "1G", options: "no_io_uring")
        defer { plain.close() }
        #expect(plain.sh("grep fuse_transport .lsmfs-stats").stdout.contains("/dev/fuse"))
        let b = plain.sh(work)
        #expect(b.ok, "\(b.stdout)\n\(b.stderr)")
        #expect(a.stdout == b.stdout, "ring:\n\(a.stdout)\n/dev/fuse:\n\(b.stdout)")

        // The ring mount's data after a remount through /dev/fuse, and fsck.
        try ring.unmount()
        if Self.kernelAllows {
            #expect(ring.log().contains("requests served"), "\(ring.log())")
        }
        try ring.mount(options: "no_io_uring")
        #expect(ring.sh("md5sum big big2 log d/moved d/hard d/linked d/e/f200 | sort").stdout
                == a.stdout.split(separator: "\n").prefix(7).joined(separator: "\n") + "\n")
        #expect(ring.sh("ls -lR --time-style=+ . | md5sum").stdout == listing)
        try ring.unmount()
        #expect(Harness.sh("'\(Harness.binary)' fsck '\(ring.image)'").status == 0)
    }

    /// Writers pinned to each CPU (each CPU has its own kernel queue and ring workers), all at
    /// once, each checking what it wrote; then a check of everything from one CPU.
    @Test func callersOnEveryCPUAreServed() throws {
        let m = try MountedImage(size: "1G")
        defer { m.close() }
        let cpus = Int(Harness.sh("nproc").stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 1
        var script = "set -e\n"
        for c in 0..<cpus {
            for k in 0..<2 {
                script += """
                    taskset -c \(c) sh -c 'mkdir -p w\(c)_\(k) && for i in $(seq 1 300); do \
                    echo "cpu \(c) writer \(k) file $i" > w\(c)_\(k)/f$i; \
                    test "$(cat w\(c)_\(k)/f$i)" = "cpu \(c) writer \(k) file $i"; done; \
                    dd if=/dev/zero of=w\(c)_\(k)/big bs=256k count=40 status=none' &

                    """
            }
        }
        script += "wait\n"
        let r = m.sh(script, timeout: 600)
        #expect(r.ok, "\(r.stderr)")
        for c in 0..<cpus {
            for k in 0..<2 {
                let check = m.sh("taskset -c 0 sh -c 'test $(ls w\(c)_\(k) | wc -l) = 301 && grep -c \"cpu \(c) writer \(k)\" w\(c)_\(k)/f* | grep -vc \":1$\"; stat -c %s w\(c)_\(k)/big'")
                #expect(check.stdout == "0\n10485760\n", "cpu \(c) writer \(k): \(check.stdout) \(check.stderr)")
            }
        }
        try m.unmount()
        #expect(Harness.sh("'\(Harness.binary)' fsck '\(m.image)'").status == 0)
    }

    /// A ring that cannot be set up after FUSE_OVER_IO_URING was negotiated (fault injected:
    /// the last worker's ring): the daemon makes the kernel turn io_uring off for the
    /// connection, and the mount works through /dev/fuse instead of waiting for the ring.
    @Test func failedRingSetupFallsBackToDevFuse() throws {
        guard Self.kernelAllows else { return }
        let m = try MountedImage(size: "512M")
        defer { m.close() }
        try m.unmount()
        let r = Harness.sh("LSMFS_IO_URING_FAIL_SETUP=1 '\(Harness.binary)' mount '\(m.image)' '\(m.mnt)'", timeout: 60)
        try #require(r.ok, "\(r.stderr)")
        let work = m.sh("mkdir d && for i in $(seq 1 100); do echo $i > d/$i; done && cat d/100 && ls d | wc -l", timeout: 60)
        #expect(work.stdout == "100\n100\n", "\(work.stdout) \(work.stderr)")
        #expect(m.sh("grep fuse_transport .lsmfs-stats").stdout.contains("/dev/fuse"))
        #expect(m.log().contains("cannot set up the rings"), "\(m.log())")
        try m.unmount()
        #expect(Harness.sh("'\(Harness.binary)' fsck '\(m.image)'").status == 0)
    }

    /// SIGTERM with a file of the mount held open: the ring workers stop,
    /// the daemon unmounts, stores everything and exits; the data is there at the next mount.
    @Test func sigtermStopsTheRingWorkers() throws {
        let m = try MountedImage(size: "512M")
        defer { m.close() }
        #expect(m.sh("echo kept > a && dd if=/dev/urandom of=b bs=64k count=16 status=none && md5sum b > '\(m.host)/b.md5'").ok)
        let held = open(m.mnt + "/a", O_RDONLY)   // this process holds a file of the mount open
        #expect(held >= 0)
        let pid = try #require(m.daemonPID())
        #expect(Harness.sh("kill -TERM \(pid)").ok)
        try m.waitForDaemonExit(seconds: 60)
        #expect(m.log().contains("image closed cleanly"), "\(m.log())")
        if held >= 0 { close(held) }
        Harness.sh("fusermount3 -uz '\(m.mnt)' 2>/dev/null || true")
        try m.mount()
        #expect(m.sh("cat a").stdout == "kept\n")
        #expect(m.sh("md5sum b").stdout == (try? String(contentsOfFile: m.host + "/b.md5", encoding: .utf8)))
        try m.unmount()
        #expect(Harness.sh("'\(Harness.binary)' fsck '\(m.image)'").status == 0)
    }
}
