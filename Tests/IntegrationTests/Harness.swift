import Foundation
import Testing

/// Shell and mount helpers for the integration tests: everything goes through the real
/// `lsmfs` binary, a real FUSE mount in a temp dir, and real shell tools.
enum Harness {
    static var repoRoot: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path
    }

    /// The binary under test: $LSMFS_BIN (set by mount-scripts/test.sh) or the release build.
    static var binary: String {
        if let b = ProcessInfo.processInfo.environment["LSMFS_BIN"], !b.isEmpty { return b }
        return repoRoot + "/.build/release/lsmfs"
    }

    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
        var ok: Bool { status == 0 }
    }

    /// Runs `command` with bash (-e -o pipefail) under `timeout`, capturing its output.
    @discardableResult
    static func sh(_ command: String, cwd: String? = nil, timeout: Int = 300) -> Result {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lsmfs-sh-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let outURL = dir.appendingPathComponent("out"), errURL = dir.appendingPathComponent("err")
        _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/timeout")
        p.arguments = ["-k", "10", String(timeout), "/bin/bash", "-e", "-o", "pipefail", "-c", command]
        if let cwd { p.currentDirectoryURL = URL(fileURLWithPath: cwd) }
        p.standardInput = FileHandle.nullDevice
        p.standardOutput = try? FileHandle(forWritingTo: outURL)
        p.standardError = try? FileHandle(forWritingTo: errURL)
        var env = ProcessInfo.processInfo.environment
        env["LSMFS_BIN"] = binary
        p.environment = env
        do { try p.run() } catch { return Result(status: -1, stdout: "", stderr: "\(error)") }
        p.waitUntilExit()
        let out = (try? String(contentsOf: outURL, encoding: .utf8)) ?? ""
        let err = (try? String(contentsOf: errURL, encoding: .utf8)) ?? ""
        return Result(status: p.terminationStatus, stdout: out, stderr: err)
    }

    static func makeTempDir(_ tag: String) -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("lsmfs-\(tag)-\(UUID().uuidString.prefix(8))").path
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    static func isMounted(_ dir: String) -> Bool {
        sh("mountpoint -q '\(dir)'", timeout: 30).ok
    }

    /// Whether the kernel has overlayfs (loading its module if needed); prints the skip if not.
    static func hasOverlay() -> Bool {
        if sh("grep -qw overlay /proc/filesystems || modprobe overlay").ok { return true }
        print("no overlay filesystem on this kernel: skipped")
        return false
    }

    /// mount(8) of an overlay of `lower` on `merged`, with upper and work directories `upper`
    /// and `work` under `mnt` (on the lsmfs mount).
    static func overlayMount(lower: String, mnt: String, merged: String) -> String {
        "mount -t overlay overlay -o lowerdir='\(lower)',upperdir='\(mnt)/upper',workdir='\(mnt)/work' '\(merged)'"
    }

    /// Runs the Python `script` in `dir`: its stdout, or "FAILED status: stdout stderr".
    /// `user`: a command prefix the interpreter runs under (e.g. `setpriv --reuid=65534 ...`).
    static func python(_ script: String, in dir: String, as user: String? = nil) -> String {
        let r = sh("cd '\(dir)' && \(user ?? "") /usr/bin/python3 - <<'EOF'\n\(script)\nEOF")
        return r.ok ? r.stdout : "FAILED \(r.status): \(r.stdout) \(r.stderr)"
    }

    /// For the tests that run one script on the host filesystem and on the mount: records each
    /// line where the mount's output differs from the host's, and expects as many lines.
    static func expectSameLines(host expected: String, lsmfs got: String,
                                sourceLocation: SourceLocation = #_sourceLocation) {
        let e = expected.split(separator: "\n"), g = got.split(separator: "\n")
        for (a, b) in zip(e, g) where a != b { Issue.record("host: \(a)   lsmfs: \(b)", sourceLocation: sourceLocation) }
        #expect(e.count == g.count, "lsmfs output: \(got)", sourceLocation: sourceLocation)
    }
}

/// A fresh image mounted on a temp directory; `close()` (or deinit) unmounts it, lazily if need be.
final class MountedImage {
    let dir: String
    let image: String
    let mnt: String
    let host: String   // scratch space on the host filesystem, for reference copies

    init(size: String = "2G", options: String? = nil) throws {
        dir = Harness.makeTempDir("it")
        image = dir + "/test.img"
        mnt = dir + "/mnt"
        host = dir + "/host"
        try FileManager.default.createDirectory(atPath: mnt, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: host, withIntermediateDirectories: true)
        let mk = Harness.sh("'\(Harness.binary)' mkfs '\(image)' --size \(size)")
        try #require(mk.ok, "mkfs failed: \(mk.stderr)")
        try mount(options: options)
    }

    func mount(options: String? = nil) throws {
        let o = options.map { " -o '\($0)'" } ?? ""
        let r = Harness.sh("'\(Harness.binary)' mount '\(image)' '\(mnt)'\(o)", timeout: 120)
        try #require(r.ok, "mount failed (\(r.status)): \(r.stderr) log: \(log())")
        try #require(Harness.isMounted(mnt), "mount returned but \(mnt) is not a mountpoint")
    }

    /// Clean unmount; waits for the daemon to flush and exit (it holds the image lock until then).
    func unmount() throws {
        let r = Harness.sh("fusermount3 -u '\(mnt)'", timeout: 120)
        try #require(r.ok, "fusermount3 -u failed: \(r.stderr)")
        try waitForDaemonExit()
    }

    /// A pgrep pattern for this image's daemon that does not match the shell running pgrep.
    var daemonPattern: String { "[m]ount \(image) " }

    func daemonPID() -> Int32? {
        let r = Harness.sh("pgrep -f -- '\(daemonPattern)' | head -n1", timeout: 30)
        return Int32(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    func waitForDaemonExit(seconds: Int = 120) throws {
        let r = Harness.sh("for i in $(seq \(seconds * 10)); do pgrep -f -- '\(daemonPattern)' >/dev/null || exit 0; sleep 0.1; done; exit 1",
                           timeout: seconds + 10)
        try #require(r.ok, "daemon for \(image) did not exit")
    }

    func log() -> String {
        (try? String(contentsOfFile: image + ".log", encoding: .utf8)) ?? ""
    }

    @discardableResult
    func sh(_ command: String, timeout: Int = 300) -> Harness.Result {
        Harness.sh(command, cwd: mnt, timeout: timeout)
    }

    func close() {
        if Harness.isMounted(mnt) { Harness.sh("fusermount3 -uz '\(mnt)'", timeout: 60) }
        Harness.sh("pkill -9 -f -- '\(daemonPattern)' || true", timeout: 30)
        try? FileManager.default.removeItem(atPath: dir)
    }

    deinit { close() }
}
