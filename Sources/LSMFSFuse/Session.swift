import CFuse
import Glibc
import LSMFS
import Logging
import Synchronization

let fuseLog = Logger(label: "lsmfs.fuse")

/// How to mount.
public struct FuseConfig: Sendable {
    public var mountpoint: String
    /// `-o` items passed to libfuse verbatim (allow_other, ro, default_permissions, fsname=...).
    /// `fsname=lsmfs` and `subtype=lsmfs` are added unless present, `default_permissions` with
    /// `allow_other` (without it the daemon checks permissions: see `permissionsInDaemon`).
    public var options: [String]
    /// libfuse debug output (`-d`).
    public var debug: Bool
    /// Kernel cache lifetimes of entries (positive and negative) and attributes, in seconds.
    public var entryTimeout: Double = FuseConfig.defaultCacheTimeout
    public var attrTimeout: Double = FuseConfig.defaultCacheTimeout
    /// The default lifetime: a day. Every change to an lsmfs image goes through its one daemon,
    /// and every change goes to the daemon through this kernel mount, which updates or
    /// invalidates its own caches on each of them (the entry and attributes in the reply, the
    /// parent's attributes after a namespace change, size and times after a write, atime after
    /// a read), so cached names and attributes never go stale; a timeout only adds revalidating
    /// LOOKUP/GETATTR round trips (passthrough_ll's `cache=always` uses the same day).
    /// The stats pseudo-files are never cached.
    public static let defaultCacheTimeout: Double = 86_400
    /// The kernel's writeback cache (FUSE_CAP_WRITEBACK_CACHE): the kernel then owns file
    /// sizes, mtime and O_APPEND positions between flushes and sends large writes.
    public var writebackCache = false
    /// The kernel's read-ahead window for the mount, in KiB (`/sys/class/bdi/<dev>/read_ahead_kb`;
    /// nil: leave the kernel's). The kernel starts a FUSE mount at its default of 128 KiB and
    /// only lowers it to `max_readahead` at INIT. 256 KiB: cold 256 MiB reads, same mount,
    /// alternated, 4 rounds each: 128 KiB 0.32-0.39 s, 256 KiB 0.26-0.30 s, 512 KiB 0.29-0.41 s,
    /// 1 MiB 0.39-0.64 s (larger READs leave fewer requests in flight to overlap the image
    /// reads with the replies). Needs root; skipped otherwise.
    public var readAheadKiB: Int? = FuseConfig.defaultReadAheadKiB
    /// FUSE over io_uring when the kernel allows it (see FuseRing.swift); false: /dev/fuse only.
    public var ioUring = true
    /// The largest READ the kernel sends, in bytes (`-o max_read=N`; nil: the kernel's). Passed
    /// to libfuse's mount options and asked for again by the init callback: libfuse refuses
    /// INIT when the two differ.
    public var maxRead: UInt32? = nil
    public static let defaultReadAheadKiB = 256
    public init(mountpoint: String, options: [String] = [], debug: Bool = false) {
        self.mountpoint = mountpoint; self.options = options; self.debug = debug
    }
}

public struct FuseError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// The `-o` list with lsmfs's defaults added.
func effectiveOptions(_ user: [String]) -> [String] {
    var opts = user.filter { !$0.isEmpty && $0 != daemonPermissionsOption }
    func has(_ key: String) -> Bool { opts.contains { $0 == key || $0.hasPrefix(key + "=") } }
    // Without allow_other only the mounting user reaches the mount and the daemon checks
    // permissions itself (see permissionsInDaemon); with it, the kernel checks them.
    if !has("default_permissions") && !permissionsInDaemon(user) { opts.append("default_permissions") }
    if !has("fsname") { opts.append("fsname=lsmfs") }
    if !has("subtype") { opts.append("subtype=lsmfs") }
    return opts
}

/// Mounts, calls onMounted() once the kernel mount is live (or throws before mounting anything),
/// runs the multithreaded loop until unmounted (fusermount3 -u) or SIGINT/SIGTERM/SIGHUP, unmounts,
/// and returns. The caller then calls fs.shutdown().
public func runFuse(fs: FileSystem, config: FuseConfig, onMounted: @Sendable () -> Void) throws -> Int32 {
    var st = stat()
    guard stat(config.mountpoint, &st) == 0 else {
        throw FuseError("mount point \(config.mountpoint): \(String(cString: strerror(errno)))")
    }
    guard st.st_mode & S_IFMT == S_IFDIR else {
        throw FuseError("mount point \(config.mountpoint) is not a directory")
    }

    var argStrings = ["lsmfs", "-o", (effectiveOptions(config.options) + (config.maxRead.map { ["max_read=\($0)"] } ?? [])).joined(separator: ",")]
    daemonChecksAccess.store(permissionsInDaemon(config.options), ordering: .relaxed)
    if config.debug { argStrings.append("-d") }
    let cStrings = argStrings.map { strdup($0) }
    defer { cStrings.forEach { free($0) } }
    let argv = UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>.allocate(capacity: cStrings.count + 1)
    defer { argv.deallocate() }
    for (i, s) in cStrings.enumerated() { argv[i] = s }
    argv[cStrings.count] = nil
    var args = fuse_args(argc: Int32(cStrings.count), argv: argv, allocated: 0)
    defer { if args.allocated != 0 { fuse_opt_free_args(&args) } }

    entryTimeoutBits.store(config.entryTimeout.bitPattern, ordering: .relaxed)
    attrTimeoutBits.store(config.attrTimeout.bitPattern, ordering: .relaxed)
    writebackWanted.store(config.writebackCache, ordering: .relaxed)
    maxReadWanted.store(config.maxRead ?? 0, ordering: .relaxed)
    var ops = makeLowLevelOps()
    let userdata = Unmanaged.passUnretained(fs).toOpaque()
    guard let se = lsmfs_session_new(&args, &ops, MemoryLayout<fuse_lowlevel_ops>.size, userdata) else {
        throw FuseError("cannot create the FUSE session (unknown -o option? options: \(argStrings.dropFirst().joined(separator: " ")))")
    }
    guard fuse_set_signal_handlers(se) == 0 else {
        fuse_session_destroy(se)
        throw FuseError("cannot install signal handlers")
    }
    guard fuse_session_mount(se, config.mountpoint) == 0 else {
        fuse_remove_signal_handlers(se)
        fuse_session_destroy(se)
        throw FuseError("cannot mount on \(config.mountpoint) (is /dev/fuse available and fusermount3 installed?)")
    }
    if let kib = config.readAheadKiB { setReadAhead(mountpoint: config.mountpoint, kib: kib) }
    FileSystem.fuseTransport.withLock { $0 = "/dev/fuse" }
    FuseRing.wanted.store(config.ioUring && getenv("LSMFS_NO_IO_URING") == nil && FuseRing.kernelAllows(), ordering: .relaxed)
    if getenv("LSMFS_NO_KILLPRIV_V2") == nil && !KillPriv.install(se) {
        fuseLog.info("custom FUSE I/O refused: FUSE_HANDLE_KILLPRIV_V2 not offered")
    }
    withExtendedLifetime(fs) {
        onMounted()
    }
    let rc = withExtendedLifetime(fs) { lsmfs_session_loop_mt(se, 0, 10) }
    FuseRing.stop()
    fuse_session_unmount(se)
    fuse_remove_signal_handlers(se)
    fuse_session_destroy(se)
    // libfuse reports the signal that ended the loop as a positive number: a clean stop.
    if rc > 0 {
        fuseLog.info("stopped by signal \(rc)")
        return 0
    }
    if rc < 0 { fuseLog.error("FUSE loop failed: \(String(cString: strerror(-rc)))") }
    return rc
}

/// Sets the read-ahead window of the FUSE mount at `mountpoint` (see `FuseConfig.readAheadKiB`).
/// The mount's device number comes from /proc/self/mountinfo, not from stat(2): the session
/// loop does not run yet, so a stat of the mount point would wait for itself.
func setReadAhead(mountpoint: String, kib: Int) {
    guard let dev = mountDevice(of: mountpoint) else {
        fuseLog.info("read_ahead_kb: \(mountpoint) not found in /proc/self/mountinfo; kernel default kept")
        return
    }
    let path = "/sys/class/bdi/\(dev)/read_ahead_kb"
    let fd = Glibc.open(path, O_WRONLY)
    guard fd >= 0 else {
        fuseLog.info("read_ahead_kb: cannot open \(path) (\(String(cString: strerror(errno)))); kernel default kept")
        return
    }
    defer { close(fd) }
    var text = Array("\(kib)\n".utf8)
    if text.withUnsafeMutableBytes({ Glibc.write(fd, $0.baseAddress, $0.count) }) < 0 {
        fuseLog.info("read_ahead_kb: writing \(path) failed (\(String(cString: strerror(errno))))")
    }
}

/// "MAJOR:MINOR" of the last mount at `mountpoint` (the 3rd field of its mountinfo line; the
/// 5th is the mount point, with space, tab, newline and backslash written as octal escapes).
func mountDevice(of mountpoint: String) -> String? {
    var resolved = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
    let target = realpath(mountpoint, &resolved) != nil
        ? String(decoding: resolved.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) : mountpoint
    guard let f = fopen("/proc/self/mountinfo", "r") else { return nil }
    defer { fclose(f) }
    var found: String?
    var line: UnsafeMutablePointer<CChar>?
    var cap = 0
    defer { free(line) }
    while getline(&line, &cap, f) > 0, let line {
        let fields = String(cString: line).split(separator: " ", omittingEmptySubsequences: false)
        guard fields.count > 4 else { continue }
        if unescapeMountinfo(fields[4]) == target { found = String(fields[2]) }
    }
    return found
}

private func unescapeMountinfo(_ s: Substring) -> String {
    var out: [UInt8] = []
    let b = Array(s.utf8)
    var i = 0
    while i < b.count {
        if b[i] == 0x5C, i + 3 < b.count, let v = UInt8(String(decoding: b[(i + 1)...(i + 3)], as: UTF8.self), radix: 8) {
            out.append(v); i += 4
        } else {
            out.append(b[i]); i += 1
        }
    }
    return String(decoding: out, as: UTF8.self)
}

/// Caps glibc's malloc arenas at two for the daemon (call before any thread starts). By
/// default every FUSE worker thread gets its own arena; chunk buffers (64 KiB) allocated by
/// one worker and freed by the write-behind in another stayed as free space in six to eight
/// arenas of 35 MiB each (RSS 330 MiB after three rounds of a random-write benchmark, 130 MiB
/// with two arenas). The daemon allocates few, large blocks, so two arenas do not contend.
public func limitMallocArenas() {
    _ = glibcMallopt(-8 /* M_ARENA_MAX, <malloc.h> */, 2)
}

/// glibc's mallopt(3); <malloc.h> is not in the Glibc module.
@_silgen_name("mallopt")
private func glibcMallopt(_ param: Int32, _ value: Int32) -> Int32
