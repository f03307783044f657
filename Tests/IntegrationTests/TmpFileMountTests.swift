import Foundation
import Testing

/// open(dir, O_TMPFILE) through a real mount: libfuse 3.14 has no tmpfile operation, so the
/// daemon serves the kernel's FUSE_TMPFILE request in its custom reader (TmpFileOp.swift).
/// The same probe runs on the host filesystem (ext4 on the test machines) and on the mount;
/// where the host supports O_TMPFILE the lines must match.
@Suite(.serialized)
struct TmpFileMountTests {
    static let probe = """
        import ctypes, errno, os, stat, tempfile
        libc = ctypes.CDLL(None, use_errno=True)
        def linkfd(fd, name, empty=False):
            if empty: r = libc.linkat(fd, b'', -100, name.encode(), 0x1000)  # AT_EMPTY_PATH
            else: r = libc.linkat(-100, ('/proc/self/fd/%d' % fd).encode(), -100, name.encode(), 0x400)  # AT_SYMLINK_FOLLOW
            if r != 0: raise OSError(ctypes.get_errno(), 'linkat')
        def e(f, *a):
            try: f(*a); return 'ok'
            except OSError as x: return errno.errorcode[x.errno]
        def tmp(d, flags, mode=0o600): return os.open(d, os.O_TMPFILE | flags, mode)
        def names(d='.'): return sorted(n for n in os.listdir(d) if n not in ('ro', 'grp'))
        out = []
        def p(k, v): out.append('%s %s' % (k, v))
        data = b'tmp data ' * 10000
        fd = tmp('.', os.O_RDWR)
        os.write(fd, data)
        s = os.fstat(fd)
        p('fstat', 'reg=%s mode=%o nlink=%d size=%d owner-is-me=%s' % (stat.S_ISREG(s.st_mode), s.st_mode & 0o7777, s.st_nlink, s.st_size, s.st_uid == os.getuid()))
        p('listing-before', names())
        p('pread', os.pread(fd, 9, 90000 - 9))
        p('link', e(linkfd, fd, 'named'))
        s2 = os.stat('named')
        p('named', 'nlink=%d same-inode=%s size=%d' % (s2.st_nlink, s2.st_ino == s.st_ino, s2.st_size))
        p('fstat-after-link', os.fstat(fd).st_nlink)
        p('content', open('named', 'rb').read() == data)
        p('link-again', e(linkfd, fd, 'named2')); p('nlink-2', os.stat('named').st_nlink)
        os.close(fd)
        fd = tmp('.', os.O_RDWR | os.O_EXCL); os.write(fd, b'x')
        p('excl-link', e(linkfd, fd, 'excl')); os.close(fd)
        fd = tmp('.', os.O_WRONLY); os.write(fd, b'via empty path')
        p('empty-path-link', e(linkfd, fd, 'viaempty', True)); os.close(fd)
        p('rdonly', e(tmp, '.', os.O_RDONLY))
        p('in-unwritable-dir', e(tmp, 'ro', os.O_RDWR))
        p('in-group-dir', e(lambda: os.close(tmp('grp', os.O_RDWR))))
        fd = tmp('.', os.O_WRONLY, 0o640); os.write(fd, b'y' * 300000)
        p('never-linked', os.fstat(fd).st_nlink); os.close(fd)
        with tempfile.TemporaryFile(dir='.') as f:
            f.write(b'hello'); f.seek(0); p('TemporaryFile', f.read())
        p('listing-end', names())
        print('\\n'.join(out))
        """

    /// Runs the probe on the host and on the mount in a directory owned by uid 65534 holding
    /// `ro` (root's, 0755) and `grp` (root:4242, 0770); returns the mount's lines.
    func both(_ m: MountedImage, _ name: String, user: String? = nil) throws -> [String] {
        let native = m.host + "/" + name, mounted = m.mnt + "/" + name
        for d in [native, mounted] {
            #expect(Harness.sh("""
                mkdir -p '\(d)/ro' '\(d)/grp' && chown 65534:65534 '\(d)' && chown 0:4242 '\(d)/grp' && chmod 770 '\(d)/grp'
                """).ok)
        }
        let expected = Harness.python(Self.probe, in: native, as: user)
        let got = Harness.python(Self.probe, in: mounted, as: user)
        try #require(!got.hasPrefix("FAILED"), "lsmfs run: \(got)\nlog: \(m.log().suffix(2000))")
        if expected.contains("link ok") {
            Harness.expectSameLines(host: expected, lsmfs: got)
        } else {
            print("host filesystem has no O_TMPFILE here (\(expected.prefix(200))): lsmfs checked alone")
        }
        return got.split(separator: "\n").map(String.init)
    }

    static let expectedLines = [
        "fstat reg=True mode=600 nlink=0 size=90000 owner-is-me=True", "listing-before []",
        "pread b'tmp data '", "link ok", "named nlink=1 same-inode=True size=90000",
        "fstat-after-link 1", "content True", "link-again ok", "nlink-2 2", "excl-link ENOENT",
        "rdonly EINVAL", "never-linked 0", "TemporaryFile b'hello'",
    ]

    func checkImage(_ m: MountedImage) throws {
        try m.unmount()
        let f = Harness.sh("'\(Harness.binary)' fsck '\(m.image)'")
        #expect(f.status == 0, "\(f.stdout)\n\(f.stderr)")
        #expect(orphanMarkers(m) == "0")
    }

    @Test func tmpfileThroughTheKernel() throws {
        let m = try MountedImage(size: "512M", options: "allow_other")
        defer { m.close() }
        #expect(Harness.sh("chmod 755 '\(m.dir)' '\(m.host)' '\(m.mnt)'").ok)

        let lines = try both(m, "root")
        for want in Self.expectedLines + ["empty-path-link ok", "in-group-dir ok",
                                          "listing-end ['named', 'named2', 'viaempty']"] {
            #expect(lines.contains(want), "missing '\(want)' in \(lines)")
        }
        // uid 65534 without capabilities, with supplementary group 4242 (for `grp`)
        let nobody = "setpriv --reuid=65534 --regid=65534 --groups=4242"
        let user = try both(m, "user", user: nobody)
        for want in Self.expectedLines + ["in-unwritable-dir EACCES", "in-group-dir ok"] {
            #expect(user.contains(want), "missing '\(want)' in \(user)")
        }

        // named tmpfiles persist; the never-linked ones left nothing behind
        try checkImage(m)
        try m.mount()
        #expect(Harness.sh("cmp -s '\(m.mnt)/root/named' '\(m.host)/root/named' && cat '\(m.mnt)/root/viaempty'").stdout == "via empty path")
        try m.unmount()
    }

    /// The daemon checks permissions itself (`daemon_permissions`): the caller and its
    /// supplementary groups come from the request header and /proc, not from libfuse.
    @Test func tmpfileWithDaemonPermissions() throws {
        let m = try MountedImage(size: "512M", options: "allow_other,daemon_permissions")
        defer { m.close() }
        #expect(Harness.sh("chmod 755 '\(m.dir)' '\(m.host)' '\(m.mnt)'").ok)
        let nobody = "setpriv --reuid=65534 --regid=65534 --groups=4242"
        let user = try both(m, "user", user: nobody)
        for want in Self.expectedLines + ["in-unwritable-dir EACCES", "in-group-dir ok"] {
            #expect(user.contains(want), "missing '\(want)' in \(user)")
        }
        try checkImage(m)
    }

    /// overlayfs with lsmfs as upper layer copies files up through O_TMPFILE (then a link into
    /// the upper directory): the copied-up files read back after the lsmfs entry timeout ran
    /// out (the kernel revalidates the upper dentries), and after both remounts.
    @Test func overlayfsCopiesUpThroughTmpfile() throws {
        guard Harness.hasOverlay() else { return }
        let m = try MountedImage(size: "512M", options: "entry_timeout=1,attr_timeout=1")
        defer { m.close() }
        let lower = m.host + "/lower", merged = m.dir + "/merged"
        let ovl = Harness.overlayMount(lower: lower, mnt: m.mnt, merged: merged)
        defer { Harness.sh("umount -l '\(merged)' 2>/dev/null || true") }
        let setup = Harness.sh("""
            mkdir -p '\(lower)' '\(merged)' '\(m.mnt)/upper' '\(m.mnt)/work'
            echo lower > '\(lower)/f'; echo g > '\(lower)/g'
            \(ovl)
            """)
        try #require(setup.ok, "overlay mount: \(setup.stderr)")
        let view = "cd '\(merged)' && cat f g2"
        let work = Harness.sh("cd '\(merged)' && echo more >> f && mv g g2 && sleep 1.5 && \(view)")
        #expect(work.stdout == "lower\nmore\ng\n", "\(work.stdout) \(work.stderr)")
        let links = Harness.sh("grep -E '^ *link: calls=' '\(m.mnt)/.lsmfs-stats'").stdout
        #expect(links.contains("calls=2 errors=0"), "copy-up links: \(links)")
        #expect(Harness.sh("umount '\(merged)'").ok)
        try checkImage(m)
        try m.mount()
        #expect(Harness.sh(ovl).ok)
        #expect(Harness.sh(view).stdout == "lower\nmore\ng\n")
        #expect(Harness.sh("umount '\(merged)'").ok)
    }

    /// A daemon killed with a never-linked tmpfile open: the next mount reclaims it.
    @Test func crashedDaemonsTmpfileIsReclaimedAtMount() throws {
        let m = try MountedImage(size: "512M")
        defer { m.close() }
        // the file's holder kills the daemon itself: its release never arrives
        let daemon = try #require(m.daemonPID())
        let holder = Harness.sh("""
            cd '\(m.mnt)' && python3 -c "
            import os
            fd = os.open('.', os.O_TMPFILE | os.O_RDWR, 0o600)
            os.write(fd, b'z' * 500000); os.fsync(fd)
            os.kill(\(daemon), 9); print('killed')"
            """)
        #expect(holder.stdout == "killed\n", "holder: \(holder.stdout) \(holder.stderr)")
        try m.waitForDaemonExit()
        Harness.sh("fusermount3 -uz '\(m.mnt)'")
        #expect(orphanMarkers(m) == "1")
        try m.mount()
        #expect(Harness.sh("ls -A '\(m.mnt)'").stdout == "")
        try checkImage(m)
    }

    func orphanMarkers(_ m: MountedImage) -> String {
        Harness.sh("'\(Harness.binary)' dump '\(m.image)' 2>/dev/null | grep -c '^orphan ' || true")
            .stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
