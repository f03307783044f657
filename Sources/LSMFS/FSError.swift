import Glibc
import Logging
import LSMStore
import SystemPackage

let fsLog = Logger(label: "lsmfs.fs")

/// Errors of the filesystem's setup (format/open), as opposed to per-operation errnos.
public struct FSError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var errno: Int32
    public init(_ message: String, errno: Int32 = EIO) { self.message = message; self.errno = errno }
    public var description: String { message }
}

extension Errno {
    static func of(_ code: Int32) -> Errno { Errno(rawValue: code) }
    static let noEnt = Errno(rawValue: Glibc.ENOENT)
    static let exists = Errno(rawValue: Glibc.EEXIST)
    static let notDir = Errno(rawValue: Glibc.ENOTDIR)
    static let isDir = Errno(rawValue: Glibc.EISDIR)
    static let notEmpty = Errno(rawValue: Glibc.ENOTEMPTY)
    static let inval = Errno(rawValue: Glibc.EINVAL)
    static let nameTooLong = Errno(rawValue: Glibc.ENAMETOOLONG)
    static let access = Errno(rawValue: Glibc.EACCES)
    static let perm = Errno(rawValue: Glibc.EPERM)
    static let roFS = Errno(rawValue: Glibc.EROFS)
    static let io = Errno(rawValue: Glibc.EIO)
    static let badF = Errno(rawValue: Glibc.EBADF)
    static let fBig = Errno(rawValue: Glibc.EFBIG)
    static let mLink = Errno(rawValue: Glibc.EMLINK)
}

/// Runs a store call, mapping LSMError to its errno (logging I/O and corruption errors).
@inline(__always)
func kv<T>(_ what: @autoclosure () -> String, _ body: () throws(LSMError) -> T) throws(Errno) -> T {
    do {
        return try body()
    } catch {
        switch error.kind {
        case .io, .corrupt, .closed:
            fsLog.error("store error during \(what()): \(error.kind): \(error.message)")
        default: break
        }
        throw Errno(rawValue: error.errno)
    }
}
