import CFuse
import Glibc
import LSMFS
import SystemPackage
import Synchronization

/// Entry and attribute cache lifetimes handed to the kernel (mount options `entry_timeout=`,
/// `attr_timeout=`; default `FuseConfig.defaultCacheTimeout`). Every change goes through this
/// daemon, so caching is safe; the stats pseudo-files are never cached. Set by `runFuse` before
/// the session starts.
let entryTimeoutBits = Atomic<UInt64>(FuseConfig.defaultCacheTimeout.bitPattern)
let attrTimeoutBits = Atomic<UInt64>(FuseConfig.defaultCacheTimeout.bitPattern)
/// Whether the mount asked for the kernel's writeback cache (read by the init callback).
let writebackWanted = Atomic<Bool>(false)
/// `FuseConfig.maxRead` (0: none), for the init callback.
let maxReadWanted = Atomic<UInt32>(0)
var entryTimeout: Double { Double(bitPattern: entryTimeoutBits.load(ordering: .relaxed)) }
var attrTimeout: Double { Double(bitPattern: attrTimeoutBits.load(ordering: .relaxed)) }

/// The FileSystem behind a request (the session's userdata; the caller of `runFuse` keeps it alive).
@inline(__always)
func fileSystem(_ req: fuse_req_t?) -> FileSystem {
    Unmanaged<FileSystem>.fromOpaque(fuse_req_userdata(req)!).takeUnretainedValue()
}

func monotonicNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// Runs one request: `body` performs the operation and sends the success reply; if it
/// throws, the errno is the reply. Exactly one reply either way. Records count and latency.
/// `body` returns the bytes moved (for read/write statistics).
@inline(__always)
func serve(_ req: fuse_req_t?, _ op: FSOp, _ body: (FileSystem) throws(Errno) -> UInt64) {
    let fs = fileSystem(req)
    let t0 = monotonicNanos()
    do throws(Errno) {
        let bytes = try body(fs)
        fs.recordOp(op, nanos: monotonicNanos() &- t0, failed: false, bytes: bytes)
    } catch {
        fuse_reply_err(req, error.rawValue)
        fs.recordOp(op, nanos: monotonicNanos() &- t0, failed: true)
    }
}

/// Whether this daemon checks permissions itself: set by `runFuse` when the mount runs
/// without the kernel's `default_permissions` (see `permissionsInDaemon`).
let daemonChecksAccess = Atomic<Bool>(false)

/// A request pointer a caller's group lookup may hold; used only while the request runs.
private struct RequestRef: @unchecked Sendable { let req: fuse_req_t? }

/// The caller's credentials from the request context; `checksAccess` when the daemon checks
/// permissions, with the supplementary groups read (from /proc, by libfuse) only if a check
/// needs them.
func caller(_ req: fuse_req_t?) -> Caller {
    guard let ctx = fuse_req_ctx(req) else { return Caller.process }
    let ref = RequestRef(req: req)
    return caller(uid: ctx.pointee.uid, gid: ctx.pointee.gid, pid: ctx.pointee.pid, groups: { requestGroups(ref.req) })
}

/// The caller of a request with these credentials (see `caller(_:)`); `groups` reads the
/// supplementary groups when a check needs them. It is built (an allocation) only for a
/// non-root caller whose permissions the daemon checks.
func caller(uid: UInt32, gid: UInt32, pid: pid_t, groups: @autoclosure () -> (@Sendable () -> [UInt32])) -> Caller {
    guard daemonChecksAccess.load(ordering: .relaxed) else { return Caller(uid: uid, gid: gid) }
    // root's checks never ask for groups: no closure (no allocation) for it
    if uid == 0 { return Caller(uid: uid, gid: gid, checksAccess: true) }
    var c = Caller(uid: uid, gid: gid, checksAccess: true, supplementaryGroups: groups())
    c.capabilities = { effectiveCapabilities(pid) }
    return c
}

/// CapEff of process `pid` from /proc/PID/status (0 if it cannot be read: no overrides).
private func effectiveCapabilities(_ pid: pid_t) -> UInt64 {
    guard let field = procStatusField(pid, "CapEff:") else { return 0 }
    var v: UInt64 = 0
    for c in field { guard let d = hexDigit(c) else { break }; v = v << 4 | d }
    return v
}

/// The supplementary groups of process `pid` from /proc/PID/status (for requests libfuse
/// does not see, which `fuse_req_getgroups` cannot serve; empty if they cannot be read).
func processGroups(_ pid: pid_t) -> [UInt32] {
    guard let field = procStatusField(pid, "Groups:") else { return [] }
    return field.split(whereSeparator: { $0 == 0x20 || $0 == 0x09 }).compactMap { UInt32(String(decoding: $0, as: UTF8.self)) }
}

/// The value of line `key` of /proc/PID/status (after the key and blanks, to the line's end).
private func procStatusField(_ pid: pid_t, _ key: String) -> ArraySlice<UInt8>? {
    let fd = open("/proc/\(pid)/status", O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var buf = [UInt8](repeating: 0, count: 4096)
    let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
    guard n > 0 else { return nil }
    let key = Array(("\n" + key).utf8)
    var i = 0
    while i + key.count <= n {
        if buf[i] == key[0] && buf[i..<i + key.count].elementsEqual(key) {
            var j = i + key.count
            while j < n && (buf[j] == 0x20 || buf[j] == 0x09) { j += 1 }
            var end = j
            while end < n && buf[end] != 0x0A { end += 1 }
            return buf[j..<end]
        }
        i += 1
    }
    return nil
}

private func hexDigit(_ c: UInt8) -> UInt64? {
    switch c {
    case 0x30...0x39: return UInt64(c - 0x30)
    case 0x61...0x66: return UInt64(c - 0x61 + 10)
    case 0x41...0x46: return UInt64(c - 0x41 + 10)
    default: return nil
    }
}

/// The caller to hand operations that only check permissions: nil when the kernel checks them.
func checkedCaller(_ req: fuse_req_t?) -> Caller? {
    daemonChecksAccess.load(ordering: .relaxed) ? caller(req) : nil
}

/// The supplementary groups of the process behind `req` (empty if they cannot be read).
private func requestGroups(_ req: fuse_req_t?) -> [UInt32] {
    var groups = [gid_t](repeating: 0, count: 64)
    while true {
        let n = Int(fuse_req_getgroups(req, Int32(groups.count), &groups))
        if n < 0 { return [] }
        if n <= groups.count { return Array(groups.prefix(n)) }
        groups = [gid_t](repeating: 0, count: n)
    }
}

/// Whether the daemon must check permissions for a mount with these `-o` items: when
/// neither `default_permissions` (the kernel checks) nor `allow_other`/`allow_root` is given. Such a mount
/// is reachable only by the user who mounted it; the kernel checks nothing, and the daemon
/// checks mode bits and ownership on every operation (Permissions.swift), which spares the
/// GETATTR of the parent directory the kernel's own check costs after each namespace change.
/// With `allow_other` (several users) `default_permissions` is added: search permission on a
/// path the kernel has cached is then still checked for every user.
/// `daemon_permissions` (taken out before libfuse sees the options) makes the daemon check
/// even with `allow_other`: for tests, which then remount so that no path is cached (with
/// several users, a path the kernel has cached is not re-checked for search permission).
func permissionsInDaemon(_ opts: [String]) -> Bool {
    func has(_ key: String) -> Bool { opts.contains { $0 == key || $0.hasPrefix(key + "=") } }
    return has(daemonPermissionsOption)
        || (!has("default_permissions") && !has("allow_other") && !has("allow_root"))
}

let daemonPermissionsOption = "daemon_permissions"

/// A C name argument as bytes (without the NUL).
func nameBytes(_ p: UnsafePointer<CChar>?) -> [UInt8] {
    guard let p else { return [] }
    let n = strlen(p)
    return p.withMemoryRebound(to: UInt8.self, capacity: n) { Array(UnsafeBufferPointer(start: $0, count: n)) }
}

func statOf(_ a: FileAttr) -> stat {
    var st = stat()
    st.st_ino = UInt(a.ino)
    st.st_mode = a.mode
    st.st_nlink = UInt(a.nlink)
    st.st_uid = a.uid
    st.st_gid = a.gid
    st.st_rdev = UInt(a.rdev)
    st.st_size = Int(truncatingIfNeeded: a.size)
    st.st_blksize = 65536
    st.st_blocks = Int(truncatingIfNeeded: a.blocks)
    st.st_atim = timespec(tv_sec: Int(a.atime.sec), tv_nsec: Int(a.atime.nsec))
    st.st_mtim = timespec(tv_sec: Int(a.mtime.sec), tv_nsec: Int(a.mtime.nsec))
    st.st_ctim = timespec(tv_sec: Int(a.ctime.sec), tv_nsec: Int(a.ctime.nsec))
    return st
}

private func isPseudo(_ a: FileAttr) -> Bool { a.ino == 2 || a.ino == 3 }

func entryParam(_ a: FileAttr) -> fuse_entry_param {
    var e = fuse_entry_param()
    e.ino = a.ino
    e.generation = a.generation
    e.attr = statOf(a)
    e.attr_timeout = isPseudo(a) ? 0 : attrTimeout
    e.entry_timeout = isPseudo(a) ? 0 : entryTimeout
    return e
}

/// Sends an entry reply; if the kernel did not take it (interrupted request), the lookup
/// reference the filesystem took for it is dropped again.
func replyEntry(_ req: fuse_req_t?, _ fs: FileSystem, _ a: FileAttr) {
    var e = entryParam(a)
    if fuse_reply_entry(req, &e) != 0 { fs.forget(a.ino, 1) }
}

func replyAttr(_ req: fuse_req_t?, _ a: FileAttr) {
    var st = statOf(a)
    fuse_reply_attr(req, &st, isPseudo(a) ? 0 : attrTimeout)
}
