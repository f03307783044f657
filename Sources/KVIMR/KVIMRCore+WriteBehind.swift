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
                                      startsChunk: done == 0, fileEnd: start + UInt64(done + n)))
        }
        guard whole < count else { return }
        let pad = BufferPage(capacity: ss)
        pad.base.initializeMemory(as: UInt8.self, repeating: 0, count: ss)
        buf.copy(from: start + UInt64(whole), into: UnsafeMutableRawBufferPointer(start: pad.base, count: count - whole))
        batch.append(PendingWrite(track: track, sector: sector + whole / ss, owner: pad, offset: 0, count: ss,
                                  startsChunk: whole == 0, fileEnd: start + UInt64(count)))
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
        writeBehind.enqueue(ordered.map { WriteBehind.Job(write: $0, mode: mode, file: n, category: category) })
    }

    /// Waits for every queued write (retrying them here after a failure; throws if one fails
    /// again), then lets the buffers drop what was written.
    mutating func drainWrites() throws(KVIMRError) {
        guard writeBehind.busy else { return }
        defer { reapWrites() }
        try writeBehind.drain()
    }

    /// Drops from the buffers the bytes whose queued writes completed; adds their drive time.
    mutating func reapWrites() {
        let (done, charges) = writeBehind.reap()
        let ss = UInt64(geometry.sectorSize)
        for (n, end) in done {
            guard let rec = map.files[n] else { continue }
            buffers[n]?.dropPrefix(upTo: min(end, rec.size / ss * ss))
            // A sealed file's last queued piece is written: nothing is left to buffer.
            if rec.sealed, let buf = buffers[n], end >= buf.end, buf.end == rec.size { buffers[n] = nil }
        }
        for (category, e) in charges.entries { io.add(category, e) }
    }
}
