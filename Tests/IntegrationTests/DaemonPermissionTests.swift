import Foundation
import Testing

/// The daemon's own permission checks (a mount without `default_permissions`, the default
/// when `allow_other` is not given): the unprivileged user of PermissionTests runs the same
/// script, plus probes for what only the daemon sees then (access(2), chdir, exec, O_TRUNC,
/// user.* xattrs, a directory moving to another parent, touch by a group member), and must get
/// the host filesystem's errnos. `daemon_permissions` keeps the daemon checking under
/// `allow_other` (needed for a second user: /dev/fuse is root's); the image is remounted
/// between the set-up (as root) and the probe, so no path is in the kernel's cache.
@Suite(.serialized)
struct DaemonPermissionTests {
    static let setup = PermissionTests.setup + "\n" + """
        echo x > grp && chmod 664 grp && chgrp 65534 grp
        mkdir mv && chmod 777 mv && mkdir mv/d && chmod 755 mv/d
        mkdir unread && chmod 311 unread && echo u > unread/f
        printf '#!/bin/sh\\necho ran\\n' > script && chmod 744 script
        cp script script-x && chmod 755 script-x
        cp /usr/bin/true xonly && chmod 711 xonly
        mkdir rnox && echo s > rnox/f && chmod 744 rnox
        cp /usr/bin/true suid && chmod 4755 suid && cp suid suid2 && chmod 4755 suid2
        /usr/bin/python3 -c "import os; os.setxattr('private', 'user.k', b'1'); os.setxattr('public', 'user.k', b'2')"
        """
    static let probe = PermissionTests.probe + "\n" + """
        import subprocess
        def run(p):
            subprocess.run([p], check=True, stdout=subprocess.DEVNULL)
        q = []
        q.append(('access-r-private', os.access('private', os.R_OK)))
        q.append(('access-r-public', os.access('public', os.R_OK)))
        q.append(('access-w-public', os.access('public', os.W_OK)))
        q.append(('access-x-nox', os.access('nox', os.X_OK)))
        q.append(('access-w-grp', os.access('grp', os.W_OK)))
        q.append(('chdir-nox', e(os.chdir, 'nox')))
        q.append(('listdir-unread', e(os.listdir, 'unread')))
        q.append(('read-in-unread', e(rd, 'unread/f')))
        q.append(('listdir-rnox', e(os.listdir, 'rnox')))
        q.append(('read-in-rnox-after-listdir', e(rd, 'rnox/f')))
        q.append(('exec-744', e(run, './script')))
        q.append(('exec-755', e(run, './script-x')))
        q.append(('exec-711', e(run, './xonly')))
        q.append(('chmod-clear-suid-others', e(os.chmod, 'suid', 0o755)))
        q.append(('chown-noop-suid-others', e(os.chown, 'suid2', -1, -1)))
        q.append(('suid-modes', oct(os.stat('suid').st_mode & 0o7777), oct(os.stat('suid2').st_mode & 0o7777)))
        q.append(('open-rdonly-trunc', e(os.open, 'grp', os.O_RDONLY | os.O_TRUNC)))
        q.append(('open-trunc-public', e(os.open, 'public', os.O_WRONLY | os.O_TRUNC)))
        q.append(('getxattr-user-private', e(os.getxattr, 'private', 'user.k')))
        q.append(('getxattr-user-public', e(os.getxattr, 'public', 'user.k')))
        q.append(('removexattr-user-public', e(os.removexattr, 'public', 'user.k')))
        q.append(('utime-now-group-member', e(os.utime, 'grp', None)))
        q.append(('utime-set-group-member', e(os.utime, 'grp', (5, 5))))
        q.append(('rename-dir-across', e(os.rename, 'mv/d', 'shared/d2')))
        q.append(('rename-dir-same-parent', e(os.rename, 'mv/d', 'mv/d3')))
        q.append(('create-own', e(wr, 'shared/own')))
        q.append(('link-into-ro', e(os.link, 'shared/own', 'ro/own')))
        q.append(('link-into-shared', e(os.link, 'shared/own', 'shared/own2')))
        q.append(('link-others-private', e(os.link, 'private', 'shared/plink')))
        q.append(('link-others-public', e(os.link, 'public', 'shared/plink2')))
        q.append(('chmod-own-000', e(os.chmod, 'shared/own', 0)))
        q.append(('read-own-000', e(rd, 'shared/own')))
        q.append(('truncate-own-000', e(os.truncate, 'shared/own', 0)))
        q.append(('chgrp-own-to-root', e(os.chown, 'shared/own', -1, 0)))
        q.append(('chgrp-own-to-own', e(os.chown, 'shared/own', -1, 65534)))
        for k, *v in q: print(k, *v)
        """

    /// Set-up as root, `between` (a remount on lsmfs), then the probe as uid 65534.
    func run(in dir: String, between: () throws -> Void) throws -> String {
        let s = Harness.sh("cd '\(dir)'\n\(Self.setup)")
        guard s.ok else { return "FAILED setup \(s.status): \(s.stderr)" }
        try between()
        let r = Harness.sh("""
            cd '\(dir)'
            setpriv --reuid=65534 --regid=65534 --clear-groups /usr/bin/python3 - <<'EOF'
            \(Self.probe)
            EOF
            """)
        return r.ok ? r.stdout : "FAILED \(r.status): \(r.stderr)"
    }

    @Test func unprivilegedUserSeesTheHostsErrnos() throws {
        let options = "allow_other,daemon_permissions"
        let m = try MountedImage(size: "512M", options: options)
        defer { m.close() }
        let native = m.host + "/perm"
        try FileManager.default.createDirectory(atPath: native, withIntermediateDirectories: true)
        #expect(Harness.sh("chmod 755 '\(m.dir)' '\(m.host)' '\(native)' && chmod 755 '\(m.mnt)'").ok)
        let expected = try run(in: native) {}
        try #require(!expected.hasPrefix("FAILED"), "host run: \(expected)")
        #expect(expected.contains("exec-744 EACCES") && expected.contains("access-r-private False"), "host baseline: \(expected)")
        let got = try run(in: m.mnt) {
            try m.unmount()
            try m.mount(options: options)
        }
        Harness.expectSameLines(host: expected, lsmfs: got)
        #expect(m.sh("cat .lsmfs-stats").stdout.contains("access: calls="), "no ACCESS request reached the daemon")
        try m.unmount()
        #expect(Harness.sh("'\(Harness.binary)' fsck '\(m.image)'").status == 0)
    }

    /// Without allow_other the daemon checks for the one user who may use the mount (root here):
    /// root's overrides, and the exec bit it still needs.
    @Test func singleUserMountChecksInTheDaemon() throws {
        let m = try MountedImage(size: "512M")
        defer { m.close() }
        let r = m.sh("""
            mkdir d && chmod 000 d && touch d/f && ls d >/dev/null && chmod 000 d/f && cat d/f
            printf '#!/bin/sh\\necho ran\\n' > s && chmod 644 s && ! ./s 2>/dev/null && chmod 700 s && ./s
            test -r d/f && test -w d/f && ! test -x d/f && test -x d
            """)
        #expect(r.ok && r.stdout == "ran\n", "\(r.stdout)\n\(r.stderr)")
        #expect(m.sh("cat .lsmfs-stats").stdout.contains("access: calls="), "no ACCESS request reached the daemon")
        let line = Harness.sh("grep ' \(m.mnt) ' /proc/mounts").stdout
        #expect(!line.isEmpty && !line.contains("default_permissions"), "mount line: \(line)")
    }

    /// With allow_other (several users) the kernel keeps checking.
    @Test func allowOtherKeepsTheKernelsChecks() throws {
        let m = try MountedImage(size: "512M", options: "allow_other")
        defer { m.close() }
        let line = Harness.sh("grep ' \(m.mnt) ' /proc/mounts").stdout
        #expect(line.contains("default_permissions") && line.contains("allow_other"), "mount line: \(line)")
    }
}
