import CFuse
import Glibc
import LSMFS
import SystemPackage

/// Control requests to a live mount, as ioctls on the root directory (docs/gc.md). One today:
/// `GCControl.command`, value-log garbage collection by hand (`lsmfs gc MOUNTPOINT`).
///
/// Why an ioctl: it is one synchronous request/reply on a file descriptor the caller already
/// has (the mountpoint), with a typed binary payload both ways, so the CLI gets the GC's
/// result or its reason in the same call; it needs no reserved name in the namespace, no
/// per-handle state (a write-then-read control file would), and reaches only an lsmfs
/// daemon: any other filesystem answers ENOTTY. The command encodes its size and direction
/// (a restricted ioctl), which FUSE accepts on an unprivileged mount. Only the mount's owner
/// (the daemon's uid) or root may start a GC: it costs the drive real work.
func installControlOps(_ ops: inout fuse_lowlevel_ops) {
    ops.ioctl = { req, ino, cmd, _, _, flags, inBuf, inSize, outSize in
        serve(req, .other) { fs throws(Errno) in
            guard cmd == GCControl.command else { throw Errno(rawValue: ENOTTY) }
            guard ino == UInt64(FUSE_ROOT_ID) else { throw Errno(rawValue: ENOTTY) }
            guard flags & UInt32(FUSE_IOCTL_COMPAT) == 0 else { throw Errno(rawValue: ENOTTY) }
            let who = caller(req).uid
            guard who == 0 || who == getuid() else { throw Errno(rawValue: EPERM) }
            guard let inBuf, inSize >= GCControl.size, outSize >= GCControl.size,
                  let request = GCControl.Request.decode(UnsafeRawBufferPointer(start: inBuf, count: inSize))
            else { throw Errno(rawValue: EINVAL) }
            let reply = fs.serveGCRequest(request).encode()
            _ = reply.withUnsafeBytes { fuse_reply_ioctl(req, 0, $0.baseAddress, $0.count) }
            return 0
        }
    }
}

/// The client side (`lsmfs gc`): sends `request` to the daemon serving the directory open as
/// `fd` (its mountpoint). Returns the reply, or the errno of the ioctl itself (ENOTTY: not an
/// lsmfs mount; EPERM: not the mount's owner).
public func sendGCRequest(fd: Int32, _ request: GCControl.Request) -> Result<GCControl.Reply, Errno> {
    var buf = request.encode()
    let rc = buf.withUnsafeMutableBytes { lsmfs_ioctl_ptr(fd, UInt(GCControl.command), $0.baseAddress) }
    if rc != 0 { return .failure(Errno(rawValue: errno)) }
    guard let reply = buf.withUnsafeBytes({ GCControl.Reply.decode($0) }) else { return .failure(Errno(rawValue: EBADMSG)) }
    return .success(reply)
}
