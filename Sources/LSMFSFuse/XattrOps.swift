import CFuse
import Glibc
import LSMFS
import SystemPackage

/// Replies with `bytes` under getxattr/listxattr's size rules: `size == 0` asks for the length,
/// a buffer too small is ERANGE.
private func replySized(_ req: fuse_req_t?, _ bytes: [UInt8], size: Int) throws(Errno) -> UInt64 {
    if size == 0 {
        fuse_reply_xattr(req, bytes.count)
        return 0
    }
    guard bytes.count <= size else { throw Errno(rawValue: ERANGE) }
    bytes.withUnsafeBytes { _ = fuse_reply_buf(req, $0.baseAddress?.assumingMemoryBound(to: CChar.self), $0.count) }
    return UInt64(bytes.count)
}

/// Extended attributes (set/get/list/remove). The kernel checks namespace permissions
/// (trusted.* needs CAP_SYS_ADMIN; user.* read/write permission under default_permissions,
/// else the daemon checks it: `FileSystem.requireXattrAccess`).
func installXattrOps(_ ops: inout fuse_lowlevel_ops) {
    ops.setxattr = { req, ino, name, value, size, flags in
        serve(req, .setxattr) { fs throws(Errno) in
            try fs.setxattr(ino, nameBytes(name), UnsafeRawBufferPointer(start: value, count: size), flags: flags,
                            caller: checkedCaller(req))
            fuse_reply_err(req, 0)
            return UInt64(size)
        }
    }
    ops.getxattr = { req, ino, name, size in
        serve(req, .getxattr) { fs throws(Errno) in
            try replySized(req, try fs.getxattr(ino, nameBytes(name), caller: checkedCaller(req)), size: size)
        }
    }
    ops.listxattr = { req, ino, size in
        serve(req, .listxattr) { fs throws(Errno) in
            try replySized(req, try fs.listxattr(ino, caller: caller(req)), size: size)
        }
    }
    ops.removexattr = { req, ino, name in
        serve(req, .removexattr) { fs throws(Errno) in
            try fs.removexattr(ino, nameBytes(name), caller: checkedCaller(req))
            fuse_reply_err(req, 0)
            return 0
        }
    }
}
