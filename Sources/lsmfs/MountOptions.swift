import LSMFSFuse

/// The `-o` options of `lsmfs mount`, split into what lsmfs itself consumes and what is
/// passed on to libfuse / the kernel.
struct MountOptions: Equatable {
    var readOnly = false
    var syncInterval: Double = 5
    var policy: String? = nil
    var logPath: String? = nil
    var debug = false
    var entryTimeout: Double = FuseConfig.defaultCacheTimeout
    var attrTimeout: Double = FuseConfig.defaultCacheTimeout
    var writebackCache = false
    /// The mount's kernel read-ahead window in KiB (nil: the kernel's default).
    var readAheadKiB: Int? = FuseConfig.defaultReadAheadKiB
    /// FUSE over io_uring when the kernel allows it (`no_io_uring`: /dev/fuse only).
    var ioUring = true
    /// The largest READ in bytes (`max_read=`; nil: the kernel's).
    var maxRead: UInt32? = nil
    /// Passed to libfuse as `-o` items (allow_other, default_permissions, ro, nosuid, ...).
    var fuseOptions: [String] = []

    /// Options mount(8) and fstab use that mean nothing to a FUSE daemon.
    static let mountOnly: Set<String> = ["defaults", "auto", "noauto", "user", "nouser", "users",
                                         "_netdev", "nofail", "rw", "owner", "group"]

    /// Parses `-o` values (each may hold a comma-separated list). Throws a one-line reason.
    static func parse(_ lists: [String]) throws -> MountOptions {
        var o = MountOptions()
        for list in lists {
            for item in list.split(separator: ",", omittingEmptySubsequences: true).map(String.init) {
                let (key, value) = splitKV(item)
                switch key {
                case "ro":
                    o.readOnly = true
                    o.fuseOptions.append("ro")
                case "sync_interval":
                    guard let v = value, let d = Double(v), d >= 0, d <= 86_400 else {
                        throw CLIError("invalid sync_interval '\(value ?? "")': seconds between 0 (off) and 86400")
                    }
                    o.syncInterval = d
                case "policy":
                    guard let v = value, !v.isEmpty else { throw CLIError("option policy needs a name: -o policy=NAME") }
                    if let problem = Stack.checkPolicy(v) { throw CLIError(problem) }
                    o.policy = v
                case "log":
                    guard let v = value, !v.isEmpty else { throw CLIError("option log needs a path: -o log=PATH") }
                    o.logPath = v
                case "debug":
                    o.debug = true
                case "entry_timeout", "attr_timeout":
                    guard let v = value, let d = Double(v), d >= 0, d <= 86_400 else {
                        throw CLIError("invalid \(key) '\(value ?? "")': seconds between 0 and 86400")
                    }
                    if key == "entry_timeout" { o.entryTimeout = d } else { o.attrTimeout = d }
                case "writeback_cache":
                    o.writebackCache = true
                case "no_writeback_cache":
                    o.writebackCache = false
                case "io_uring":
                    o.ioUring = true
                case "no_io_uring":
                    o.ioUring = false
                case "read_ahead_kb":
                    guard let v = value, let n = Int(v), n >= 0, n <= 65_536 else {
                        throw CLIError("invalid read_ahead_kb '\(value ?? "")': KiB between 0 and 65536")
                    }
                    o.readAheadKiB = n
                case "max_read":
                    guard let v = value, let n = UInt32(v), n >= 4096 else {
                        throw CLIError("invalid max_read '\(value ?? "")': bytes, at least 4096")
                    }
                    o.maxRead = n
                default:
                    if mountOnly.contains(key) || key.hasPrefix("x-") || key == "comment" { continue }
                    o.fuseOptions.append(item)
                }
            }
        }
        return o
    }

    private static func splitKV(_ item: String) -> (String, String?) {
        guard let eq = item.firstIndex(of: "=") else { return (item, nil) }
        return (String(item[..<eq]), String(item[item.index(after: eq)...]))
    }
}
