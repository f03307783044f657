import Glibc
import LSMStore
import SystemPackage

/// What one `lsmfs gc` did: the engine's result and the value log before and after.
public struct GCReport: Sendable {
    public var result = GCResult()
    public var before = VLogStats()
    public var after = VLogStats()
    /// Wall-clock time of the collection, in microseconds.
    public var micros: UInt64 = 0
    public init() {}
}

extension VLogStats {
    /// garbage / total (0 for an empty log).
    public var garbageRatio: Double { totalBytes == 0 ? 0 : Double(garbageBytes) / Double(totalBytes) }
}

extension FileSystem {
    /// The value log's counters now.
    public var vlogStats: VLogStats { store.stats().vlog }

    /// Value-log garbage collection by hand (`lsmfs gc`): writes out buffered file chunks so
    /// the store sees the newest data, then asks the engine to collect segments whose garbage
    /// ratio is at least `minGarbageRatio`, at most `maxSegments` of them (most garbage
    /// first). Throws EROFS on a read-only filesystem; the engine's errors keep their message.
    public func collectGarbage(minGarbageRatio: Double = 0, maxSegments: Int = .max) throws(LSMError) -> GCReport {
        if options.readOnly { throw LSMError(.readOnly, "the filesystem is mounted read-only") }
        guard minGarbageRatio.isFinite, minGarbageRatio >= 0, minGarbageRatio <= 1 else {
            throw LSMError(.invalidArgument, "minimum garbage ratio \(minGarbageRatio) is not in [0, 1]")
        }
        guard maxSegments >= 1 else { throw LSMError(.invalidArgument, "max segments must be at least 1") }
        do throws(Errno) { try flushAllDirty() } catch {
            throw LSMError(.io, "flushing buffered writes before GC failed: errno \(error.rawValue)")
        }
        var report = GCReport()
        report.before = vlogStats
        var t0 = timespec(), t1 = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t0)
        report.result = try store.collectGarbage(minGarbageRatio: minGarbageRatio, maxSegments: maxSegments)
        clock_gettime(CLOCK_MONOTONIC, &t1)
        report.micros = UInt64(max(0, (t1.tv_sec - t0.tv_sec) * 1_000_000 + (t1.tv_nsec - t0.tv_nsec) / 1000))
        report.after = vlogStats
        return report
    }

    /// `collectGarbage` answering a live-mount request (the FUSE ioctl): never throws, the
    /// failure goes into the reply.
    public func serveGCRequest(_ request: GCControl.Request) -> GCControl.Reply {
        var reply = GCControl.Reply()
        do throws(LSMError) {
            reply.report = try collectGarbage(minGarbageRatio: request.minGarbageRatio, maxSegments: request.maxSegments)
        } catch {
            reply.status = error.errno
            reply.message = error.message
            fsLog.warning("gc request failed: \(error.message)")
        }
        return reply
    }
}
