import IMRDisk

/// The core's side of the write-behind queue (`WriteBehind`): turning planned chunks into
/// page pieces, queueing them, waiting for them, and letting the buffers drop what was written.
extension KVIMRCore {
    /// Appends the pieces of chunk `[start, start + count)` of `buf` (to be written at `sector`
    /// of `track`) to `batch`: whole sectors straight from the buffer's pages, a last partial
    /// sector as a zero-padded copy.
    func appendPieces(of buf: FileBuffer, from start: UInt64, count: Int, track: Int, sector: Int,
                      to batch: inout [PendingWrite]) {
        let ss = geometry.sectorSize
        let whole = count / ss * ss
        buf.forEachPiece(from: start, count: whole) { done, page, at, n in
            batch.append(PendingWrite(track: track, sector: sector + done / ss, owner: page, offset: at, count: n,
                                      startsChunk: done == 0, fileStart: start + UInt64(done),
                                      fileEnd: start + UInt64(done + n)))
        }
        guard whole < count else { return }
        let pad = BufferPage(capacity: ss)
        pad.base.initializeMemory(as: UInt8.self, repeating: 0, count: ss)
        buf.copy(from: start + UInt64(whole), into: UnsafeMutableRawBufferPointer(start: pad.base, count: count - whole))
        batch.append(PendingWrite(track: track, sector: sector + whole / ss, owner: pad, offset: 0, count: ss,
                                  startsChunk: whole == 0, fileStart: start + UInt64(whole),
                                  fileEnd: start + UInt64(count)))
    }

    /// Queues a planned batch of file `n` (no merged RMW needed): bottoms before tops, as
    /// `flushBatch` writes them.
    mutating func enqueue(_ batch: [PendingWrite], file n: FileNumber) {
        guard !batch.isEmpty, let rec = map.files[n] else { return }
        let category = IOBreakdown.category("write", kind: rec.kind, level: rec.level)
        let hostManaged = policy.writeMode == .hostManaged && journal != nil
        let mode: WriteMode = hostManaged ? .hostManaged : .deviceManaged
        let ordered = hostManaged
            ? batch.filter { geometry.isBottom($0.track) } + batch.filter { !geometry.isBottom($0.track) }
            : batch
        for w in ordered { inFlight[n, default: []].append(w.fileStart..<w.fileEnd) }
        writeBehind.enqueue(ordered.map { WriteBehind.Job(write: $0, mode: mode, file: n, category: category) })
    }

    /// After a failed background write: an append that would take the write buffers past the
    /// buffer budget (at least twice the queue's cap) first retries the queue here, and gets
    /// the error if that fails again (nothing is buffered), so memory stays bounded while the
    /// device keeps failing. (Write-outs are not queued meanwhile: `writeOut`.)
    mutating func admitAfterWriteFailure(_ count: Int) throws(KVIMRError) {
        guard writeBehind.failed else { return }
        let bound = max(bufferBudget, 2 * UInt64(writeBehind.limitBytes))
        guard bufferedMemory + UInt64(count) > bound else { return }
        try drainWrites()
    }

    /// `delete`: the file's queued writes not started yet are dropped (its tracks are freed).
    mutating func dropQueuedWrites(_ n: FileNumber) {
        guard inFlight.removeValue(forKey: n) != nil else { return }
        writeBehind.drop(file: n)
    }

    /// Whether queued writes of file `n` are not written yet.
    func hasQueuedWrites(_ n: FileNumber) -> Bool { !(inFlight[n]?.isEmpty ?? true) }

    /// Waits for every queued write (retrying them here after a failure; throws if one fails
    /// again), then lets the buffers drop what was written.
    mutating func drainWrites() throws(KVIMRError) {
        guard writeBehind.busy else { return }
        defer { reapWrites() }
        try writeBehind.drain()
    }

    /// Drops from the buffers the bytes whose queued writes completed — up to the first byte a
    /// write still queued carries (a host-managed batch is queued bottoms first, so pieces do
    /// not complete in file order) — and adds their drive time.
    mutating func reapWrites() {
        let (done, charges) = writeBehind.reap()
        for (category, e) in charges.entries { io.add(category, e) }
        guard !done.isEmpty else { return }
        var touched = Set<FileNumber>()
        for (n, bytes) in done {
            if let i = inFlight[n]?.firstIndex(of: bytes) { inFlight[n]!.remove(at: i) }
            touched.insert(n)
        }
        let ss = UInt64(geometry.sectorSize)
        for n in touched {
            let pending = inFlight[n] ?? []
            if pending.isEmpty { inFlight[n] = nil }
            guard let rec = map.files[n] else { continue }
            let keepFrom = pending.lazy.map(\.lowerBound).min() ?? rec.size / ss * ss
            buffers[n]?.dropPrefix(upTo: min(keepFrom, rec.size / ss * ss))
            // A sealed file whose every queued piece is written: nothing is left to buffer.
            if pending.isEmpty, rec.sealed, let buf = buffers[n], buf.end == rec.size { buffers[n] = nil }
        }
    }
}
