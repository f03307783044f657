import Foundation
import Testing

/// renameat2(RENAME_WHITEOUT) through a real mount (the kernel's FUSE module passes the flag
/// on to the daemon in FUSE_RENAME2): as root the old name becomes a whiteout (character
/// device 0/0, mode S_IFCHR) and the new name has the moved file. Since Linux 5.8 ("vfs: allow
/// unprivileged whiteout creation") the VFS no longer asks CAP_MKNOD, so uid 65534 without
/// capabilities makes whiteouts it owns, and meets a rename's permission checks. The same
/// probes run on the host filesystem; where it makes whiteouts too (ext4, tmpfs), the lines
/// must match.
@Suite(.serialized)
struct WhiteoutMountTests {
    static let prelude = """
        import ctypes, errno, os, stat
        libc = ctypes.CDLL(None, use_errno=True)
        def renameat2(a, b, flags):
            if libc.renameat2(-100, a.encode(), -100, b.encode(), ctypes.c_uint(flags)) != 0:
                raise OSError(ctypes.get_errno(), 'renameat2')
        def e(f, *a):
            try: f(*a); return 'ok'
            except OSError as x: return errno.errorcode[x.errno]
        def rd(p): return open(p).read()
        def wh(p):
            s = os.lstat(p)
            return 'chr=%s mode=%o rdev=%d nlink=%d owner=%d:%d' % (stat.S_ISCHR(s.st_mode), s.st_mode, s.st_rdev, s.st_nlink, s.st_uid, s.st_gid)
        out = []
        def p(k, v): out.append('%s %s' % (k, v))
        """

    static let rootProbe = prelude + "\n" + """
        os.unlink('ro/f'); os.rmdir('ro')
        open('a', 'w').write('moved data')
        p('whiteout', e(renameat2, 'a', 'b', 4)); p('a', wh('a')); p('b', rd('b'))
        p('listing', sorted(os.listdir('.')))
        open('c', 'w').write('C')
        p('noreplace-exists', e(renameat2, 'b', 'c', 5)); p('b-kept', rd('b') + rd('c'))
        p('noreplace-new', e(renameat2, 'b', 'd', 5)); p('b', wh('b')); p('d', rd('d'))
        p('with-exchange', e(renameat2, 'c', 'd', 6))
        p('missing', e(renameat2, 'zz', 'yy', 4))
        open('e', 'w').write('E'); fd = os.open('e', os.O_RDONLY)
        p('replace-open', e(renameat2, 'c', 'e', 4)); p('e', rd('e')); p('c', wh('c'))
        p('replaced-still-readable', os.pread(fd, 10, 0)); p('replaced-nlink', os.fstat(fd).st_nlink); os.close(fd)
        os.mkdir('dir'); open('dir/f', 'w').write('F'); os.mkdir('sub')
        p('dir-across', e(renameat2, 'dir', 'sub/dir', 4)); p('dir', wh('dir'))
        p('moved-f', rd('sub/dir/f')); p('sub-nlink', os.stat('sub').st_nlink); p('dot-nlink', os.stat('.').st_nlink)
        os.mkdir('g'); os.chown('g', 0, 65534); os.chmod('g', 0o2777); open('g/x', 'w').write('x')
        p('setgid-dir', e(renameat2, 'g/x', 'g/y', 4)); p('g/x', wh('g/x'))
        p('whiteout-over-whiteout', e(renameat2, 'e', 'a', 4)); p('a-now', rd('a')); p('e', wh('e'))
        p('rename-whiteout-itself', e(os.rename, 'e', 'e2')); p('e2', wh('e2'))
        p('unlink-whiteout', e(os.unlink, 'e2')); p('e2-gone', e(os.lstat, 'e2'))
        print('\\n'.join(out))
        """

    /// As uid 65534 without capabilities, in a directory it owns holding `ro`, a root-owned
    /// 0755 directory with a file `f` in it.
    static let userProbe = prelude + "\n" + """
        open('u', 'w').write('U')
        caps = int(open('/proc/self/status').read().split('CapEff:')[1].split()[0], 16)
        p('cap-mknod', bool(caps & (1 << 27)))
        p('whiteout', e(renameat2, 'u', 'v', 4)); p('u', wh('u')); p('v', rd('v'))
        p('from-unwritable-dir', e(renameat2, 'ro/f', 'f', 4)); p('ro/f', rd('ro/f')); p('f-absent', e(os.lstat, 'f'))
        p('into-unwritable-dir', e(renameat2, 'v', 'ro/v', 4)); p('v-kept', rd('v'))
        print('\\n'.join(out))
        """

    /// Runs `probe` on the host and on the mount; returns the mount's lines (compared with the
    /// host's when the host filesystem makes whiteouts).
    func both(_ m: MountedImage, _ name: String, _ probe: String, user: String? = nil) throws -> [String] {
        let native = m.host + "/" + name, mounted = m.mnt + "/" + name
        for d in [native, mounted] {
            #expect(Harness.sh("mkdir -p '\(d)/ro' && echo -n F > '\(d)/ro/f' && chown 65534:65534 '\(d)'").ok)
        }
        let expected = Harness.python(probe, in: native, as: user)
        let got = Harness.python(probe, in: mounted, as: user)
        try #require(!got.hasPrefix("FAILED"), "lsmfs run: \(got)\nlog: \(m.log().suffix(2000))")
        if expected.contains("whiteout ok") || expected.contains("whiteout EPERM") {
            Harness.expectSameLines(host: expected, lsmfs: got)
        } else {
            print("host filesystem makes no whiteouts here (\(expected.prefix(200))): lsmfs checked alone")
        }
        return got.split(separator: "\n").map(String.init)
    }

    @Test func renameWhiteoutThroughTheKernel() throws {
        let m = try MountedImage(size: "512M", options: "allow_other")
        defer { m.close() }
        #expect(Harness.sh("chmod 755 '\(m.dir)' '\(m.host)' '\(m.mnt)'").ok)

        let lines = try both(m, "root", Self.rootProbe)
        let whiteout = "chr=True mode=20000 rdev=0 nlink=1"
        for want in ["whiteout ok", "a \(whiteout) owner=0:0", "b moved data",
                     "listing ['a', 'b']", "noreplace-exists EEXIST", "b-kept moved dataC",
                     "noreplace-new ok", "b \(whiteout) owner=0:0", "d moved data",
                     "with-exchange EINVAL", "missing ENOENT",
                     "replace-open ok", "e C", "c \(whiteout) owner=0:0",
                     "replaced-still-readable b'E'", "replaced-nlink 0",
                     "dir-across ok", "dir \(whiteout) owner=0:0", "moved-f F", "sub-nlink 3", "dot-nlink 3",
                     "setgid-dir ok", "g/x \(whiteout) owner=0:65534",
                     "whiteout-over-whiteout ok", "a-now C", "e \(whiteout) owner=0:0",
                     "rename-whiteout-itself ok", "unlink-whiteout ok", "e2-gone ENOENT"] {
            #expect(lines.contains(want), "missing '\(want)' in \(lines)")
        }

        let nobody = "setpriv --reuid=65534 --regid=65534 --clear-groups"
        let user = try both(m, "user", Self.userProbe, user: nobody)
        #expect(user == ["cap-mknod False", "whiteout ok", "u \(whiteout) owner=65534:65534", "v U",
                         "from-unwritable-dir EACCES", "ro/f F", "f-absent ENOENT",
                         "into-unwritable-dir EACCES", "v-kept U"])

        try m.unmount()
        let f = Harness.sh("'\(Harness.binary)' fsck '\(m.image)'")
        #expect(f.status == 0, "\(f.stdout)\n\(f.stderr)")
    }

    /// overlayfs with its upper and work directories on lsmfs: removing or renaming a lower
    /// file leaves a whiteout in the upper directory (a rename copies up, then moves with
    /// RENAME_WHITEOUT), and the merged view keeps it across an overlay and an lsmfs remount.
    @Test func overlayfsUpperLayer() throws {
        guard Harness.hasOverlay() else { return }
        let m = try MountedImage(size: "512M")
        defer { m.close() }
        let lower = m.host + "/lower", merged = m.dir + "/merged"
        let ovl = Harness.overlayMount(lower: lower, mnt: m.mnt, merged: merged)
        defer { Harness.sh("umount -l '\(merged)' 2>/dev/null || true") }
        let setup = Harness.sh("""
            mkdir -p '\(lower)/ld' '\(merged)' '\(m.mnt)/upper' '\(m.mnt)/work'
            echo gone > '\(lower)/lf'; echo moved > '\(lower)/lm'; echo x > '\(lower)/ld/x'
            \(ovl)
            """)
        try #require(setup.ok, "overlay mount: \(setup.stderr)")
        let view = "cd '\(merged)' && ls -A | tr '\\n' ' ' && cat lm2"
        let work = Harness.sh("""
            cd '\(merged)' && rm lf && rm -r ld && mv lm lm2
            cd '\(m.mnt)/upper' && stat -c '%n %F %t:%T %a' lf ld lm && cat lm2
            """)
        #expect(work.ok, "\(work.stderr)")
        #expect(work.stdout == """
            lf character special file 0:0 0
            ld character special file 0:0 0
            lm character special file 0:0 0
            moved

            """, "\(work.stdout)")
        #expect(Harness.sh(view).stdout == "lm2 moved\n")
        // the whiteouts persist: overlay and lsmfs remounted
        #expect(Harness.sh("umount '\(merged)'").ok)
        try m.unmount()
        let f = Harness.sh("'\(Harness.binary)' fsck '\(m.image)'")
        #expect(f.status == 0, "\(f.stdout)\n\(f.stderr)")
        try m.mount()
        #expect(Harness.sh(ovl).ok)
        #expect(Harness.sh(view).stdout == "lm2 moved\n")
        #expect(Harness.sh("umount '\(merged)'").ok)
    }
}
