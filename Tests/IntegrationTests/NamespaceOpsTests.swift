import Foundation
import Testing

/// Namespace operations and their errnos through a real mount, compared line by line with the
/// host filesystem running the same script: hard links, mknod, renameat2 NOREPLACE/EXCHANGE,
/// directory link counts, open-unlinked files, and the usual mistakes. (Device nodes are
/// created, not opened: FUSE mounts are nodev unless mounted with -o dev.)
@Suite(.serialized)
struct NamespaceOpsTests {
    static let probe = """
        import ctypes, errno, os, socket, stat
        libc = ctypes.CDLL(None, use_errno=True)
        def e(f, *a, **k):
            try: r = f(*a, **k); return 'ok' if r is None or isinstance(r, int) and r >= 0 else r
            except OSError as x: return errno.errorcode[x.errno]
        def renameat2(a, b, flags):
            r = libc.renameat2(-100, a.encode(), -100, b.encode(), ctypes.c_uint(flags))
            if r != 0: raise OSError(ctypes.get_errno(), 'renameat2')
        def rd(p): return open(p).read()
        out = []
        def p(k, v): out.append('%s %s' % (k, v))
        open('a', 'w').write('A'); open('b', 'w').write('B'); os.mkdir('d'); os.mkdir('d/sub')
        p('link', e(os.link, 'a', 'a2')); p('nlink-a', os.stat('a').st_nlink)
        p('link-exists', e(os.link, 'a', 'b')); p('link-dir', e(os.link, 'd', 'd2'))
        p('unlink-one-link', e(os.unlink, 'a2')); p('nlink-a-after', os.stat('a').st_nlink)
        p('dir-nlink', os.stat('d').st_nlink); os.mkdir('d/sub2'); p('dir-nlink-2', os.stat('d').st_nlink)
        p('mkfifo', e(os.mkfifo, 'fifo')); p('fifo-type', stat.S_ISFIFO(os.lstat('fifo').st_mode))
        s = socket.socket(socket.AF_UNIX); s.bind('sock'); s.close()
        p('sock-type', stat.S_ISSOCK(os.lstat('sock').st_mode))
        p('mknod-chr', e(os.mknod, 'null', 0o666 | stat.S_IFCHR, os.makedev(1, 3)))
        p('chr-rdev', (os.major(os.lstat('null').st_rdev), os.minor(os.lstat('null').st_rdev)))
        p('noreplace-exists', e(renameat2, 'a', 'b', 1))
        p('noreplace-new', e(renameat2, 'a', 'c', 1)); p('c', rd('c'))
        p('exchange', e(renameat2, 'b', 'c', 2)); p('b-c', rd('b') + rd('c'))
        p('exchange-missing', e(renameat2, 'b', 'zz', 2))
        p('exchange-file-dir', e(renameat2, 'b', 'd', 2)); p('b-is-dir', os.path.isdir('b'))
        renameat2('b', 'd', 2)
        p('noreplace-and-exchange', e(renameat2, 'b', 'c', 3))
        p('rename-dir-into-self', e(os.rename, 'd', 'd/sub/x'))
        p('rename-dir-over-file', e(os.rename, 'd', 'c'))
        p('rename-file-over-dir', e(os.rename, 'c', 'd'))
        p('rename-over-nonempty', e(os.rename, 'd/sub', 'd'))
        os.mkdir('empty'); p('rename-dir-over-empty', e(os.rename, 'd/sub2', 'empty')); p('dir-nlink-3', os.stat('d').st_nlink)
        p('rmdir-nonempty', e(os.rmdir, 'd')); p('rmdir-file', e(os.rmdir, 'c')); p('unlink-dir', e(os.unlink, 'd'))
        p('mkdir-exists', e(os.mkdir, 'd')); p('open-dir-write', e(os.open, 'd', os.O_WRONLY))
        p('notdir', e(os.stat, 'c/x')); p('noent', e(os.stat, 'nothing'))
        p('name-too-long', e(os.mkdir, 'n' * 256)); p('name-255', e(os.mkdir, 'n' * 255))
        os.symlink('loop1', 'loop2'); os.symlink('loop2', 'loop1'); p('eloop', e(rd, 'loop1'))
        p('readlink', os.readlink('loop1'))
        p('excl', e(os.open, 'c', os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        p('rmdir-dot', e(os.rmdir, 'd/.'))
        fd = os.open('c', os.O_RDWR); os.unlink('c')
        os.pwrite(fd, b'still here', 0); p('open-unlinked', os.pread(fd, 100, 0)); p('fstat-nlink', os.fstat(fd).st_nlink)
        os.close(fd); p('gone', e(os.stat, 'c'))
        p('truncate-up-down', e(os.truncate, 'b', 100000) or os.stat('b').st_size)
        os.truncate('b', 3); p('size-3', os.stat('b').st_size)
        print('\\n'.join(out))
        """

    @Test func namespaceOperationsMatchTheHost() throws {
        let m = try MountedImage(size: "512M")
        defer { m.close() }
        let native = m.host + "/ns"
        try FileManager.default.createDirectory(atPath: native, withIntermediateDirectories: true)
        let expected = Harness.python(Self.probe, in: native)
        try #require(!expected.hasPrefix("FAILED"), "host run: \(expected)")
        let got = Harness.python(Self.probe, in: m.mnt)
        Harness.expectSameLines(host: expected, lsmfs: got)
        try m.unmount()
        let f = Harness.sh("'\(Harness.binary)' fsck '\(m.image)'")
        #expect(f.status == 0, "\(f.stdout)\n\(f.stderr)")
    }
}
