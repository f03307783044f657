import CFuse
import Glibc
import LSMFS
import Synchronization

/// FUSE_HANDLE_KILLPRIV_V2, negotiated behind libfuse's back.
///
/// Before each write(2) the kernel asks whether the file holds `security.capability` (a
/// GETXATTR round trip: one per WRITE request, a third of a small random writer's requests
/// and 2-3 per file tar extracts), unless the inode is marked S_NOSEC — which it does only on
/// filesystems with SB_NOSEC, which FUSE sets only when the daemon answers INIT with
/// FUSE_HANDLE_KILLPRIV_V2. Then one probe per inode suffices (until its attributes are
/// fetched again, a chmod sets a set-ID bit or a security.* xattr is set), and the kernel
/// also stops asking for the attributes before each chown (its v1 refresh of the mode).
/// The price is the daemon's duty to clear set-user-ID (and set-group-ID on group-executable
/// files) and file capabilities on write, truncate and open(O_TRUNC) by a caller without
/// CAP_FSETID (here: not root), and on chown — see `FileSystem.killSetID`.
///
/// libfuse 3.14 knows no FUSE_CAP for it, so the session's I/O goes through
/// `fuse_session_custom_io` (plain read/writev on the same /dev/fuse descriptor, which libfuse
/// would use anyway: lsmfs has no write_buf, so no splice reads) and the INIT reply gets the
/// flag when the kernel offered it. The same reader serves FUSE_TMPFILE requests, which libfuse
/// would refuse (TmpFileOp.swift); so with LSMFS_NO_KILLPRIV_V2 set O_TMPFILE is EOPNOTSUPP.
enum KillPriv {
    /// FUSE_HANDLE_KILLPRIV_V2 in fuse_init_in/fuse_init_out.flags (linux/fuse.h, 7.33).
    static let flag: UInt32 = 1 << 28
    static let opInit: UInt32 = 26
    /// The INIT request's unique id, once read (0 until then).
    static let initUnique = Atomic<UInt64>(0)
    static let kernelOffers = Atomic<Bool>(false)
    static let replied = Atomic<Bool>(false)
    // Whether the kernel accepted it (the daemon then clears set-ID bits itself) is
    // `FileSystem.daemonKillsPrivileges`, which the filesystem's permission checks read too.

    /// Routes the session's I/O through the INIT-patching reader/writer. Call after
    /// fuse_session_mount, before the loop. Returns false (nothing changed) if libfuse refuses.
    static func install(_ se: OpaquePointer) -> Bool {
        var io = fuse_custom_io()
        io.read = { fd, buf, len, userdata in
            var n = Glibc.read(fd, buf, len)
            // FUSE_TMPFILE, unknown to libfuse, is served here (TmpFileOp.swift); then the next request
            while let buf, let userdata, TmpFileOp.isRequest(buf, n) {
                // libfuse's loop cancels workers blocked in this read at exit: none may be
                // cancelled inside the store write (locks held, a batch half done).
                var cancelState: Int32 = 0
                pthread_setcancelstate(Int32(PTHREAD_CANCEL_DISABLE), &cancelState)
                TmpFileOp.serve(fd, buf, n, userdata)
                pthread_setcancelstate(cancelState, nil)
                n = Glibc.read(fd, buf, len)
            }
            if n >= 60, let buf, !KillPriv.replied.load(ordering: .relaxed) {
                // fuse_in_header: len u32, opcode u32, unique u64, ... (40 bytes);
                // fuse_init_in: major, minor, max_readahead, flags, flags2 (u32 each).
                if buf.loadUnaligned(fromByteOffset: 4, as: UInt32.self) == KillPriv.opInit {
                    let flags = buf.loadUnaligned(fromByteOffset: 52, as: UInt32.self)
                    let flags2 = flags & FuseRing.initExt != 0 ? buf.loadUnaligned(fromByteOffset: 56, as: UInt32.self) : 0
                    KillPriv.kernelOffers.store(flags & KillPriv.flag != 0, ordering: .relaxed)
                    FuseRing.kernelOffers.store(flags2 & FuseRing.flag2 != 0, ordering: .relaxed)
                    KillPriv.initUnique.store(buf.loadUnaligned(fromByteOffset: 8, as: UInt64.self), ordering: .relaxed)
                }
            }
            return n
        }
        io.writev = { fd, iov, count, userdata in
            guard let iov else { return Glibc.writev(fd, iov, count) }
            if count >= 2, !KillPriv.replied.load(ordering: .relaxed), KillPriv.patchInitReply(iov) {
                let n = Glibc.writev(fd, iov, count)
                if n > 0 { FuseRing.start(fd: fd, userdata: userdata) }
                return n
            }
            return FuseRing.write(fd, iov, count)
        }
        FuseRing.sessionBits.store(UInt(bitPattern: Int(bitPattern: UnsafeRawPointer(se))), ordering: .relaxed)
        return fuse_session_custom_io(se, &io, fuse_session_fd(se)) == 0
    }

    /// Adds the flag to the INIT reply (fuse_out_header: len u32, error i32, unique u64;
    /// fuse_init_out: major, minor, max_readahead, flags u32, ...), and FUSE_OVER_IO_URING when
    /// the ring is wanted and offered. Returns whether the ring was asked for.
    private static func patchInitReply(_ iov: UnsafeMutablePointer<iovec>) -> Bool {
        let unique = initUnique.load(ordering: .relaxed)
        guard unique != 0, iov[0].iov_len >= 16, iov[1].iov_len >= 16,
              let head = iov[0].iov_base, let body = iov[1].iov_base,
              head.loadUnaligned(fromByteOffset: 8, as: UInt64.self) == unique else { return false }
        replied.store(true, ordering: .relaxed)
        guard head.loadUnaligned(fromByteOffset: 4, as: Int32.self) == 0 else { return false }
        if kernelOffers.load(ordering: .relaxed) {
            let flags = body.loadUnaligned(fromByteOffset: 12, as: UInt32.self)
            body.storeBytes(of: flags | flag, toByteOffset: 12, as: UInt32.self)
            FileSystem.daemonKillsPrivileges.store(true, ordering: .relaxed)
        }
        return FuseRing.negotiate(body, length: iov[1].iov_len)
    }
}

/// Whether this request must clear set-ID bits and file capabilities itself (KILLPRIV_V2 on
/// and a caller without CAP_FSETID; root stands for the capability, as in Permissions.swift).
func killsSetID(_ req: fuse_req_t?) -> Bool {
    guard FileSystem.daemonKillsPrivileges.load(ordering: .relaxed), let ctx = fuse_req_ctx(req) else { return false }
    return ctx.pointee.uid != 0
}
