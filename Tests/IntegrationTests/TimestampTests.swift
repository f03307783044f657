import Foundation
import Testing

/// Which of atime/mtime/ctime (of the file and its directory) each operation moves, compared
/// with the host filesystem running the same script (mounted relatime).
@Suite(.serialized)
struct TimestampTests {
    static let probe = """
        import os, time
        def ts(p): s = os.lstat(p); return (s.st_atime_ns, s.st_mtime_ns, s.st_ctime_ns)
        def moved(before, after): return ''.join(n for n, a, b in zip('amc', before, after) if a != b) or '-'
        out = []
        def step(name, fn, *paths):
            before = [ts(p) for p in paths]
            time.sleep(0.02); fn()
            out.append('%s %s' % (name, ' '.join(moved(b, ts(p)) for b, p in zip(before, paths))))
        os.mkdir('d'); open('d/f', 'w').write('x'); os.utime('d/f', (1, 1)); os.utime('d', (1, 1))
        step('create', lambda: open('d/g', 'w').close(), 'd')
        step('write', lambda: open('d/f', 'a').write('y'), 'd/f', 'd')
        step('read-after-write', lambda: open('d/f').read(), 'd/f')
        step('read-again', lambda: open('d/f').read(), 'd/f')
        step('chmod', lambda: os.chmod('d/f', 0o600), 'd/f', 'd')
        step('chown', lambda: os.chown('d/f', 0, 0), 'd/f')
        step('truncate', lambda: os.truncate('d/f', 1), 'd/f')
        step('truncate-same', lambda: os.truncate('d/f', 1), 'd/f')
        step('link', lambda: os.link('d/f', 'd/h'), 'd/f', 'd')
        step('rename', lambda: os.rename('d/h', 'd/i'), 'd/f', 'd')
        step('unlink', lambda: os.unlink('d/i'), 'd/f', 'd')
        step('mkdir', lambda: os.mkdir('d/sub'), 'd')
        step('rmdir', lambda: os.rmdir('d/sub'), 'd')
        step('utime', lambda: os.utime('d/f', (5, 6)), 'd/f')
        step('setxattr', lambda: os.setxattr('d/f', 'user.k', b'v'), 'd/f')
        step('symlink', lambda: os.symlink('f', 'd/l'), 'd')
        print('\\n'.join(out))
        """

    @Test func timestampsMoveAsOnTheHost() throws {
        // Zero cache timeouts: every stat sees the daemon's answer at once.
        let m = try MountedImage(size: "512M", options: "entry_timeout=0,attr_timeout=0")
        defer { m.close() }
        let native = m.host + "/ts"
        try FileManager.default.createDirectory(atPath: native, withIntermediateDirectories: true)
        let expected = Harness.python(Self.probe, in: native)
        try #require(!expected.hasPrefix("FAILED"), "host run: \(expected)")
        let got = Harness.python(Self.probe, in: m.mnt)
        Harness.expectSameLines(host: expected, lsmfs: got)
    }
}
