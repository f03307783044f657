import Foundation
import Testing

/// The daemon's checks where privileges decide (a mount with `daemon_permissions`, so the
/// daemon checks, not the kernel): a writer's chmod under KILLPRIV_V2, capabilities of a
/// non-root process (setpriv's ambient capabilities), and access(W_OK) on a read-only mount.
/// Each probe runs on the host filesystem and on lsmfs; the answers must match.
@Suite(.serialized)
struct PrivilegeTests {
    static let setup = """
        echo s > sec && chmod 600 sec
        mkdir priv && echo p > priv/f && chmod 600 priv/f && chmod 700 priv
        echo w > suidw && chmod 4777 suidw
        echo w > suidw2 && chmod 4777 suidw2
        echo o > owned && chmod 644 owned && echo o > owned2 && chmod 644 owned2
        mkdir sticky && chmod 1777 sticky && echo v > sticky/v
        """
    static let probe = #"""
        import os, errno
        def e(f, *a):
            try: r = f(*a); return 'ok' if r is None else r
            except OSError as x: return errno.errorcode[x.errno]
        def rd(p):
            with open(p) as f: return f.read().strip()
        def ap(p):
            with open(p, 'a') as f: f.write('y')
        caps = int(open('/proc/self/status').read().split('CapEff:')[1].split()[0], 16)
        q = [('caps', hex(caps))]
        q.append(('read-sec', e(rd, 'sec')))
        q.append(('write-sec', e(ap, 'sec')))
        q.append(('list-priv', e(os.listdir, 'priv')))
        q.append(('read-priv-f', e(rd, 'priv/f')))
        q.append(('access-priv-rx', os.access('priv', os.R_OK | os.X_OK)))
        q.append(('chmod-writer-clears-suid', e(os.chmod, 'suidw', 0o777), oct(os.stat('suidw').st_mode & 0o7777)))
        q.append(('write-clears-suid', e(ap, 'suidw2'), oct(os.stat('suidw2').st_mode & 0o7777)))
        q.append(('chmod-others', e(os.chmod, 'owned', 0o640)))
        q.append(('utime-others', e(os.utime, 'owned', (5, 5))))
        q.append(('chown-others', e(os.chown, 'owned2', 65534, 65534)))
        q.append(('unlink-sticky-others', e(os.unlink, 'sticky/v')))
        for k, *v in q: print(k, *v)
        """#

    /// Set-up as root, `between` (a remount on lsmfs), then the probe as uid 65534 with the
    /// capabilities `caps` (setpriv names, e.g. "+dac_override"; "" for none).
    func run(in dir: String, caps: String, between: () throws -> Void) throws -> String {
        let s = Harness.sh("cd '\(dir)'\n\(Self.setup)")
        guard s.ok else { return "FAILED setup \(s.status): \(s.stderr)" }
        try between()
        let capArgs = caps.isEmpty ? "" : "--inh-caps=\(caps) --ambient-caps=\(caps)"
        let r = Harness.sh("""
            cd '\(dir)'
            setpriv --reuid=65534 --regid=65534 --clear-groups \(capArgs) /usr/bin/python3 - <<'EOF'
            \(Self.probe)
            EOF
            """)
        return r.ok ? r.stdout : "FAILED \(r.status): \(r.stderr)"
    }

    func compare(caps: String, expectOnHost: [String]) throws {
        let options = "allow_other,daemon_permissions"
        let m = try MountedImage(size: "512M", options: options)
        defer { m.close() }
        let native = m.host + "/p"
        try FileManager.default.createDirectory(atPath: native, withIntermediateDirectories: true)
        #expect(Harness.sh("chmod 755 '\(m.dir)' '\(m.host)' '\(native)' '\(m.mnt)'").ok)
        let expected = try run(in: native, caps: caps) {}
        try #require(!expected.hasPrefix("FAILED"), "host run: \(expected)")
        for line in expectOnHost { #expect(expected.contains(line), "host baseline lacks \(line): \(expected)") }
        let got = try run(in: m.mnt, caps: caps) {
            try m.unmount()
            try m.mount(options: options)
        }
        Harness.expectSameLines(host: expected, lsmfs: got)
        try m.unmount()
        #expect(Harness.sh("'\(Harness.binary)' fsck '\(m.image)'").status == 0)
    }

    /// No capabilities: a writer of a set-user-ID file may not chmod it (not the owner), even
    /// to clear the bit; its write clears the bit.
    @Test func unprivilegedWriterCannotChmod() throws {
        try compare(caps: "", expectOnHost: ["read-sec EACCES", "chmod-writer-clears-suid EPERM 0o4777", "write-clears-suid ok 0o777"])
    }

    /// A non-root process with CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER and
    /// CAP_CHOWN is treated as Linux treats it: reads and writes others' private files,
    /// chmods, sets times, chowns, deletes in a sticky directory.
    @Test func capabilitiesOfANonRootProcess() throws {
        try compare(caps: "+dac_override,+dac_read_search,+fowner,+chown",
                    expectOnHost: ["read-sec s", "list-priv ['f']", "chmod-others ok", "chown-others ok", "unlink-sticky-others ok"])
    }

    /// Only CAP_DAC_READ_SEARCH: reads and lists, but writes nothing it may not.
    @Test func readSearchOnly() throws {
        try compare(caps: "+dac_read_search", expectOnHost: ["read-sec s", "write-sec EACCES", "chmod-others EPERM"])
    }

    /// access(W_OK) on a read-only mount: EROFS (False) for a regular file and a directory,
    /// but a FIFO stays writable, as on a read-only tmpfs.
    @Test func readOnlyAccessOfAFifo() throws {
        let m = try MountedImage(size: "512M")
        defer { m.close() }
        let hostRO = m.host + "/ro"
        let setup = "mkfifo fifo && chmod 666 fifo && touch file && mkdir dir"
        let probe = """
            /usr/bin/python3 -c "import os
            for n in ['fifo', 'file', 'dir']: print(n, os.access(n, os.W_OK), os.access(n, os.R_OK))"
            """
        try FileManager.default.createDirectory(atPath: hostRO, withIntermediateDirectories: true)
        let t = Harness.sh("mount -t tmpfs -o size=1m tmpfs '\(hostRO)' && cd '\(hostRO)' && \(setup) && mount -o remount,ro '\(hostRO)'")
        defer { Harness.sh("umount '\(hostRO)'") }
        try #require(t.ok, "tmpfs: \(t.stderr)")
        let expected = Harness.sh(probe, cwd: hostRO)
        #expect(expected.stdout == "fifo True True\nfile False True\ndir False True\n", "host: \(expected.stdout)")
        #expect(m.sh(setup).ok)
        try m.unmount()
        try m.mount(options: "ro")
        let got = m.sh(probe)
        #expect(got.stdout == expected.stdout, "\(got.stdout) \(got.stderr)")
    }
}
