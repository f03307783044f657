import CFuse
import Glibc
import LSMFS
import SystemPackage

/// FUSE_TMPFILE (opcode 51, protocol 7.37), served behind libfuse's back.
///
/// libfuse 3.14 has no `tmpfile` operation: it answers the request with ENOSYS, after which
/// the kernel marks the connection no_tmpfile and every open(dir, O_TMPFILE) fails with
/// EOPNOTSUPP. The session's custom reader (KillPriv.swift) hands each FUSE_TMPFILE request
/// here instead of to libfuse; the reply goes straight to /dev/fuse. The kernel sends the
/// request whatever minor version INIT negotiated (fuse_tmpfile checks only no_tmpfile).
///
/// The kernel's side is fuse_create_open with the opcode changed: the request body is
/// fuse_create_in and the dentry's name ("/" and a NUL for a tmpfile dentry), the reply a
/// fuse_entry_out then a fuse_open_out, as for FUSE_CREATE. The kernel instantiates the
/// dentry with the reply's attributes as they are (no d_tmpfile dropping a link), so the
/// reply carries nlink 0 and fstat shows 0, as on ext4.
enum TmpFileOp {
    static let opcode: UInt32 = 51
    /// FOPEN_NOFLUSH in fuse_open_out.open_flags (a create reply's only flag: see ops.create).
    static let fopenNoFlush: UInt32 = 1 << 5
    static let inHeaderSize = 40

    /// Whether the `n` request bytes at `buf` are a FUSE_TMPFILE (fuse_in_header.opcode at 4).
    static func isRequest(_ buf: UnsafeMutableRawPointer, _ n: Int) -> Bool {
        n >= inHeaderSize && buf.loadUnaligned(fromByteOffset: 4, as: UInt32.self) == opcode
    }
    static let createInSize = 16
    static let outHeaderSize = 16
    static let entryOutSize = 128
    static let openOutSize = 16

    /// Serves one FUSE_TMPFILE request of `n` bytes in `buf`, read from `fd`.
    /// Request: fuse_in_header { len u32, opcode u32, unique u64, nodeid u64, uid u32, gid u32,
    /// pid u32, total_extlen u16, padding u16 } then fuse_create_in { flags u32, mode u32,
    /// umask u32, open_flags u32 } and the name.
    static func serve(_ fd: Int32, _ buf: UnsafeMutableRawPointer, _ n: Int, _ userdata: UnsafeMutableRawPointer) {
        let unique = buf.loadUnaligned(fromByteOffset: 8, as: UInt64.self)
        guard n >= inHeaderSize + createInSize else { replyError(fd, unique, EINVAL); return }
        let fs = Unmanaged<FileSystem>.fromOpaque(userdata).takeUnretainedValue()
        let parent = buf.loadUnaligned(fromByteOffset: 16, as: UInt64.self)
        let uid = buf.loadUnaligned(fromByteOffset: 24, as: UInt32.self)
        let gid = buf.loadUnaligned(fromByteOffset: 28, as: UInt32.self)
        let pid = buf.loadUnaligned(fromByteOffset: 32, as: UInt32.self)
        let flags = buf.loadUnaligned(fromByteOffset: 40, as: UInt32.self)
        let mode = buf.loadUnaligned(fromByteOffset: 44, as: UInt32.self)
        let who = caller(uid: uid, gid: gid, pid: pid_t(bitPattern: pid), groups: { processGroups(pid_t(bitPattern: pid)) })
        let t0 = monotonicNanos()
        do throws(Errno) {
            let r = try fs.tmpfile(parent, mode: mode, flags: Int32(bitPattern: flags), caller: who)
            if !replyCreate(fd, unique, entryParam(r.attr), fh: r.fh, openFlags: fopenNoFlush) {
                fs.forget(r.attr.ino, 1)  // the kernel did not take it (interrupted)
                try? fs.release(r.fh)
            }
            fs.recordOp(.create, nanos: monotonicNanos() &- t0, failed: false)
        } catch {
            replyError(fd, unique, error.rawValue)
            fs.recordOp(.create, nanos: monotonicNanos() &- t0, failed: true)
        }
    }

    /// fuse_out_header { len u32, error i32 (-errno), unique u64 } alone.
    static func replyError(_ fd: Int32, _ unique: UInt64, _ errno: Int32) {
        var out = [UInt8](repeating: 0, count: outHeaderSize)
        out.withUnsafeMutableBytes { p in
            p.storeBytes(of: UInt32(outHeaderSize), toByteOffset: 0, as: UInt32.self)
            p.storeBytes(of: -errno, toByteOffset: 4, as: Int32.self)
            p.storeBytes(of: unique, toByteOffset: 8, as: UInt64.self)
        }
        _ = send(fd, out)
    }

    /// The CREATE-shaped reply, filled as libfuse's fuse_reply_create does (fill_entry,
    /// convert_stat, fill_open). Byte layout after the 16-byte fuse_out_header:
    /// fuse_entry_out (128): nodeid u64, generation u64, entry_valid u64, attr_valid u64,
    ///   entry_valid_nsec u32, attr_valid_nsec u32, fuse_attr (88): ino u64, size u64,
    ///   blocks u64, atime u64, mtime u64, ctime u64, atimensec u32, mtimensec u32,
    ///   ctimensec u32, mode u32, nlink u32, uid u32, gid u32, rdev u32, blksize u32, flags u32;
    /// fuse_open_out (16): fh u64, open_flags u32, backing_id i32.
    /// Returns whether the kernel took it.
    static func replyCreate(_ fd: Int32, _ unique: UInt64, _ e: fuse_entry_param, fh: UInt64, openFlags: UInt32) -> Bool {
        let total = outHeaderSize + entryOutSize + openOutSize
        var out = [UInt8](repeating: 0, count: total)
        out.withUnsafeMutableBytes { p in
            func u64(_ v: UInt64, _ at: Int) { p.storeBytes(of: v, toByteOffset: at, as: UInt64.self) }
            func u32(_ v: UInt32, _ at: Int) { p.storeBytes(of: v, toByteOffset: at, as: UInt32.self) }
            u32(UInt32(total), 0); u32(0, 4); u64(unique, 8)
            let b = outHeaderSize
            u64(e.ino, b); u64(e.generation, b + 8)
            u64(timeoutSec(e.entry_timeout), b + 16); u64(timeoutSec(e.attr_timeout), b + 24)
            u32(timeoutNsec(e.entry_timeout), b + 32); u32(timeoutNsec(e.attr_timeout), b + 36)
            let a = b + 40, st = e.attr
            u64(UInt64(st.st_ino), a); u64(UInt64(bitPattern: Int64(st.st_size)), a + 8)
            u64(UInt64(bitPattern: Int64(st.st_blocks)), a + 16)
            u64(UInt64(bitPattern: Int64(st.st_atim.tv_sec)), a + 24)
            u64(UInt64(bitPattern: Int64(st.st_mtim.tv_sec)), a + 32)
            u64(UInt64(bitPattern: Int64(st.st_ctim.tv_sec)), a + 40)
            u32(UInt32(truncatingIfNeeded: st.st_atim.tv_nsec), a + 48)
            u32(UInt32(truncatingIfNeeded: st.st_mtim.tv_nsec), a + 52)
            u32(UInt32(truncatingIfNeeded: st.st_ctim.tv_nsec), a + 56)
            u32(st.st_mode, a + 60); u32(UInt32(truncatingIfNeeded: st.st_nlink), a + 64)
            u32(st.st_uid, a + 68); u32(st.st_gid, a + 72)
            u32(UInt32(truncatingIfNeeded: st.st_rdev), a + 76)
            u32(UInt32(truncatingIfNeeded: st.st_blksize), a + 80)
            let o = b + entryOutSize
            u64(fh, o); u32(openFlags, o + 8)
        }
        return send(fd, out)
    }

    /// libfuse's calc_timeout_sec / calc_timeout_nsec.
    static func timeoutSec(_ t: Double) -> UInt64 {
        if t >= Double(UInt64.max) { return UInt64.max }
        return t < 0 ? 0 : UInt64(t)
    }

    static func timeoutNsec(_ t: Double) -> UInt32 {
        let f = t - Double(timeoutSec(t))
        if f < 0 { return 0 }
        return f >= 0.999999999 ? 999_999_999 : UInt32(f * 1.0e9)
    }

    private static func send(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { p in
            var iov = iovec(iov_base: UnsafeMutableRawPointer(mutating: p.baseAddress), iov_len: p.count)
            return FuseRing.write(fd, &iov, 1) == p.count
        }
    }
}
