import Synchronization

/// The filesystem operations whose counts and latencies the daemon records.
public enum FSOp: Int, Sendable, CaseIterable {
    case lookup, forget, getattr, setattr, readlink, mknod, mkdir, unlink, rmdir, symlink, rename,
         link, open, read, write, flush, release, fsync, opendir, readdir, releasedir, fsyncdir,
         statfs, create, access, setxattr, getxattr, listxattr, removexattr, fallocate, lseek,
         copyFileRange, other

    public var name: String { "\(self)" }
}

/// Per-operation counters: calls, errors, total and maximum latency, a latency histogram,
/// bytes moved.
public struct OpCounter: Sendable, Equatable {
    public var calls: UInt64 = 0
    public var errors: UInt64 = 0
    public var totalNanos: UInt64 = 0
    public var maxNanos: UInt64 = 0
    public var bytes: UInt64 = 0
    /// `histogram[b]`: calls that took [2^b, 2^(b+1)) ns (b = 0 also holds 0 ns).
    public var histogram = [UInt64](repeating: 0, count: 64)
    public init() {}
    public var meanMicros: Double { calls == 0 ? 0 : Double(totalNanos) / Double(calls) / 1000 }

    /// The latency below which a fraction `p` of the calls finished (upper bound of the
    /// histogram bucket, at most the maximum seen), in microseconds.
    public func percentileMicros(_ p: Double) -> Double {
        guard calls > 0 else { return 0 }
        let target = UInt64((Double(calls) * p).rounded(.up))
        var seen: UInt64 = 0
        for (b, n) in histogram.enumerated() {
            seen += n
            if seen >= max(target, 1) {
                let upper = b >= 63 ? Double(UInt64.max) : Double(UInt64(1) << (b + 1))
                return min(upper, Double(maxNanos)) / 1000
            }
        }
        return Double(maxNanos) / 1000
    }

    mutating func add(nanos: UInt64) {
        histogram[nanos == 0 ? 0 : 63 - nanos.leadingZeroBitCount] &+= 1
    }
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
            t[op.rawValue].add(nanos: nanos)
        }
    }

    func snapshot() -> [OpCounter] { table.withLock { $0 } }
}
