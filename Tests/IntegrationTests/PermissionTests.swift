import Foundation
import Testing

/// Permission checks for an unprivileged user (uid 65534) on a mount made with allow_other
/// (default_permissions is on): every operation's errno must be what the host's own
/// filesystem answers for the same script.
@Suite(.serialized)
struct PermissionTests {
    static let setup = """
        mkdir pub && chmod 1777 pub && echo x > pub/rootfile && chmod 666 pub/rootfile
        echo secret > private && chmod 600 private
        echo open > public && chmod 644 public
        mkdir ro && chmod 555 ro && mkdir nox && chmod 700 nox && echo f > nox/f
        mkdir shared && chmod 777 shared
        """
    static let probe = """
        import os, errno
        def e(f, *a, **k):
            try: f(*a, **k); return 'ok'
            except OSError as x: return errno.errorcode[x.errno]
        def rd(p):
            with open(p) as f: return f.read()
        def wr(p, mode='w'):
            with open(p, mode) as f: f.write('y')
        r = []
        r.append(('read-private', e(rd, 'private')))
        r.append(('read-public', e(rd, 'public')))
        r.append(('write-public', e(wr, 'public', 'a')))
        r.append(('truncate-public', e(os.truncate, 'public', 0)))
        r.append(('mkdir-in-ro', e(os.mkdir, 'ro/x')))
        r.append(('create-in-ro', e(wr, 'ro/f')))
        r.append(('stat-in-nox', e(os.stat, 'nox/f')))
        r.append(('list-nox', e(os.listdir, 'nox')))
        r.append(('chmod-others', e(os.chmod, 'public', 0o777)))
        r.append(('chown-others', e(os.chown, 'public', 65534, -1)))
        r.append(('utime-now-others', e(os.utime, 'public', None)))
        r.append(('utime-set-others', e(os.utime, 'public', (1, 1))))
        r.append(('unlink-sticky-others', e(os.unlink, 'pub/rootfile')))
        r.append(('rename-sticky-others', e(os.rename, 'pub/rootfile', 'pub/moved')))
        r.append(('write-sticky-others', e(wr, 'pub/rootfile', 'a')))
        r.append(('create-in-sticky', e(wr, 'pub/mine')))
        r.append(('chmod-own', e(os.chmod, 'pub/mine', 0o600)))
        r.append(('chown-own-to-root', e(os.chown, 'pub/mine', 0, -1)))
        r.append(('setgid-on-own', e(os.chmod, 'pub/mine', 0o2755)))
        r.append(('mode-after-setgid', oct(os.stat('pub/mine').st_mode & 0o7777)))
        r.append(('unlink-own-in-sticky', e(os.unlink, 'pub/mine')))
        r.append(('rmdir-ro', e(os.rmdir, 'ro')))
        r.append(('symlink-in-shared', e(os.symlink, 'public', 'shared/l')))
        r.append(('mkfifo-in-shared', e(os.mkfifo, 'shared/fifo')))
        r.append(('mkdir-in-shared', e(os.mkdir, 'shared/d')))
        r.append(('xattr-user-others', e(os.setxattr, 'public', 'user.a', b'1')))
        r.append(('xattr-trusted', e(os.setxattr, 'shared/d', 'trusted.a', b'1')))
        r.append(('rename-dir-into-ro', e(os.rename, 'shared/d', 'ro/d')))
        r.append(('rmdir-own', e(os.rmdir, 'shared/d')))
        for k, v in r: print(k, v)
        """

    func run(in dir: String) -> String {
        let r = Harness.sh("""
            cd '\(dir)'
            \(Self.setup)
            setpriv --reuid=65534 --regid=65534 --clear-groups /usr/bin/python3 - <<'EOF'
            \(Self.probe)
            EOF
            """)
        return r.ok ? r.stdout : "FAILED \(r.status): \(r.stderr)"
    }

    @Test func unprivilegedUserSeesTheHostsErrnos() throws {
        let m = try MountedImage(size: "512M", options: "allow_other")
        defer { m.close() }
        let native = m.host + "/perm"
        try FileManager.default.createDirectory(atPath: native, withIntermediateDirectories: true)
        #expect(Harness.sh("chmod 755 '\(m.dir)' '\(m.host)' '\(native)' && chmod 755 '\(m.mnt)'").ok)
        let expected = run(in: native)
        try #require(!expected.hasPrefix("FAILED"), "host run: \(expected)")
        #expect(expected.contains("read-private EACCES"), "host baseline: \(expected)")
        let got = run(in: m.mnt)
        Harness.expectSameLines(host: expected, lsmfs: got)
        try m.unmount()
        #expect(Harness.sh("'\(Harness.binary)' fsck '\(m.image)'").status == 0)
    }
}
