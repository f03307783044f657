import Dispatch
import LSMCommon
import Synchronization

/// Garbage collection's shared state: one collector at a time (manual or background), the
/// background pass's queue and retry clock, and the counters behind `VLogStats`.
final class VLogCollector: Sendable {
    struct State {
        /// A pass holds the collector.
        var running = false
        /// A background pass is queued.
        var scheduled = false
        /// After a failed background pass (a full drive, a drive error) the next waits until
        /// then; the pause doubles with each failure in a row (`retryMicros` up to `maxRetryMicros`).
        var retryAfter: UInt64 = 0
        var failuresInARow = 0
        /// Segments with a damaged record the tree still points to: not collected until reopen.
        var skip: Set<UInt64> = []
        /// Garbage per settled segment as the last garbage probe measured it (VLogGCProbe.swift):
        /// a lower bound from then on. In memory only.
        var measured: [UInt64: UInt64] = [:]
        /// Value-log bytes appended (values and GC moves) when the last probe started.
        var probedAt: UInt64 = 0
        /// The last background pass freed segments: the next goes on until the garbage ratio
        /// is down to half the trigger (`VLogGCPolicy.backgroundVictims`).
        var draining = false
    }
    let state = Mutex(State())
    /// Its own queue: a long pass never delays a flush or compaction on the background queue.
    let queue = DispatchQueue(label: "lsmstore.vlog-gc")
    let runs = Atomic<UInt64>(0)
    let segmentsFreed = Atomic<UInt64>(0)
    let bytesMoved = Atomic<UInt64>(0)
    let bytesFreed = Atomic<UInt64>(0)
    /// Garbage probes (tree walks) run.
    let probes = Atomic<UInt64>(0)

    /// A failed background pass is retried after this long (space may be freed meanwhile).
    static let retryMicros: UInt64 = 1_000_000
    static let maxRetryMicros: UInt64 = 30_000_000
}

/// Keeps a background pass under `bytesPerSecond` moved (0 or less: no limit): after each chunk, sleeps until the bytes moved
/// so far are due (at most `maxSleepMicros` at once, so close never waits long; the rest is
/// owed by the next chunk).
struct GCPacer {
    let bytesPerSecond: UInt64
    let start = monotonicMicros()
    var bytes: UInt64 = 0
    static let maxSleepMicros: UInt64 = 200_000

    init(bytesPerSecond: Int) { self.bytesPerSecond = UInt64(max(1, bytesPerSecond)) }

    mutating func account(_ n: UInt64) {
        bytes &+= n
        let due = start &+ bytes.multipliedReportingOverflow(by: 1_000_000).partialValue / bytesPerSecond
        let now = monotonicMicros()
        if due > now { sleepMicros(Int(min(due - now, GCPacer.maxSleepMicros))) }
    }
}

extension Engine {
    /// Starts a background pass when the value log's garbage passes `options.gcGarbageRatio`
    /// (or an interrupted pass waits to be finished), or when a garbage probe is due
    /// (VLogGCProbe.swift: the counts lag behind overwrites and deletes). Called after every
    /// flush and compaction (they find the garbage and write the log) and after a pass.
    func maybeScheduleGC() {
        if readOnly || options.gcGarbageRatio <= 0 || options.gcGarbageRatio > 1 { return }
        if state.withLock({ $0.closing || $0.closed }) { return }
        let now = monotonicMicros()
        let idle = gc.state.withLock { s in !s.running && !s.scheduled && now >= s.retryAfter }
        guard idle else { return }
        // One listing for both questions (it takes the head lock writers append under).
        let (usage, active) = segmentUsage(measured: true)
        guard !backgroundVictims(usage, active: active).isEmpty
                || garbageProbeDue(totalBytes: usage.reduce(0) { $0 + $1.totalBytes }) else { return }
        let go = gc.state.withLock { s -> Bool in
            if s.running || s.scheduled { return false }
            s.scheduled = true
            return true
        }
        if go { gc.queue.async { self.backgroundGC() } }
    }

    /// Bytes of every listed segment.
    func vlogBytes() -> UInt64 {
        segmentUsage(measured: false).usage.reduce(0) { $0 + $1.totalBytes }
    }

    /// What a background pass would take now.
    func backgroundVictims() -> [UInt64] {
        let (usage, active) = segmentUsage(measured: true)
        return backgroundVictims(usage, active: active)
    }

    /// What a background pass would take from `usage` (`segmentUsage(measured: true)`).
    func backgroundVictims(_ usage: [SegmentUsage], active: Set<UInt64>) -> [UInt64] {
        let (skip, draining) = gc.state.withLock { ($0.skip, $0.draining) }
        return VLogGCPolicy.backgroundVictims(usage.filter { !skip.contains($0.number) }, active: active,
                                              trigger: options.gcGarbageRatio, draining: draining)
    }

    /// One background pass, rate-limited; stops between chunks when the store closes.
    func backgroundGC() {
        var freedAny = false
        do throws(LSMError) {
            try withCollector { () throws(LSMError) in
                gc.state.withLock { $0.scheduled = false }
                var pacer: GCPacer? = options.gcBytesPerSecond > 0 ? GCPacer(bytesPerSecond: options.gcBytesPerSecond) : nil
                if garbageProbeDue(totalBytes: vlogBytes()) { try probeGarbage() }
                freedAny = try collect(backgroundVictims(), pacer: &pacer).segmentsFreed > 0
            }
            gc.state.withLock { $0.failuresInARow = 0; $0.draining = freedAny }
        } catch {
            gc.state.withLock { $0.draining = false }
            let pause = gc.state.withLock { s -> UInt64 in
                let pause = min(VLogCollector.maxRetryMicros, VLogCollector.retryMicros << min(s.failuresInARow, 5))
                s.failuresInARow += 1
                s.retryAfter = monotonicMicros() + pause
                return pause
            }
            if error.kind != .closed {
                // Nothing else may call again soon (an idle store): come back after the pause.
                gc.queue.asyncAfter(deadline: .now() + .microseconds(Int(pause) + 10_000)) { self.maybeScheduleGC() }
            }
        }
        gc.state.withLock { $0.scheduled = false }
        signal.broadcast()
        if freedAny {
            maybeScheduleBackground() // a flush that found the drive full may fit now
            maybeScheduleGC()
        }
    }

    /// Close: lets a running pass stop at its next chunk and waits for it (the pass sees
    /// `closing`; queued passes find the store closing and do nothing).
    func stopGC() {
        while true {
            let g = signal.generation
            if !gc.state.withLock({ $0.running }) { return }
            signal.wait(past: g)
        }
    }

    /// The collector's part of `VLogStats`: garbage and live bytes per the manifest's counts
    /// or the last garbage probe (the larger), and the GC counters.
    func fillGCStats(_ s: inout VLogStats) {
        let (usage, _) = segmentUsage(measured: true)
        s.garbageBytes = usage.reduce(0) { $0 + min($1.totalBytes, $1.garbageBytes) }
        s.liveBytes = usage.reduce(0) { $0 + $1.liveBytes }
        s.gcRuns = gc.runs.value
        s.gcSegmentsFreed = gc.segmentsFreed.value
        s.gcBytesMoved = gc.bytesMoved.value
        s.gcBytesFreed = gc.bytesFreed.value
    }
}
