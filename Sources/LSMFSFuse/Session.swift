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
    /// `default_permissions`, `fsname=lsmfs` and `subtype=lsmfs` are added unless present.
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
    var opts = user.filter { !$0.isEmpty }
    func has(_ key: String) -> Bool { opts.contains { $0 == key || $0.hasPrefix(key + "=") } }
    if !has("default_permissions") { opts.append("default_permissions") }
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

    var argStrings = ["lsmfs", "-o", effectiveOptions(config.options).joined(separator: ",")]
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
    withExtendedLifetime(fs) {
        onMounted()
    }
    let rc = withExtendedLifetime(fs) { lsmfs_session_loop_mt(se, 0, 10) }
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
