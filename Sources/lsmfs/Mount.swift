import ArgumentParser
import Glibc
import LSMFS
import LSMFSFuse
import Logging

struct Mount: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Mount an lsmfs image on a directory (unmount with fusermount3 -u MOUNTPOINT).",
        discussion: """
        Options (-o, comma-separated): ro, allow_other, default_permissions (the kernel checks permissions: added with allow_other, else the daemon checks them),
        sync_interval=SECONDS (periodic sync, default 5, 0 = off), policy=NAME (KVIMR policy
        override), log=PATH (daemon log, default IMAGE.log), entry_timeout=SECONDS and
        attr_timeout=SECONDS (kernel cache lifetimes, default 86400: the kernel is the only client), writeback_cache (the kernel's
        write-back page cache: large writes, kernel-placed O_APPEND), read_ahead_kb=KIB (the
        mount's kernel read-ahead, default 256, needs root), max_read=BYTES (the largest READ
        the kernel sends), no_io_uring (/dev/fuse only), debug, and any libfuse
        mount option.
        Without -f the daemon goes to the background; the command returns once the mount is live.
        """)

    @Argument(help: "The image file (made by lsmfs mkfs).")
    var image: String

    @Argument(help: "The directory to mount on.")
    var mountpoint: String

    @Flag(name: .customShort("f"), help: "Stay in the foreground (log to stderr).")
    var foreground = false

    @Option(name: .customShort("o"), help: "Mount options, comma-separated.")
    var options: [String] = []

    @Option(name: .customLong("ready-fd"), help: .hidden)
    var readyFD: Int32?

    func run() throws {
        let opts: MountOptions
        do {
            opts = try MountOptions.parse(options)
            try checkMountpoint()
            try checkImageExists()
        } catch {
            printError("lsmfs mount: \(Stack.describe(error))")
            throw ExitCode(1)
        }
        if !foreground {
            let log = opts.logPath ?? absolutePath(image) + ".log"
            let code = Daemon.spawnAndWait(arguments: daemonArguments(), logPath: log)
            throw ExitCode(code)
        }
        try serve(opts)
    }

    /// The daemon's own command line: this invocation with -f and a ready pipe on fd 3.
    private func daemonArguments() -> [String] {
        var args = ["mount", absolutePath(image), absolutePath(mountpoint), "-f", "--ready-fd", "3"]
        for o in options { args += ["-o", o] }
        return args
    }

    /// Opens the stack, mounts, serves until unmounted or signalled, then closes everything.
    private func serve(_ opts: MountOptions) throws {
        resetStopSignals()
        limitMallocArenas()
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = opts.debug ? .debug : .info
            return h
        }
        let logger = Logger(label: "lsmfs")
        let ready = ReadyPipe(fd: readyFD)
        let fs: FileSystem
        do {
            fs = try Stack.open(image: image, readOnly: opts.readOnly, policy: opts.policy,
                                syncInterval: opts.syncInterval)
        } catch {
            let msg = Stack.describe(error)
            ready.fail(msg)
            printError("lsmfs mount: \(msg)")
            throw ExitCode(1)
        }
        var config = FuseConfig(mountpoint: mountpoint, options: opts.fuseOptions, debug: opts.debug)
        config.entryTimeout = opts.entryTimeout; config.attrTimeout = opts.attrTimeout; config.writebackCache = opts.writebackCache
        config.readAheadKiB = opts.readAheadKiB
        config.ioUring = opts.ioUring
        config.maxRead = opts.maxRead
        let status: Int32
        do {
            status = try runFuse(fs: fs, config: config, onMounted: {
                logger.info("mounted \(image) on \(mountpoint)")
                ready.succeed()
            })
        } catch {
            let msg = Stack.describe(error)
            ready.fail(msg)
            printError("lsmfs mount: \(msg)")
            try? fs.shutdown()
            throw ExitCode(1)
        }
        do {
            try fs.shutdown()
        } catch {
            logger.error("closing \(image) failed: \(Stack.describe(error))")
            throw ExitCode(1)
        }
        logger.info("unmounted \(mountpoint); image closed cleanly")
        if status != 0 { throw ExitCode(status) }
    }

    private func checkMountpoint() throws {
        var st = stat()
        guard stat(mountpoint, &st) == 0 else {
            throw CLIError("mountpoint \(mountpoint): \(String(cString: strerror(errno)))")
        }
        guard (st.st_mode & S_IFMT) == S_IFDIR else { throw CLIError("mountpoint \(mountpoint) is not a directory") }
    }

    private func checkImageExists() throws {
        var st = stat()
        guard stat(image, &st) == 0 else {
            throw CLIError("image not found: \(image)")
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw CLIError("image \(image) is not a regular file") }
    }
}

func absolutePath(_ path: String) -> String {
    if path.hasPrefix("/") { return path }
    var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
    guard getcwd(&buf, buf.count) != nil else { return path }
    let cwd = cString(buf)
    return cwd == "/" ? "/" + path : cwd + "/" + path
}
