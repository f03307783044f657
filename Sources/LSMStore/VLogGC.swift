import KVIMR
import LSMCommon

/// Value-log garbage collection (WiscKey), one victim segment at a time
/// (docs/format/vlog.md, "Garbage collection"):
///
/// 1. Mark: a manifest edit names the victim (tag 17), so a pass a crash, a full drive or
///    close interrupts is finished first by the next one (no segment is leaked forever).
/// 2. Move: read the victim front to back; a record is live when the tree's newest visible
///    entry for its key is a pointer to exactly that record. Live records are re-checked,
///    appended at the head and their new pointers logged as one batch (WAL + memtable), all
///    under the writer lock, a chunk at a time: a user write to the key either came before
///    (the record is dead, nothing moves) or comes after (it shadows the moved pointer), so
///    GC never clobbers a newer write, and writers wait at most one chunk.
/// 3. Sync: the moved values, then the WAL holding their pointers.
/// 4. Free: a manifest edit removes the segment; once durable the version drops it, and the
///    file is deleted when the last reader holding an older version (a snapshot, a scan, a
///    get in flight) lets go (`VLogSegment`).
extension Engine {
    func collectGarbage(minGarbageRatio: Double, maxSegments: Int) throws(LSMError) -> GCResult {
        if readOnly { throw LSMError(.readOnly, "store is read-only") }
        // Flushing counts the garbage memtables hold and lets the WALs pointing into recent
        // segments go (`segmentUsage`). A full drive may refuse the flush: GC goes on (it is
        // what frees space).
        do throws(LSMError) { try flushAll() } catch where error.kind == .noSpace {}
        return try withCollector { () throws(LSMError) -> GCResult in
            // Measure what the counts have not reached (VLogGCProbe.swift); a tree the walk
            // cannot read leaves the segments to `probeVictims`.
            do throws(LSMError) { try probeGarbage() } catch where error.kind == .corrupt {}
            let (usage, active) = segmentUsage(measured: false)
            let skip = gc.state.withLock { $0.skip }
            var victims = VLogGCPolicy.victims(usage.filter { !skip.contains($0.number) }, active: active,
                                               minRatio: minGarbageRatio, maxSegments: maxSegments)
            if victims.count < maxSegments {
                let taken = Set(victims).union(active).union(skip)
                victims += try measuredVictims(usage, taken: taken, minRatio: minGarbageRatio,
                                               budget: maxSegments - victims.count)
            }
            var pacer: GCPacer? = nil
            return try collect(victims, pacer: &pacer)
        }
    }

    /// Collects `victims` in order (the collector held). A victim that fails for want of space
    /// (its live records need room at the head) does not stop the others: one with less live
    /// data, or none, may still be freed. Any other failure ends the pass; the first failure is
    /// thrown once nothing more can be done.
    func collect(_ victims: [UInt64], pacer: inout GCPacer?) throws(LSMError) -> GCResult {
        if victims.isEmpty { return GCResult() }
        var result = GCResult()
        var failure: LSMError? = nil
        for n in victims {
            do throws(LSMError) {
                let r = try collectSegment(n, pacer: &pacer)
                result.segmentsFreed += 1
                result.bytesMoved += r.moved
                result.bytesFreed += r.freed
            } catch {
                if failure == nil { failure = error }
                if error.kind != .noSpace { break }
            }
        }
        gc.runs.bump()
        if let failure, result.segmentsFreed == 0 || failure.kind != .noSpace { throw failure }
        return result
    }

    /// Runs `body` as the only collector (a manual call waits for a background pass).
    func withCollector<T>(_ body: () throws(LSMError) -> T) throws(LSMError) -> T {
        while true {
            let g = signal.generation
            if state.withLock({ $0.closing || $0.closed }) { throw LSMError(.closed, "store is closing") }
            let mine = gc.state.withLock { s -> Bool in
                if s.running { return false }
                s.running = true
                return true
            }
            if mine { break }
            signal.wait(past: g)
        }
        defer {
            gc.state.withLock { $0.running = false }
            signal.broadcast()
        }
        return try body()
    }

    /// Every listed segment's size and garbage, and the segments GC must leave alone, read
    /// together under the head lock (a segment being started is listed before it becomes the
    /// head): the head, sealed segments whose tail is not synced yet, and segments that live
    /// WALs may still point into. A segment gets user pointers only while it is the newest;
    /// once the manifest's log number passes the next segment's number, every WAL written
    /// meanwhile is obsolete, so WAL replay never meets a pointer into a segment GC freed.
    /// `measured`: a segment's garbage is the larger of its count and the last garbage
    /// probe's measurement (VLogGCProbe.swift); otherwise the count alone.
    func segmentUsage(measured: Bool) -> (usage: [SegmentUsage], active: Set<UInt64>) {
        let (v, logNumber, headActive) = vlog.head.withLock { h in
            let (v, log) = state.withLock { ($0.version, $0.logNumber) }
            return (v, log, Set(h.unsynced + (h.segment.map { [$0] } ?? [])))
        }
        let numbers = v.segments.keys.sorted()
        var active = headActive
        for (i, n) in numbers.enumerated() where i + 1 == numbers.count || numbers[i + 1] >= logNumber {
            active.insert(n)
        }
        let probed = measured ? gc.state.withLock { $0.measured } : [:]
        let usage = numbers.map { n in
            SegmentUsage(number: n, totalBytes: kvimr.size(n) ?? 0,
                         garbageBytes: max(v.vlogGarbage[n] ?? 0, probed[n] ?? 0),
                         interrupted: v.vlogVictims.contains(n))
        }
        return (usage, active)
    }

    /// Collects one segment (steps 1–4 above); returns the record bytes moved and the segment
    /// bytes freed. On failure the segment stays listed and marked; nothing is lost.
    func collectSegment(_ n: UInt64, pacer: inout GCPacer?) throws(LSMError) -> (moved: UInt64, freed: UInt64) {
        let v = state.withLock { $0.version }
        guard v.segments[n] != nil else { return (0, 0) }
        if !v.vlogVictims.contains(n) {
            var mark = VersionEdit()
            mark.vlogGCVictims = [n]
            try logAndApply(mark)
        }
        let size = kvimr.size(n) ?? 0
        var chunk: [VLogRecord] = []
        var chunkBytes = 0
        var moved: UInt64 = 0
        var last: WALPosition? = nil
        var snap = try view()
        func move() throws(LSMError) {
            if chunk.isEmpty { return }
            if let (bytes, position) = try moveLive(chunk, checkedIn: snap) {
                moved += bytes
                last = position ?? last
                gc.bytesMoved.bump(bytes)
                pacer?.account(bytes)
            }
            chunk.removeAll(keepingCapacity: true)
            chunkBytes = 0
            if state.withLock({ $0.closing || $0.closed }) { throw LSMError(.closed, "store is closing: GC stopped") }
            snap = try view()
        }
        // Records the walk cannot frame or verify start here (a torn tail or damage).
        var damagedFrom: UInt64? = nil
        if kvimr.size(n) != nil {
            var reader = try VLogSegmentReader(kvimr: kvimr, segment: n)
            while true {
                let next: VLogRecord?
                do throws(LSMError) { next = try reader.next() } catch where error.kind == .corrupt {
                    damagedFrom = reader.offset
                    break
                }
                guard let rec = next else { break }
                // A first check on a view, without the lock: most records of a victim are
                // dead, and a dead record stays dead.
                if try isLive(rec, in: snap) {
                    chunkBytes += Int(rec.pointer.length)
                    chunk.append(rec)
                    if chunkBytes >= GCTuning.chunkBytes || chunk.count >= GCTuning.chunkRecords { try move() }
                }
            }
            if reader.tornTail > 0 { damagedFrom = size - reader.tornTail }
        } else {
            damagedFrom = 0 // listed, but the file is gone
        }
        try move()
        // Nothing may point past what the walk could read: a torn tail never has pointers
        // (WAL replay drops them), damage the tree still points to keeps the segment.
        if let at = damagedFrom, try pointsInto(n, from: at) {
            gc.state.withLock { _ = $0.skip.insert(n) }
            throw LSMError.corrupt("value-log segment \(n): unreadable record at offset \(at) that the tree still points to; GC leaves the segment alone")
        }
        // One ordered sync: the moved values, then the WAL holding their pointers (a WAL
        // rotated meanwhile was synced with the value log when it was frozen).
        if let last { try syncWAL(through: last) }
        var free = VersionEdit()
        free.vlogRemoved = [n]
        try logAndApply(free)
        gc.segmentsFreed.bump()
        gc.bytesFreed.bump(size)
        return (moved, size)
    }

    /// Whether `rec` is what the tree's newest visible entry for its key points to.
    func isLive(_ rec: VLogRecord, in v: View) throws(LSMError) -> Bool {
        guard let (kind, stored) = try lookup(rec.key, in: v), kind == ValueKind.valuePointer.rawValue,
              let p = ValuePointer.decode(stored) else { return false }
        return p == rec.pointer
    }

    /// Whether `rec`, live in `snap`, is live in the later view `v`. While none of `snap`'s
    /// memtables has been flushed, every write since `snap` is in `v`'s memtables: a newer
    /// entry or range tombstone for the key there is all that can have killed the record, and
    /// the check stays in memory (it runs under the writer lock). Otherwise a full lookup.
    func stillLive(_ rec: VLogRecord, since snap: View, now v: View) throws(LSMError) -> Bool {
        guard let oldest = snap.mems.last, v.mems.contains(where: { $0 === oldest }) else {
            return try isLive(rec, in: v)
        }
        for m in v.mems {
            if m.maxCoveringSeq(rec.key, seq: v.sequence) > snap.sequence { return false }
            if let (_, seq, _) = m.getWithSeq(rec.key, seq: v.sequence), seq > snap.sequence { return false }
        }
        return true
    }

    /// Under the writer lock: re-checks `chunk`'s records, appends the live ones at the head
    /// and logs their new pointers as one batch. Returns the bytes moved and the WAL position
    /// to sync, or nil if nothing was live any more.
    func moveLive(_ chunk: [VLogRecord], checkedIn snap: View) throws(LSMError) -> (UInt64, WALPosition?)? {
        try waitForWriteRoom()
        return try writer.withLock { (w: inout WriterState) throws(LSMError) -> (UInt64, WALPosition?)? in
            if let f = w.failed { throw f }
            try makeRoomForWrite(&w)
            let v = try view()   // every write so far: writes are serialized by this lock
            var live: [VLogRecord] = []
            for r in chunk where try stillLive(r, since: snap, now: v) { live.append(r) }
            if live.isEmpty { return nil }
            let pointers = try appendValues(live.map { ($0.key, $0.value) })
            var entries: [BatchEntry] = []
            entries.reserveCapacity(live.count)
            for (r, p) in zip(live, pointers) { entries.append(BatchEntry(kind: .valuePointer, key: r.key, value: p.encode())) }
            do throws(LSMError) {
                let position = try logEntries(entries, &w)
                return (pointers.reduce(0) { $0 + UInt64($1.length) }, position)
            } catch {
                // The appended records are referenced by nothing: count them as garbage (best
                // effort: if this edit fails too, they are uncounted garbage in the head).
                var waste = GarbageTally()
                for p in pointers { waste.add(segment: p.segment, bytes: UInt64(p.length)) }
                var e = VersionEdit()
                e.vlogGarbage = waste.deltas
                try? logAndApply(e)
                throw error
            }
        }
    }
}

extension Engine {
    /// Waits, without the writer lock, until a write would not stall (memtables or L0 full),
    /// or fails once the store closes: close stops compactions, so a pass must not wait for
    /// one inside `makeRoomForWrite` then.
    func waitForWriteRoom() throws(LSMError) {
        while true {
            let g = signal.generation
            let (stall, closing, failure) = state.withLock { s in
                (s.version.levels[0].count >= l0StopTrigger
                    || (s.mem.approximateBytes >= options.memtableBytes && s.imms.count >= maxImmutables),
                 s.closing || s.closed, s.bgError)
            }
            if closing { throw LSMError(.closed, "store is closing: GC stopped") }
            if !stall { return }
            if let failure { maybeScheduleBackground(); throw failure } // no flush to wait for
            maybeScheduleBackground()
            signal.wait(past: g)
        }
    }

    /// Whether any entry of the tree — any version, not only the newest — holds a pointer into
    /// `segment` ending after `offset`. A full walk of the tree: GC asks only when a segment
    /// has bytes it cannot read, to tell a torn tail (nothing points there) from damage.
    func pointsInto(_ segment: UInt64, from offset: UInt64) throws(LSMError) -> Bool {
        let it = try iterator(try view())
        try it.seekToFirst()
        while it.isValid {
            if InternalKey.kind(it.key) == ValueKind.valuePointer.rawValue,
               let p = ValuePointer.decode(it.value), p.segment == segment, p.end > offset {
                return true
            }
            try it.next()
        }
        return false
    }
}

/// Sizes of GC's steps.
enum GCTuning {
    /// Live bytes moved per writer-lock hold (writers wait at most this long's worth).
    static let chunkBytes = 1 << 20
    static let chunkRecords = 256
    /// A manual pass collects a segment the counts did not pick when at least this share of it
    /// is measured to be garbage (`probeVictims`).
    static let probeFloor = 0.25
}

extension LSMStore {
    /// For tests and fsck: every listed value-log segment with its counted garbage bytes.
    package func vlogSegmentGarbage() -> [UInt64: UInt64] {
        let v = engine.state.withLock { $0.version }
        var out: [UInt64: UInt64] = [:]
        for n in v.segments.keys { out[n] = v.vlogGarbage[n] ?? 0 }
        return out
    }
    /// For tests: segments a GC pass started on and did not finish.
    package var vlogInterruptedSegments: Set<UInt64> { engine.state.withLock { $0.version.vlogVictims } }
}
