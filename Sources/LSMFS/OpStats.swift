import Synchronization

/// The filesystem operations whose counts and latencies the daemon records.
public enum FSOp: Int, Sendable, CaseIterable {
    case lookup, forget, getattr, setattr, readlink, mknod, mkdir, unlink, rmdir, symlink, rename,
         link, open, read, write, flush, release, fsync, opendir, readdir, releasedir, fsyncdir,
         statfs, create, access, other

    public var name: String { "\(self)" }
}

/// Per-operation counters: calls, errors, total and maximum latency, bytes moved.
public struct OpCounter: Sendable, Equatable {
    public var calls: UInt64 = 0
    public var errors: UInt64 = 0
    public var totalNanos: UInt64 = 0
    public var maxNanos: UInt64 = 0
    public var bytes: UInt64 = 0
    public init() {}
    public var meanMicros: Double { calls == 0 ? 0 : Double(totalNanos) / Double(calls) / 1000 }
}

/// Thread-safe op counters, recorded by the FUSE daemon around each request.
final class OpStats: Sendable {
    private let table = Mutex([OpCounter](repeating: OpCounter(), count: FSOp.allCases.count))

    func record(_ op: FSOp, nanos: UInt64, failed: Bool, bytes: UInt64) {
        table.withLock { t in
            t[op.rawValue].calls &+= 1
            if failed { t[op.rawValue].errors &+= 1 }
            t[op.rawValue].totalNanos &+= nanos
            if nanos > t[op.rawValue].maxNanos { t[op.rawValue].maxNanos = nanos }
            t[op.rawValue].bytes &+= bytes
        }
    }

    func snapshot() -> [OpCounter] { table.withLock { $0 } }
}
