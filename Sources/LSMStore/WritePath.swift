import KVIMR
import LSMCommon

/// Limits on one update (a key or value beyond them is an invalid argument).
enum WriteLimits {
    static let maxKeyBytes = 64 << 10
    static let maxValueBytes = 64 << 20
}

extension Engine {
    /// Immutable memtables allowed before writers stall.
    var maxImmutables: Int { 2 }
    /// L0 files at which writers stall until compaction catches up.
    var l0StopTrigger: Int {
        max(options.l0StopTrigger ?? max(options.l0CompactionTrigger * 3, options.l0CompactionTrigger + 4),
            options.l0CompactionTrigger + 1)
    }
    /// L0 files at which each write is delayed by 1 ms, so compaction gains on the writers
    /// before they hit the hard stop.
    var l0SlowdownTrigger: Int {
        options.l0SlowdownTrigger ?? max(options.l0CompactionTrigger * 2, options.l0CompactionTrigger + 2)
    }

    /// Applies `batch` atomically: one WAL record, then the memtable, then the sequence is
    /// published so readers see all of it or none of it.
    /// `raw` (tests): log and apply these entries as they are instead of `batch`'s.
    func write(_ batch: WriteBatch, sync: Bool, raw: [BatchEntry]? = nil) throws(LSMError) {
        if readOnly { throw LSMError(.readOnly, "store is read-only") }
        var entries: [BatchEntry]
        if let raw { entries = raw } else { entries = try resolve(batch) }
        var user: UInt64 = 0
        for e in entries { user += UInt64(e.key.count + e.value.count) }
        let position = try writer.withLock { (w: inout WriterState) throws(LSMError) -> WALPosition? in
            if let f = w.failed { throw f }
            try makeRoomForWrite(&w)
            guard !entries.isEmpty else { return w.log.map { WALPosition(file: $0.file, offset: $0.bytesWritten) } }
            // Large values go to the value log first; the WAL and memtable get pointers. Under
            // the writer lock: a segment then gets pointers only in WALs created while it is
            // the head or later, which GC relies on (`segmentUsage`).
            if raw == nil { try separateValues(&entries) }
            let position = try logEntries(entries, &w)
            counters.userBytesWritten.bump(user)
            return position
        }
        if sync, let position { try syncWAL(through: position) }
    }

    /// With the writer lock held: logs `entries` (non-empty) as one WAL record, inserts them
    /// in the memtable and publishes their sequences. Returns the WAL position to sync for
    /// them. Used by `write` and by GC (moved pointers).
    func logEntries(_ entries: [BatchEntry], _ w: inout WriterState) throws(LSMError) -> WALPosition {
        let (mem, first) = try state.withLock { (s: inout EngineState) throws(LSMError) in
            if s.closed { throw LSMError(.closed, "store is closed") }
            return (s.mem, s.lastSequence + 1)
        }
        guard first + UInt64(entries.count) <= LSMFormat.maxSequence else {
            throw LSMError(.invalidArgument, "sequence numbers exhausted")
        }
        guard let before = w.log?.bytesWritten else { throw LSMError(.closed, "no write-ahead log") }
        // The WAL of an unfinished switch may be sealed (callers finish it in makeRoomForWrite).
        if let pending = w.switchPending { throw pending }
        let payload = BatchCodec.encode(sequence: first, entries)
        do throws(LSMError) {
            try w.log!.addBuffered(payload, kvimr: kvimr)   // in place: no copy of the buffer
        } catch {
            // KVIMR refuses an append it cannot place without changing anything; any other
            // failure leaves the log in an unknown state: no further writes.
            if error.kind != .noSpace { w.failed = error }
            throw error
        }
        let log = w.log!
        counters.walBytesWritten.bump(log.bytesWritten - before)
        // The record is in the WAL: apply it, then report a failed sync (the write may or
        // may not survive a crash, as with any failed fsync).
        for (i, e) in entries.enumerated() { mem.add(first + UInt64(i), e.kind, e.key, e.value) }
        state.withLock { $0.lastSequence = first + UInt64(entries.count) - 1 }
        return WALPosition(file: log.file, offset: log.bytesWritten)
    }

    /// Group commit: makes the WAL durable through `target`. Syncs run outside the writer
    /// lock, one at a time; a sync covers every record appended before it started, so writers
    /// queued behind it usually find their records already durable and return at once.
    func syncWAL(through target: WALPosition) throws(LSMError) {
        try syncState.withLock { (durable: inout WALPosition) throws(LSMError) in
            if durable.covers(target) { return }
            let (current, vlogFiles) = try writer.withLock { (w: inout WriterState) throws(LSMError) -> (WALPosition?, ValueLogSyncSet) in
                if let f = w.failed { throw f }
                do throws(LSMError) { try w.log?.flush(kvimr: kvimr) } catch {
                    if error.kind != .noSpace { w.failed = error }
                    throw error
                }
                return (w.log.map { WALPosition(file: $0.file, offset: $0.bytesWritten) }, valueLogFilesToSync())
            }
            // A WAL older than the current one was sealed (written out) when it was frozen:
            // the checkpoint of this sync makes it durable with the current one.
            guard let current else { return }
            do throws(LSMError) {
                // One ordered sync: the value-log records the WAL points to are written out
                // before the WAL, and one checkpoint makes both durable (DESIGN §6). The
                // files were listed under the writer lock: a flush may have deleted the WAL
                // since (its records are then in a synced table), GC a segment.
                try kvimr.syncFilesSkippingDeleted(vlogFiles.files + [current.file])
            } catch {
                // KVIMR refuses a write-out it cannot place and keeps the bytes buffered: a
                // later sync retries it. Any other failure may have lost them: no more writes.
                if error.kind != .noSpace { writer.withLock { $0.failed = error } }
                throw error
            }
            valueLogSynced(vlogFiles)
            durable = current
        }
    }

    /// Validates the batch and turns it into log entries (a range delete becomes one range
    /// tombstone; an empty range is dropped).
    func resolve(_ batch: WriteBatch) throws(LSMError) -> [BatchEntry] {
        var out: [BatchEntry] = []
        out.reserveCapacity(batch.count)
        for op in batch.ops {
            switch op {
            case .put(let k, let v):
                guard k.count <= WriteLimits.maxKeyBytes else { throw LSMError(.invalidArgument, "key of \(k.count) bytes is too long") }
                guard v.count <= WriteLimits.maxValueBytes else { throw LSMError(.invalidArgument, "value of \(v.count) bytes is too long") }
                out.append(BatchEntry(kind: .put, key: k, value: v))
            case .delete(let k):
                guard k.count <= WriteLimits.maxKeyBytes else { throw LSMError(.invalidArgument, "key of \(k.count) bytes is too long") }
                out.append(BatchEntry(kind: .delete, key: k))
            case .deleteRange(let start, let end):
                guard start.count <= WriteLimits.maxKeyBytes, end.count <= WriteLimits.maxKeyBytes else {
                    throw LSMError(.invalidArgument, "range bound is too long")
                }
                guard compareBytes(start, end) < 0 else { continue } // empty range
                out.append(BatchEntry(kind: .rangeDelete, key: start, value: end))
            }
        }
        return out
    }

    /// Makes sure the memtable has room: switches to a new memtable and WAL when it is full,
    /// and stalls while too many memtables wait for flushing or L0 is too deep.
    func makeRoomForWrite(_ w: inout WriterState) throws(LSMError) {
        var stallStart: UInt64? = nil
        defer { if let s = stallStart { counters.stallMicros.bump(monotonicMicros() - s) } }
        var delayed = false
        while true {
            let g = signal.generation
            let (bytes, imms, l0, err, closed) = state.withLock { s in
                (s.mem.approximateBytes, s.imms.count, s.version.levels[0].count, s.bgError, s.closed)
            }
            if closed { throw LSMError(.closed, "store is closed") }
            // An unfinished switch (stopped by `.noSpace`) is done again before anything is logged.
            let full = bytes >= options.memtableBytes || w.switchPending != nil
            let mustWait = l0 >= l0StopTrigger || (full && imms >= maxImmutables)
            if let err {
                // A retryable background failure (out of space, a drive error): writes that fit
                // in the memtable go on (a delete may be what frees room); writes that would
                // have to wait for the background fail now. Other failures stop all writes.
                if !Engine.isRetryable(err) || mustWait { maybeScheduleBackground(); throw err }
            }
            if mustWait {
                if stallStart == nil { stallStart = monotonicMicros() }
                maybeScheduleBackground()
                signal.wait(past: g)
                continue
            }
            if !delayed && l0 >= l0SlowdownTrigger {
                delayed = true
                if stallStart == nil { stallStart = monotonicMicros() }
                maybeScheduleBackground()
                sleepMicros(1000)
                continue
            }
            if !full { return }
            try switchMemtable(&w)
            return
        }
    }

    /// Freezes the memtable and starts a new one with a new WAL. The value log and the old WAL
    /// are written out first (no checkpoint: every later one holds them), so a crash can never
    /// keep a later WAL's records without an earlier one's.
    ///
    /// `.noSpace` at any step loses nothing (KVIMR refuses an append or write-out it cannot
    /// place and keeps the bytes buffered) but may leave the old WAL sealed: the switch is left
    /// pending (`WriterState.switchPending`) and done again, from the start, before anything
    /// else is logged — every step is safe to repeat (sealing a sealed file writes out what is
    /// left of it). Any other failure stops all writes.
    func switchMemtable(_ w: inout WriterState) throws(LSMError) {
        guard let old = w.log else { throw LSMError(.closed, "no write-ahead log") }
        let wal: FileNumber
        do throws(LSMError) {
            try w.log!.flush(kvimr: kvimr)
            // The frozen WAL's pointers must not outlive their values, and a later WAL never
            // survives a crash that an earlier one did not: the value log and the sealed WAL
            // are written out (`KVIMR.writeOut`; sealing writes the WAL out), so every later
            // checkpoint — the flush's manifest edit, a sync of the new WAL — holds them. No
            // checkpoint of its own: the switch does not wait for the device.
            // (The value log first: a checkpoint another thread takes in between must not hold
            // the WAL without the values.)
            let vlogFiles = valueLogFilesToSync()
            do throws(KVIMRError) { try kvimr.writeOut(vlogFiles.files) } catch {
                throw LSMError(error, "write out value log \(vlogFiles.files)")
            }
            try kvimr.sealFile(old.file)
            valueLogSynced(vlogFiles)
            // Created last: a switch stopped before this point leaves no new WAL behind.
            wal = try kvimr.createFile(.wal, level: 0)
        } catch {
            if error.kind == .noSpace {
                w.switchPending = error
            } else {
                w.failed = error // the old WAL may be sealed, or hold lost bytes
            }
            throw error
        }
        w.switchPending = nil
        w.log = LogWriter(file: wal)
        state.withLock { s in
            s.imms.append(s.mem)
            s.mem = Memtable(walNumber: wal, capacityBytes: options.memtableBytes)
        }
        maybeScheduleBackground()
    }

    /// Makes every accepted write durable: older WALs were written out when their memtable
    /// was frozen, so the checkpoint syncing the current WAL covers everything. (While a switch
    /// is pending the current WAL is the one being frozen: synced like any other, or the
    /// error reported.)
    func sync() throws(LSMError) {
        if readOnly { return }
        let position = try writer.withLock { (w: inout WriterState) throws(LSMError) -> WALPosition? in
            if let f = w.failed { throw f }
            return w.log.map { WALPosition(file: $0.file, offset: $0.bytesWritten) }
        }
        if let position { try syncWAL(through: position) }
    }
}

extension LSMStore {
    /// For tests: whether a memtable switch stopped by `.noSpace` waits to be done again.
    package var memtableSwitchPending: Bool { engine.writer.withLock { $0.switchPending != nil } }
}

/// A point in the write-ahead log: everything appended to WAL `file` before `offset`.
struct WALPosition: Sendable {
    var file: UInt64
    var offset: UInt64
    /// WALs are numbered in creation order and a sync of one makes every older one durable.
    func covers(_ p: WALPosition) -> Bool { file > p.file || (file == p.file && offset >= p.offset) }
}
