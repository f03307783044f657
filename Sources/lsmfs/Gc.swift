import ArgumentParser
import Glibc
import LSMFS
import LSMFSFuse
import LSMStore

/// `lsmfs gc MOUNTPOINT|IMAGE`: value-log garbage collection by hand (issue 5). On a live
/// mount the request goes to the daemon as an ioctl on the mountpoint (GCControl,
/// docs/gc.md); on an unmounted image the command opens the stack itself.
struct Gc: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gc",
        abstract: "Garbage-collect the value log of a mounted directory or an unmounted image.",
        discussion: """
        Moves the live values of the value-log segments with the most garbage to the head of \
        the log and frees those segments. On a mountpoint the running daemon does the work \
        (only its owner or root may ask); an image must not be mounted.
        """)

    @Argument(help: "A mountpoint of lsmfs, or an unmounted image file.")
    var target: String

    @Option(name: .customLong("min-garbage-ratio"),
            help: "Collect only segments whose garbage / size is at least this (0...1).")
    var minGarbageRatio: Double = 0

    @Option(name: .customLong("max-segments"), help: "Collect at most this many segments.")
    var maxSegments: Int?

    func validate() throws {
        guard minGarbageRatio.isFinite, minGarbageRatio >= 0, minGarbageRatio <= 1 else {
            throw ValidationError("--min-garbage-ratio must be between 0 and 1")
        }
        if let n = maxSegments, n < 1 { throw ValidationError("--max-segments must be at least 1") }
    }

    func run() throws {
        var st = stat()
        guard stat(target, &st) == 0 else { fail("\(target): \(String(cString: strerror(errno)))") }
        let request = GCControl.Request(minGarbageRatio: minGarbageRatio, maxSegments: maxSegments ?? .max)
        let report: GCReport
        if (st.st_mode & S_IFMT) == S_IFDIR {
            report = try viaDaemon(request)
        } else {
            report = try offline(request)
        }
        print(describe(report))
    }

    /// Asks the daemon serving `target` (an ioctl on the mountpoint).
    func viaDaemon(_ request: GCControl.Request) throws -> GCReport {
        let fd = open(target, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { fail("\(target): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let reply: GCControl.Reply
        switch sendGCRequest(fd: fd, request) {
        case .success(let r): reply = r
        case .failure(let err):
            let e = err.rawValue
            switch e {
            case ENOTTY, EINVAL, ENOSYS, EOPNOTSUPP:
                if access(target + "/.lsmfs-stats", F_OK) == 0 {
                    fail("\(target): the lsmfs daemon serving it does not take gc requests (\(String(cString: strerror(e)))); remount with this lsmfs")
                }
                fail("\(target) is not an lsmfs mountpoint (give the mountpoint itself, or an unmounted image)")
            case EPERM, EACCES:
                fail("\(target): only the user who mounted it (or root) may start a gc")
            case EBADMSG:
                fail("\(target): malformed reply from the daemon")
            default:
                fail("\(target): gc request failed: \(String(cString: strerror(e)))")
            }
        }
        if reply.status != 0 {
            fail("\(target): gc failed: \(reply.message.isEmpty ? String(cString: strerror(reply.status)) : reply.message)")
        }
        return reply.report
    }

    /// Opens the unmounted image, collects, and closes it cleanly.
    func offline(_ request: GCControl.Request) throws -> GCReport {
        let fs: FileSystem
        do {
            fs = try Stack.open(image: target, readOnly: false, policy: nil, syncInterval: 0)
        } catch {
            let why = Stack.describe(error)
            if why.contains("in use") {
                fail("\(why) (is it mounted? run `lsmfs gc MOUNTPOINT` to ask its daemon)")
            }
            fail(why)
        }
        do {
            let report = try fs.collectGarbage(minGarbageRatio: request.minGarbageRatio, maxSegments: request.maxSegments)
            try fs.shutdown()
            return report
        } catch {
            try? fs.shutdown()
            fail("gc failed: \(Stack.describe(error))")
        }
    }

    func fail(_ message: String) -> Never {
        printError("lsmfs gc: \(message)")
        Gc.exit(withError: ExitCode(1))
    }
}

/// The few lines `lsmfs gc` prints.
func describe(_ r: GCReport) -> String {
    func vlog(_ v: VLogStats) -> String {
        "\(v.segments) segment\(v.segments == 1 ? "" : "s"), \(formatBytes(v.totalBytes)), garbage \(formatBytes(v.garbageBytes))"
            + " (" + fmtPercent(v.garbageRatio) + ")"
    }
    let freed = r.result.segmentsFreed
    // Garbage reclaimed = segment bytes freed less the live records moved out of them. The
    // "before" line shows the garbage accounted before the call: the GC's own memtable flush
    // may account more (overwrites count when their memtable is flushed, deletes when a
    // compaction drops the values).
    let sinceOpen = r.after.gcSegmentsFreed &- r.before.gcSegmentsFreed
    let background = sinceOpen > UInt64(freed) ? sinceOpen - UInt64(freed) : 0
    let reclaimed = r.result.bytesFreed > r.result.bytesMoved ? r.result.bytesFreed - r.result.bytesMoved : 0
    return """
        gc: freed \(freed) segment\(freed == 1 ? "" : "s") (\(formatBytes(r.result.bytesFreed)), \
        \(formatBytes(reclaimed)) of it garbage), moved \(formatBytes(r.result.bytesMoved)) of live values \
        in \(fmtSeconds(r.micros))
        vlog before: \(vlog(r.before))
        vlog after:  \(vlog(r.after))
        """ + (background > 0 ? "\nbackground GC freed \(background) more segment\(background == 1 ? "" : "s") meanwhile" : "")
}

private func fmtPercent(_ x: Double) -> String {
    let tenths = Int((x * 1000).rounded())
    return "\(tenths / 10).\(tenths % 10)%"
}

private func fmtSeconds(_ micros: UInt64) -> String {
    let ms = micros / 1000
    return "\(ms / 1000).\(String(ms % 1000 + 1000).dropFirst()) s"
}
