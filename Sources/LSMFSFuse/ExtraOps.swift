import CFuse
import Glibc
import LSMFS
import SystemPackage

/// fallocate, lseek (SEEK_DATA/SEEK_HOLE; the kernel answers SEEK_SET/CUR/END itself) and
/// copy_file_range.
func installExtraOps(_ ops: inout fuse_lowlevel_ops) {
    ops.fallocate = { req, _, mode, offset, length, fi in
        serve(req, .fallocate) { fs throws(Errno) in
            guard let fi, offset >= 0, length > 0 else { throw Errno(rawValue: EINVAL) }
            try fs.fallocate(fi.pointee.fh, mode: mode, offset: UInt64(offset), length: UInt64(length))
            fuse_reply_err(req, 0)
            return 0
        }
    }
    ops.lseek = { req, _, off, whence, fi in
        serve(req, .lseek) { fs throws(Errno) in
            guard let fi, off >= 0 else { throw Errno(rawValue: EINVAL) }
            guard whence == SeekWhence.data || whence == SeekWhence.hole else { throw Errno(rawValue: EINVAL) }
            let r = try fs.seekDataOrHole(fi.pointee.fh, offset: UInt64(off), whence: whence)
            fuse_reply_lseek(req, off_t(r))
            return 0
        }
    }
    ops.copy_file_range = { req, _, offIn, fiIn, _, offOut, fiOut, len, _ in
        serve(req, .copyFileRange) { fs throws(Errno) in
            guard let fiIn, let fiOut, offIn >= 0, offOut >= 0 else { throw Errno(rawValue: EINVAL) }
            let n = try fs.copyFileRange(from: fiIn.pointee.fh, at: UInt64(offIn), to: fiOut.pointee.fh,
                                         at: UInt64(offOut), length: min(len, 1 << 30))
            fuse_reply_write(req, n)
            return UInt64(n)
        }
    }
}
