import KVIMR

extension Engine {
    /// Flushes the memtable, waits for background work, syncs and closes KVIMR.
    func close() throws(LSMError) {
        let first = state.withLock { s -> Bool in
            defer { s.closing = true }
            return !s.closing
        }
        guard first else { return }
        iterators.clear()
        stopGC() // a running GC pass stops at its next chunk (it writes to the memtable)
        var failure: LSMError? = nil
        if !readOnly {
            do throws(LSMError) {
                try writer.withLock { (w: inout WriterState) throws(LSMError) in
                    if let f = w.failed { throw f }
                    try w.log?.flush(kvimr: kvimr) // closing KVIMR syncs what it holds
                    if !state.withLock({ $0.mem.isEmpty }) { try switchMemtable(&w) }
                }
            } catch { failure = error }
            // Wait for the flushes (new compactions are not started while closing).
            while true {
                let g = signal.generation
                let (busy, err) = state.withLock { s in (s.bgScheduled || (!s.imms.isEmpty && s.bgError == nil), s.bgError) }
                if !busy {
                    // A retryable failure loses nothing: unflushed memtables are in WALs, which
                    // closing KVIMR syncs. Corruption is reported.
                    if failure == nil, let err, !Engine.isRetryable(err) { failure = err }
                    break
                }
                maybeScheduleBackground()
                signal.wait(past: g)
            }
        }
        state.withLock { $0.closed = true }
        while true { // let a running job finish
            let g = signal.generation
            if !state.withLock({ $0.bgScheduled }) { break }
            signal.wait(past: g)
        }
        reclaim.enabled.store(false, ordering: .sequentiallyConsistent)
        do throws(KVIMRError) { try kvimr.close() } catch {
            if failure == nil { failure = LSMError(error, "close KVIMR") }
        }
        if let failure { throw failure }
    }
}
