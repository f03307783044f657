import Glibc
import IMRDisk

/// One planned piece of a write-out: sectors `[sector, sector + ⌈count/sectorSize⌉)` of
/// `track`, taken from `owner`'s bytes `[offset, offset + count)` (a write-buffer page, or a
/// zero-padded copy of a file's last partial sector).
struct PendingWrite: Sendable {
    var track: Int
    var sector: Int
    let owner: BufferPage
    let offset: Int
    let count: Int
    /// The first piece of its track chunk (the I/O breakdown counts one operation per chunk).
    var startsChunk = true
    /// The file bytes this piece carries: `[fileStart, fileEnd)` (what the buffer must keep
    /// until the write completes).
    var fileStart: UInt64 = 0
    var fileEnd: UInt64 = 0

    var bytes: UnsafeRawBufferPointer { owner.bytes(offset, count) }
}

/// The write-behind queue (docs/kvimr.md, "Write-behind"): full-track chunks planned by an early
/// write-out are written by one background thread while the writer fills the next buffer, so
/// the host's copy of those bytes into the image does not stall the foreground.
///
/// Rules that keep the result identical to writing the chunks at once:
/// - the chunks are already in the map (the file's size covers them) but stay in the file's
///   write buffer until their write completes (`reap`), so reads are served from memory;
/// - every other device write, read of a top for a merged RMW, trim and checkpoint of KVIMR
///   waits for the queue first (`drain`): the device sees writes in program order, and a
///   checkpoint never names a sector not yet written;
/// - a failed write stops the thread with the job still queued; the next `drain` (every sync)
///   retries the queue in order on the caller's thread and throws if it fails again, so a sync
///   fails cleanly and nothing is lost that was not lost before (unsynced bytes only);
/// - queued bytes are bounded (`limitBytes`): the writer waits when the thread falls behind;
///   after a failure nothing more is queued (`failed`: write-outs are written at once, after a
///   retry of the queue) and appends past the buffer budget get the error
///   (`KVIMRCore.admitAfterWriteFailure`), so memory stays bounded while the device fails;
/// - a deleted file's jobs not yet started are dropped (`drop`): its tracks are freed, nothing
///   may be written to them later, and its failed job no longer blocks every checkpoint.
///
/// Guarded by its own pthread mutex (a condition variable is needed; `Mutex` has none). Lock
/// order: KVIMR's core lock, then this one; the thread never takes the core lock.
final class WriteBehind: @unchecked Sendable {
    struct Job: Sendable {
        var write: PendingWrite
        var mode: WriteMode
        var file: FileNumber
        var category: String
    }

    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let cond = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private let device: any TrackDevice
    let limitBytes: Int
    // Guarded by `mutex`:
    /// Jobs `head...` wait; those before `head` are written (nil: their pages let go at once).
    private var queue: [Job?] = []
    private var head = 0
    private var queuedBytes = 0
    private var failure: KVIMRError?
    private var stopping = false
    private var started = false
    /// The thread is writing job `head` (without the lock).
    private var writing = false
    /// Job `head`, being written, belongs to a file deleted meanwhile: it counts as done
    /// whatever its outcome (never retried).
    private var cancelHead = false
    private var thread = pthread_t()
    private var completed: [(file: FileNumber, bytes: Range<UInt64>)] = []
    private var charges = IOBreakdown()

    init(device: any TrackDevice, limitBytes: Int) {
        self.device = device
        self.limitBytes = limitBytes
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(cond, nil)
    }

    deinit {
        pthread_cond_destroy(cond); pthread_mutex_destroy(mutex)
        cond.deallocate(); mutex.deallocate()
    }

    private func lock() { pthread_mutex_lock(mutex) }
    private func unlock() { pthread_mutex_unlock(mutex) }

    /// Whether jobs are queued or completions wait to be reaped (cheap check for the fast path).
    var busy: Bool {
        lock(); defer { unlock() }
        return head < queue.count || !completed.isEmpty
    }

    /// Whether the thread stopped on a failed write that no retry has written yet.
    var failed: Bool {
        lock(); defer { unlock() }
        return failure != nil
    }

    /// Drops the queued jobs of `file` (deleted) that the thread has not started; one it is
    /// writing now completes (and is not retried if it fails). If the failed job the thread
    /// stopped on was the file's, the thread goes on with the rest.
    func drop(file: FileNumber) {
        lock(); defer { unlock() }
        guard head < queue.count else { return }
        var from = head
        if writing {
            if queue[head]!.file == file { cancelHead = true }
            from += 1
        } else if failure != nil, queue[head]!.file == file {
            failure = nil   // the failed job goes with the file
        }
        var kept: [Job?] = Array(queue[head..<from])
        kept.reserveCapacity(queue.count - head)
        for i in from..<queue.count {
            let job = queue[i]!
            if job.file == file { queuedBytes -= job.write.count } else { kept.append(job) }
        }
        queue = kept
        head = 0
        pthread_cond_broadcast(cond)
    }

    /// Queues `jobs` in order, waiting while more than `limitBytes` are queued (unless the
    /// thread stopped on a failure: then they wait for the next `drain`).
    func enqueue(_ jobs: [Job]) {
        lock(); defer { unlock() }
        guard !stopping else { return }
        if !started { start() }
        for j in jobs {
            while failure == nil && queuedBytes > 0 && queuedBytes + j.write.count > limitBytes {
                pthread_cond_wait(cond, mutex)
            }
            queue.append(j)
            queuedBytes += j.write.count
            pthread_cond_broadcast(cond)
        }
    }

    /// Returns once every queued job is written; after a failure of the thread, writes the
    /// rest here, in order, and throws if one fails again (it and the rest stay queued).
    func drain() throws(KVIMRError) {
        lock(); defer { unlock() }
        while failure == nil && head < queue.count { pthread_cond_wait(cond, mutex) }
        guard failure != nil else { return }
        while head < queue.count {
            let job = queue[head]!
            unlock()
            let result = perform(job)
            lock()
            if let error = result { failure = error; throw error }
            finished(job)
        }
        failure = nil
        pthread_cond_broadcast(cond)
    }

    /// Completed writes since the last call (file, file bytes), in order, and their drive time.
    func reap() -> (done: [(file: FileNumber, bytes: Range<UInt64>)], io: IOBreakdown) {
        lock(); defer { unlock() }
        // Handed over, not copied: emptying a still-shared array with `keepingCapacity` would
        // allocate a fresh buffer on every call (each append while the queue is busy).
        let out = (completed, charges)
        completed = []
        charges = IOBreakdown()
        return out
    }

    /// Stops the thread (queued jobs are dropped: the caller drains first if it wants them) and
    /// waits for it, so no write reaches the device after this returns.
    func stop() {
        lock()
        stopping = true
        let join = started
        started = false
        pthread_cond_broadcast(cond)
        unlock()
        if join { pthread_join(thread, nil) }
    }

    // MARK: - the thread

    private func start() {
        started = true
        let context = Unmanaged.passRetained(self).toOpaque()
        let rc = pthread_create(&thread, nil, { arg in
            let me = Unmanaged<WriteBehind>.fromOpaque(arg!).takeRetainedValue()
            me.run()
            return nil
        }, context)
        if rc != 0 {
            // No thread: the jobs wait for `drain`, which writes them on the caller's thread.
            Unmanaged<WriteBehind>.fromOpaque(context).release()
            started = false
            failure = KVIMRError(.io, "write-behind thread could not start (error \(rc))")
        }
    }

    private func run() {
        lock()
        while true {
            while !stopping && (failure != nil || head == queue.count) { pthread_cond_wait(cond, mutex) }
            if stopping { break }
            let job = queue[head]!
            writing = true
            unlock()
            let result = perform(job)
            lock()
            writing = false
            if let error = result, !cancelHead { failure = error } else { finished(job) }
            cancelHead = false
            pthread_cond_broadcast(cond)
        }
        unlock()
    }

    /// With the lock held: job `head` is written.
    private func finished(_ job: Job) {
        queue[head] = nil
        head += 1
        queuedBytes -= job.write.count
        completed.append((job.file, job.write.fileStart..<job.write.fileEnd))
        if head == queue.count {
            queue.removeAll(keepingCapacity: true); head = 0
        } else if head >= 1024 && 2 * head >= queue.count {
            queue.removeFirst(head); head = 0
        }
    }

    /// Writes one job (without the lock) and charges its drive time; the error, if any.
    private func perform(_ job: Job) -> KVIMRError? {
        let before = device.counters()
        do {
            try device.writeTrack(job.write.track, sector: job.write.sector, from: job.write.bytes, mode: job.mode)
        } catch {
            return KVIMRError(.io, "writing track \(job.write.track) sectors \(job.write.sector)+\(job.write.count / device.geometry.sectorSize): \(error.message)")
        }
        let after = device.counters()
        lock()
        charges.charge(job.category, bytes: job.write.count, before: before, after: after)
        if !job.write.startsChunk { charges.entries[job.category]?.ops -= 1 }
        unlock()
        return nil
    }
}
