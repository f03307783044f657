import IMRDisk

/// The sync handler: buffered bytes → tracks → durable track map.
///
/// Ordering rules (DESIGN.md §6, docs/format/trackmap.md):
/// 1. File bytes are written to their tracks (device-managed RMW protects neighbouring tops).
/// 2. `device.sync()`: every track write the next checkpoint describes is durable.
/// 3. The checkpoint goes to the slot not holding the newest durable one.
/// 4. `device.sync()`: the checkpoint is durable; only now are tracks freed by `delete`
///    released to the allocator (and trimmed), because no durable map names them any more.
extension KVIMRCore {
    /// Writes the buffered bytes of file `n` to tracks. With `includeTail == false` only chunks
    /// that fill a track to its end are written (early write-out of full tracks, once the policy's
    /// `writeOutTracks` worth is buffered); otherwise everything, the last sector zero-padded (a
    /// later write-out rewrites that sector whole).
    ///
    /// The chunks are planned first (tracks allocated, the record advanced) and then written as
    /// one batch (`flushBatch`: bottoms before tops, merged RMW for host-managed policies). A
    /// failed batch restores the record and the buffer and gives back the tracks it allocated.
    /// Early write-outs of full tracks, and with `queueTail` (a sealed file) the tail too, go
    /// to the write-behind queue; everything else waits for the queue first, so the device sees
    /// writes in program order. Returns whether the batch was queued.
    @discardableResult
    mutating func writeOut(_ n: FileNumber, includeTail: Bool, queueTail: Bool = false) throws(KVIMRError) -> Bool {
        // After a failed background write no early write-out is queued: it is written at once
        // (after a retry of the queue), so the queue's cap holds while the device fails.
        let queue = ((!includeTail && !writeBehind.failed) || queueTail) && asyncWriteOut && !readOnly
        if !queue { try drainWrites() }
        var before = map.files[n]
        var savedBuf = buffers[n]
        var newTracks: [Int] = []
        var batch: [PendingWrite] = []
        do throws(KVIMRError) {
            if !includeTail, let rec = before, let buf = buffers[n] {
                let want = UInt64(KVIMRCore.writeOutBytes(tracks: policy.writeOutTracks, geometry))
                if buf.end - rec.size < want { return false }
            }
            try planOut(n, includeTail: includeTail, retain: queue, batch: &batch, newTracks: &newTracks,
                        before: &before, savedBuf: &savedBuf)
            if queue && !needsMergedRMW(batch, file: n, before: before) {
                enqueue(batch, file: n)
                return !batch.isEmpty
            } else {
                try flushNow(batch, file: n, before: before)
                if queue, let size = map.files[n]?.size {
                    // Written (and the queue drained): the bytes kept for it can go.
                    let ss = UInt64(geometry.sectorSize)
                    buffers[n]?.dropPrefix(upTo: size / ss * ss)
                }
            }
        } catch {
            if let before { map.files[n] = before }
            buffers[n] = savedBuf
            for t in newTracks {
                if alloc.release(t) { device.trim(t, sector: 0, count: geometry.sectors(of: t)) }
            }
            throw error
        }
        return false
    }

    /// Writes `batch` now (after the queued writes): `flushBatch`, merged RMW included.
    private mutating func flushNow(_ batch: [PendingWrite], file n: FileNumber, before: FileRecord?) throws(KVIMRError) {
        if batch.isEmpty { return }
        try drainWrites()
        try flushBatch(batch, file: n, before: before)
    }

    /// Plans the chunks of a write-out into `batch` (tracks allocated, the record advanced).
    /// With `retain`, the buffer keeps the planned bytes (they are queued: `reapWrites` drops
    /// them once written); otherwise it drops them (the caller writes the batch at once).
    private mutating func planOut(_ n: FileNumber, includeTail: Bool, retain: Bool, batch: inout [PendingWrite],
                                  newTracks: inout [Int], before: inout FileRecord?,
                                  savedBuf: inout FileBuffer?) throws(KVIMRError) {
        let ss = UInt64(geometry.sectorSize)
        while true {
            guard let rec = map.files[n], var buf = buffers[n], rec.size < buf.end else { return }
            let start = rec.size / ss * ss
            if buf.start > start {
                // Opened from a checkpoint mid-sector: fetch the on-track head of that sector.
                buf.prepend(try readStored(before ?? rec, from: start, count: Int(buf.start - start)))
                buffers[n] = buf
            }
            let remaining = buf.end - start

            // Where `start` lies: in the last extent, or (no room left) on a new track.
            var cursor: (sector: Int, room: Int)?
            if let last = rec.extents.last {
                let used = UInt64(rec.sectorCount) * ss
                let lastStart = used - UInt64(last.sectorCount) * ss
                guard start >= lastStart && start <= used else {
                    throw KVIMRError(.corrupt, "file \(n): size \(rec.size) does not lie in its last extent")
                }
                let sector = last.firstSector + Int((start - lastStart) / ss)
                let room = geometry.sectors(of: last.track) - sector
                if room > 0 { cursor = (sector, room) }
            }
            guard let (sector, room) = cursor else {
                let request = TrackRequest(file: n, kind: rec.kind, level: rec.level, ownTracks: rec.extents.map(\.track))
                guard mayAllocate(rec.kind), let track = policy.chooseTrack(alloc, for: request), alloc.isFree(track) else {
                    if !alloc.pending.isEmpty {
                        // Deleted files' tracks become usable once a checkpoint drops them; the
                        // checkpoint must not name unwritten chunks, so write the batch first.
                        try flushNow(batch, file: n, before: before)
                        batch.removeAll()
                        try checkpoint()
                        before = map.files[n]; savedBuf = buffers[n]; newTracks.removeAll()
                        continue
                    }
                    throw KVIMRError(.noSpace, "no free track for file \(n) (policy \(policy.name), \(alloc.freeCount) tracks free, \(reservedTracks) reserved for WAL/manifest)")
                }
                if !includeTail && remaining < UInt64(geometry.capacity(of: track)) { return }
                if geometry.isBottom(track), geometry.neighbours(ofBottom: track).contains(where: { alloc.isPending($0) }) {
                    // A neighbouring top was freed but the durable map still names it, so a
                    // bottom write would have to preserve dead data (an RMW of a whole track).
                    // A checkpoint first releases and trims it (cheaper than any RMW); same for
                    // every policy. The chunks so far go first: the checkpoint names them.
                    try flushNow(batch, file: n, before: before)
                    batch.removeAll()
                    try checkpoint()
                    before = map.files[n]; savedBuf = buffers[n]; newTracks.removeAll()
                    continue
                }
                alloc.allocate(track)
                if let last = rec.extents.last { alloc.setOpen(last.track, false) }
                if !rec.sealed { alloc.setOpen(track, true) }
                let cls = KVIMRPolicy.lifetimeClass(kind: rec.kind, level: rec.level)
                alloc.setLifetime(track, cls)
                alloc.noteAllocation(track, lifetimeClass: cls)
                newTracks.append(track)
                map.files[n]!.extents.append(TrackExtent(track: track, firstSector: 0, sectorCount: 0))
                dirty = true
                continue
            }
            let roomBytes = UInt64(room) * ss
            if !includeTail && remaining < roomBytes { return }
            let chunk = Int(min(remaining, roomBytes))
            let sectors = (chunk + Int(ss) - 1) / Int(ss)
            let track = rec.extents[rec.extents.count - 1].track
            appendPieces(of: buf, from: start, count: chunk, track: track, sector: sector, to: &batch)

            var updated = rec
            let li = updated.extents.count - 1
            updated.extents[li].sectorCount = max(updated.extents[li].sectorCount,
                                                  sector - updated.extents[li].firstSector + sectors)
            updated.size = start + UInt64(chunk)
            map.files[n] = updated
            dirty = true
            if !retain { buf.dropPrefix(upTo: updated.size / ss * ss) }
            buffers[n] = buf
        }
    }

    /// Makes the files' bytes and the map naming them durable.
    mutating func sync(_ files: [FileNumber]) throws(KVIMRError) {
        try checkWritable()
        for n in files {
            guard map.files[n] != nil else { throw KVIMRError(.notFound, "no file \(n)") }
            try writeOut(n, includeTail: true)
        }
        if dirty { try checkpoint() }
    }

    mutating func syncAll() throws(KVIMRError) {
        try checkWritable()
        for n in buffers.keys.sorted() { try writeOut(n, includeTail: true) }
        if dirty { try checkpoint() }
    }

    /// device sync → checkpoint → device sync, then release the pending tracks.
    mutating func checkpoint() throws(KVIMRError) {
        try drainWrites()   // the checkpoint names every queued chunk: they go first
        let next = sequence + 1
        try charged("checkpoint") { (c: inout KVIMRCore) throws(KVIMRError) in
            try c.syncDevice()
            try c.store.write(c.map, sequence: next, to: c.device)
            try c.syncDevice()
        }
        sequence = next
        checkpoints += 1
        dirty = false
        for t in alloc.releasePending() { device.trim(t, sector: 0, count: geometry.sectors(of: t)) }
    }

    func syncDevice() throws(KVIMRError) {
        do { try device.sync() } catch { throw KVIMRError(.io, "device sync: \(error.message)") }
    }

    mutating func close() throws(KVIMRError) {
        guard !closed else { return }
        if !readOnly { try syncAll() }
        writeBehind.stop()
        closed = true
        do { try device.close() } catch { throw KVIMRError(.io, "closing device: \(error.message)") }
    }
}
