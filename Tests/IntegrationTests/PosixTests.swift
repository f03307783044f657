import Foundation
import Testing

/// POSIX semantics through a real mount: extended attributes, set-ID clearing, relatime,
/// statfs inode counts, fsyncdir. Each test ends with `lsmfs fsck` clean.
@Suite(.serialized)
struct PosixTests {
    static let py = "/usr/bin/python3"
    static let nobody = "setpriv --reuid=65534 --regid=65534 --clear-groups"

    static func fsckClean(_ m: MountedImage) throws {
        try m.unmount()
        let r = Harness.sh("'\(Harness.binary)' fsck '\(m.image)'", timeout: 120)
        #expect(r.status == 0, "fsck after the test: \(r.status)\n\(r.stdout)\n\(r.stderr)")
    }

    @Test func extendedAttributes() throws {
        let m = try MountedImage(size: "512M", options: "allow_other")
        defer { m.close() }
        let script = """
            import ctypes, errno, os
            libc = ctypes.CDLL(None, use_errno=True)
            def err(f, *a):
                try: f(*a); return 'ok'
                except OSError as e: return errno.errorcode[e.errno]
            open('f', 'w').write('data'); os.mkdir('d'); os.symlink('f', 'l')
            os.setxattr('f', 'user.a', b'hello')
            os.setxattr('f', 'user.empty', b'')
            os.setxattr('d', 'user.dir', b'x' * 1000)
            os.setxattr('f', 'trusted.t', b'v' * 65536)
            print('get', os.getxattr('f', 'user.a'), len(os.getxattr('f', 'trusted.t')), os.getxattr('f', 'user.empty'))
            print('list', sorted(os.listxattr('f')), os.listxattr('d'))
            print('create-existing', err(os.setxattr, 'f', 'user.a', b'x', os.XATTR_CREATE))
            print('replace-missing', err(os.setxattr, 'f', 'user.zz', b'x', os.XATTR_REPLACE))
            os.setxattr('f', 'user.a', b'world', os.XATTR_REPLACE)
            print('replaced', os.getxattr('f', 'user.a'))
            print('get-missing', err(os.getxattr, 'f', 'user.zz'))
            print('remove-missing', err(os.removexattr, 'f', 'user.zz'))
            print('bad-namespace', err(os.setxattr, 'f', 'bogus.a', b'x'))
            print('user-on-symlink', err(lambda: os.setxattr('l', 'user.a', b'x', 0, follow_symlinks=False)))
            print('too-big', err(os.setxattr, 'f', 'user.big', b'x' * 65537))
            buf = ctypes.create_string_buffer(2)
            n = libc.getxattr(b'f', b'user.a', buf, ctypes.c_size_t(2))
            print('erange-get', n, errno.errorcode[ctypes.get_errno()])
            n = libc.getxattr(b'f', b'user.a', None, ctypes.c_size_t(0))
            print('size-query', n)
            n = libc.listxattr(b'f', buf, ctypes.c_size_t(2))
            print('erange-list', n, errno.errorcode[ctypes.get_errno()])
            os.removexattr('f', 'user.empty')
            print('after-remove', sorted(os.listxattr('f')))
            """
        let r = m.sh("\(Self.py) - <<'EOF'\n\(script)\nEOF")
        try #require(r.ok, "\(r.stderr)")
        let out = r.stdout
        #expect(out.contains("get b'hello' 65536 b''"), "\(out)")
        #expect(out.contains("list ['trusted.t', 'user.a', 'user.empty'] ['user.dir']"), "\(out)")
        #expect(out.contains("create-existing EEXIST"))
        #expect(out.contains("replace-missing ENODATA"))
        #expect(out.contains("replaced b'world'"))
        #expect(out.contains("get-missing ENODATA"))
        #expect(out.contains("remove-missing ENODATA"))
        #expect(out.contains("bad-namespace EOPNOTSUPP") || out.contains("bad-namespace ENOTSUP"), "\(out)")
        #expect(out.contains("user-on-symlink EPERM"), "\(out)")
        #expect(out.contains("too-big E2BIG"), "\(out)")
        #expect(out.contains("erange-get -1 ERANGE"))
        #expect(out.contains("size-query 5"))
        #expect(out.contains("erange-list -1 ERANGE"))
        #expect(out.contains("after-remove ['trusted.t', 'user.a']"), "\(out)")
        // Unprivileged: user.* needs write permission on the file; trusted.* is invisible.
        let u = m.sh("""
            chmod 644 f
            \(Self.nobody) \(Self.py) -c "
            import os, errno
            try: os.setxattr('f', 'user.n', b'x'); print('set ok')
            except OSError as e: print('set', errno.errorcode[e.errno])
            print('read', os.getxattr('f', 'user.a'))
            print('list', sorted(os.listxattr('f')))
            "
            """)
        #expect(u.stdout.contains("set EACCES"), "\(u.stdout) \(u.stderr)")
        #expect(u.stdout.contains("read b'world'"), "\(u.stdout) \(u.stderr)")
        #expect(u.stdout.contains("list ['user.a']"), "\(u.stdout) \(u.stderr)")
        // Survives a remount; unlink drops them with the inode.
        try m.unmount()
        try m.mount(options: "allow_other")
        let again = m.sh("\(Self.py) -c \"import os; print(os.getxattr('f', 'user.a'), len(os.getxattr('f', 'trusted.t')))\"")
        #expect(again.stdout.contains("b'world' 65536"), "\(again.stdout) \(again.stderr)")
        #expect(m.sh("rm f").ok)
        try Self.fsckClean(m)
        let dump = Harness.sh("'\(Harness.binary)' dump '\(m.image)'")
        #expect(dump.stdout.contains("xattr ") && dump.stdout.contains("user.dir"), "the directory's xattr")
        #expect(!dump.stdout.contains("user.a\""), "xattrs of the unlinked file remain")
    }

    @Test func setIDBitsClearedAsLinuxDoes() throws {
        let m = try MountedImage(size: "512M", options: "allow_other")
        defer { m.close() }
        let r = m.sh("""
            chmod 755 .
            echo a > w && chmod 6777 w
            \(Self.nobody) sh -c 'echo more >> w'
            echo "nobody-write $(stat -c %a w)"
            echo a > r && chmod 6755 r && echo more >> r
            echo "root-write $(stat -c %a r)"
            echo a > c && chmod 6755 c && chown 65534 c
            echo "chown $(stat -c %a c)"
            echo a > g && chmod 2745 g && chown 65534 g
            echo "chown-sgid-noexec $(stat -c %a g)"
            echo a > t && chmod 6777 t
            \(Self.nobody) truncate -s 1 t
            echo "nobody-truncate $(stat -c %a t)"
            mkdir sd && chmod 2775 sd && chown 65534 sd
            echo "dir $(stat -c %a sd)"
            """)
        try #require(r.ok, "\(r.stderr)")
        #expect(r.stdout.contains("nobody-write 777"), "\(r.stdout)")
        #expect(r.stdout.contains("root-write 6755"), "\(r.stdout)")
        #expect(r.stdout.contains("chown 755"), "\(r.stdout)")
        #expect(r.stdout.contains("chown-sgid-noexec 2745"), "\(r.stdout)")
        #expect(r.stdout.contains("nobody-truncate 777"), "\(r.stdout)")
        #expect(r.stdout.contains("dir 2775"), "\(r.stdout)")
        try Self.fsckClean(m)
    }

    @Test func relatimeStatfsAndFsyncdir() throws {
        let m = try MountedImage(size: "512M")
        defer { m.close() }
        // relatime: a read updates an atime older than mtime, and then not again within a day.
        let a = m.sh("""
            echo data > f && touch -a -d '2020-01-01 00:00:00' f
            before=$(stat -c %X f); cat f > /dev/null; after=$(stat -c %X f)
            test "$before" -lt "$after" || { echo "atime not updated: $before $after"; exit 1; }
            sleep 1.1; cat f > /dev/null; again=$(stat -c %X f)
            test "$again" = "$after" || { echo "atime moved again: $after $again"; exit 1; }
            mkdir d && touch -a -d '2020-01-01' d && ls d > /dev/null
            test "$(stat -c %X d)" -gt 1600000000 || { echo "directory atime not updated"; exit 1; }
            """)
        #expect(a.ok, "\(a.stdout) \(a.stderr)")
        // A read-only open with O_NOATIME leaves atime alone.
        let n = m.sh("""
            touch -a -d '2020-01-01' f
            \(Self.py) -c "import os; fd = os.open('f', os.O_RDONLY | os.O_NOATIME); os.read(fd, 10); os.close(fd)"
            test "$(stat -c %X f)" -lt 1600000000
            """)
        #expect(n.ok, "O_NOATIME: \(n.stdout) \(n.stderr)")
        // statfs counts real inodes.
        let s = m.sh("""
            sleep 2.1; u0=$(stat -f -c %c . ; stat -f -c %d .)
            used0=$(( $(stat -f -c %c .) - $(stat -f -c %d .) ))
            mkdir many && for i in $(seq 1 100); do : > many/$i; done
            sleep 2.1
            used1=$(( $(stat -f -c %c .) - $(stat -f -c %d .) ))
            echo "used $used0 $used1"
            test $((used1 - used0)) = 101
            """)
        #expect(s.ok, "statfs inode count: \(s.stdout) \(s.stderr)")
        let d = m.sh("\(Self.py) -c \"import os; fd = os.open('many', os.O_RDONLY | os.O_DIRECTORY); os.fsync(fd); os.close(fd); print('ok')\"")
        #expect(d.ok && d.stdout.contains("ok"), "fsyncdir: \(d.stderr)")
        try Self.fsckClean(m)
    }
}
