import Glibc

/// The daemon's half of the ready pipe: one line, `OK` once the mount is live or `ERR reason`.
final class ReadyPipe: Sendable {
    let fd: Int32?
    /// In the daemon: closes every inherited descriptor above the ready pipe first. A caller
    /// waiting for EOF on a pipe it handed to `lsmfs mount` (shells, Foundation's Process) would
    /// otherwise wait as long as the daemon lives.
    init(fd: Int32?) {
        self.fd = fd
        if let fd { closefrom(fd + 1) }
    }

    func succeed() { send("OK\n") }
    func fail(_ reason: String) { send("ERR \(reason)\n") }

    private func send(_ line: String) {
        guard let fd else { return }
        _ = line.withCString { p in write(fd, p, strlen(p)) }
        close(fd)
    }
}

/// The launcher's half: starts the daemon detached (new session, stdin /dev/null, output to the
/// log file), then waits for its ready line so `lsmfs mount` returns only once the mount is live.
enum Daemon {
    static func spawnAndWait(arguments: [String], logPath: String) -> Int32 {
        let logFD = open(logPath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard logFD >= 0 else {
            printError("lsmfs mount: cannot open log \(logPath): \(String(cString: strerror(errno)))")
            return 1
        }
        defer { close(logFD) }
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else {
            printError("lsmfs mount: pipe: \(String(cString: strerror(errno)))")
            return 1
        }
        // Keep the write end away from fd 3 so dup2 onto 3 always clears close-on-exec.
        let writeFD = fcntl(fds[1], F_DUPFD_CLOEXEC, 10)
        close(fds[1])
        let readFD = fds[0]
        _ = fcntl(readFD, F_SETFD, FD_CLOEXEC)

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, logFD, 1)
        posix_spawn_file_actions_adddup2(&actions, logFD, 2)
        posix_spawn_file_actions_adddup2(&actions, writeFD, 3)
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        posix_spawnattr_setflags(&attr, Int16(0x80)) // POSIX_SPAWN_SETSID

        let exe = selfExecutable()
        let argv: [UnsafeMutablePointer<CChar>?] = ([exe] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, exe, &actions, &attr, argv, environ)
        close(writeFD)
        guard rc == 0 else {
            close(readFD)
            printError("lsmfs mount: cannot start the daemon: \(String(cString: strerror(rc)))")
            return 1
        }
        let line = readLine(readFD)
        close(readFD)
        if line == "OK" { return 0 }
        if let line, line.hasPrefix("ERR ") {
            printError("lsmfs mount: \(line.dropFirst(4))")
            var status: Int32 = 0
            _ = waitpid(pid, &status, 0)
            return 1
        }
        var status: Int32 = 0
        _ = waitpid(pid, &status, 0)
        printError("lsmfs mount: the daemon exited before mounting (status \(status)); see \(logPath)")
        return 1
    }

    private static func readLine(_ fd: Int32) -> String? {
        var bytes: [UInt8] = []
        var b: UInt8 = 0
        while true {
            let n = read(fd, &b, 1)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            if b == UInt8(ascii: "\n") { break }
            bytes.append(b)
        }
        return bytes.isEmpty ? nil : String(decoding: bytes, as: UTF8.self)
    }

    static func selfExecutable() -> String {
        var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/self/exe", &buf, buf.count - 1)
        return n > 0 ? cString(buf) : CommandLine.arguments[0]
    }
}

/// The text of a NUL-terminated C buffer.
func cString(_ buf: [CChar]) -> String {
    let bytes = buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
    return String(decoding: bytes, as: UTF8.self)
}

/// Restores the signals the daemon stops on (SIGINT, SIGTERM, SIGHUP) to their defaults and
/// unblocks them, before any thread starts: a parent may have blocked or ignored them (test
/// runners and some supervisors do), and libfuse installs its handlers only over SIG_DFL.
func resetStopSignals() {
    var set = sigset_t()
    sigemptyset(&set)
    for sig in [SIGINT, SIGTERM, SIGHUP, SIGPIPE] {
        sigaddset(&set, sig)
        signal(sig, SIG_DFL)
    }
    pthread_sigmask(SIG_UNBLOCK, &set, nil)
}
