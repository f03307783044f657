import Glibc

/// Thin syscall wrappers for the image file: the one place that retries EINTR, loops over
/// short reads and writes, and turns errno into `DeviceError`.
package enum FileIO {
    package static func errorString(_ e: Int32) -> String { String(cString: strerror(e)) }

    package static func ioError(_ what: String, _ e: Int32 = Glibc.errno) -> DeviceError {
        DeviceError(.io, errno: e, "\(what): \(errorString(e))")
    }

    /// Reads exactly `buffer.count` bytes at `offset`; a read past the end of the file is an
    /// error (the image shrank under us), never silently zero.
    /// Whether descriptors `a` and `b` are the same file (a path opened again may have been
    /// replaced since the first open).
    package static func sameFile(_ a: Int32, _ b: Int32) -> Bool {
        var sa = stat(), sb = stat()
        return fstat(a, &sa) == 0 && fstat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino
    }

    package static func preadFully(_ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer, at offset: UInt64,
                                   _ what: @autoclosure () -> String) throws(DeviceError) {
        var done = 0
        while done < buffer.count {
            let n = pread(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset) + off_t(done))
            if n < 0 {
                if errno == EINTR { continue }
                throw ioError("read \(what())")
            }
            if n == 0 {
                throw DeviceError(.io, errno: EIO, "read \(what()): unexpected end of image at byte \(offset + UInt64(done))")
            }
            done += n
        }
    }

    /// Writes all of `buffer` at `offset`.
    package static func pwriteFully(_ fd: Int32, _ buffer: UnsafeRawBufferPointer, at offset: UInt64,
                                    _ what: @autoclosure () -> String) throws(DeviceError) {
        var done = 0
        while done < buffer.count {
            let n = pwrite(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset) + off_t(done))
            if n < 0 {
                if errno == EINTR { continue }
                throw ioError("write \(what())")
            }
            if n == 0 { throw DeviceError(.io, errno: EIO, "write \(what()): no progress at byte \(offset + UInt64(done))") }
            done += n
        }
    }

    /// Reads up to `count` bytes at `offset` (stops early only at end of file).
    package static func preadUpTo(_ fd: Int32, count: Int, at offset: UInt64, _ what: String) throws(DeviceError) -> [UInt8] {
        var buf = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let n = buf.withUnsafeMutableBytes { p in pread(fd, p.baseAddress! + done, count - done, off_t(offset) + off_t(done)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw ioError("read \(what)")
            }
            if n == 0 { break }
            done += n
        }
        return Array(buf[0..<done])
    }

    package static func open(_ path: String, _ flags: Int32, _ mode: mode_t = 0o644) -> Int32 {
        while true {
            let fd = Glibc.open(path, flags | O_CLOEXEC, mode)
            if fd >= 0 || errno != EINTR { return fd }
        }
    }

    package static func fdatasync(_ fd: Int32, _ what: String) throws(DeviceError) {
        while Glibc.fdatasync(fd) != 0 {
            if errno == EINTR { continue }
            throw ioError("fdatasync \(what)")
        }
    }

    package static func fsync(_ fd: Int32, _ what: String) throws(DeviceError) {
        while Glibc.fsync(fd) != 0 {
            if errno == EINTR { continue }
            throw ioError("fsync \(what)")
        }
    }

    package static func ftruncate(_ fd: Int32, _ size: UInt64, _ what: String) throws(DeviceError) {
        while Glibc.ftruncate(fd, off_t(size)) != 0 {
            if errno == EINTR { continue }
            throw ioError("resize \(what) to \(size) bytes")
        }
    }

    /// Takes an flock without blocking; `.io` EWOULDBLOCK "image is in use by another process".
    package static func lock(_ fd: Int32, exclusive: Bool, _ path: String) throws(DeviceError) {
        while flock(fd, (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) != 0 {
            if errno == EINTR { continue }
            if errno == EWOULDBLOCK {
                throw DeviceError(.io, errno: EWOULDBLOCK, "image is in use by another process: \(path)")
            }
            throw ioError("lock \(path)")
        }
    }

    /// fsyncs the directory holding `path`, so a newly created file's name is durable.
    package static func syncParentDirectory(of path: String) throws(DeviceError) {
        let dir: String
        if let slash = path.lastIndex(of: "/") {
            dir = slash == path.startIndex ? "/" : String(path[..<slash])
        } else {
            dir = "."
        }
        let fd = open(dir, O_RDONLY | O_DIRECTORY)
        if fd < 0 { throw ioError("open directory \(dir)") }
        defer { _ = Glibc.close(fd) }
        try fsync(fd, "directory \(dir)")
    }

    /// Byte ranges of `[from, to)` that hold data (not holes), via SEEK_DATA/SEEK_HOLE; the
    /// whole range when the filesystem cannot tell.
    package static func dataExtents(_ fd: Int32, from: UInt64, to: UInt64) -> [Range<UInt64>] {
        var out: [Range<UInt64>] = []
        var pos = off_t(from)
        while UInt64(pos) < to {
            let data = lseek(fd, pos, 3 /* SEEK_DATA */)
            if data < 0 {
                if errno == ENXIO { break }            // no more data
                return [from..<to]                      // unsupported: assume everything written
            }
            if UInt64(data) >= to { break }
            var hole = lseek(fd, data, 4 /* SEEK_HOLE */)
            if hole < 0 { hole = off_t(to) }
            let end = min(UInt64(hole), to)
            out.append(UInt64(data)..<end)
            pos = off_t(end)
        }
        return out
    }
}
