import KVIMR
import LSMCommon

extension Engine {
    /// Opens the store: KVIMR root → manifest replay → WAL replay (flushed to L0) → a fresh
    /// WAL and manifest → orphan files deleted. Read-only: replays into memory and writes nothing.
    static func open(kvimr: KVIMR, options: LSMOptions, readOnly: Bool) throws(LSMError) -> Engine {
        var o = options
        o.maxLevels = min(max(2, o.maxLevels), 16)
        o.memtableBytes = max(1024, o.memtableBytes)
        let ctx = ReclaimContext(kvimr: kvimr, options: o)
        let reclaimer = ctx.reclaimer
        var ms = ManifestState(version: .empty(o.maxLevels))
        let root = kvimr.root
        if !root.isEmpty {
            let n = try RootRecord.decode(root)
            ms = try ManifestLog.recover(kvimr: kvimr, number: n, maxLevels: o.maxLevels, reclaimer: reclaimer)
        }
        let engine = Engine(
            kvimr: kvimr, options: o, readOnly: readOnly, reclaim: ctx,
            writer: WriterState(log: nil), manifest: nil,
            state: EngineState(mem: Memtable(walNumber: 0, capacityBytes: o.memtableBytes), version: ms.version, lastSequence: ms.lastSequence,
                               logNumber: ms.logNumber, pointers: Array(repeating: nil, count: o.maxLevels)))

        // WAL replay, oldest first. A batch pointing to a value the log does not hold (its
        // record was not yet durable at the crash) is where the log really ends: it and
        // everything after it are dropped, so no pointer to a missing value is installed.
        let wals = kvimr.files().filter { $0.kind == .wal && $0.number >= ms.logNumber }.map(\.number).sorted()
        var deferred = false   // a flush found no room: the rest stays in memory, WALs kept
        var check = PointerCheck(version: ms.version, kvimr: kvimr)
        replay: for wal in wals {
            let records = try LogReader.records(try kvimr.readAll(wal), name: "WAL \(wal)")
            for rec in records {
                let (seq, entries) = try BatchCodec.decode(rec)
                if let why = try engine.missingValue(entries, &check) {
                    logLine("WAL \(wal): the batch at sequence \(seq) \(why); replay ends there (a crash before its values were durable)")
                    break replay
                }
                let mem = engine.state.withLock { $0.mem }
                for (i, e) in entries.enumerated() { mem.add(seq + UInt64(i), e.kind, e.key, e.value) }
                if !entries.isEmpty {
                    engine.state.withLock { s in s.lastSequence = max(s.lastSequence, seq + UInt64(entries.count) - 1) }
                }
                if !readOnly && mem.approximateBytes >= o.memtableBytes && !deferred {
                    deferred = try !engine.flushRecovered()
                }
            }
        }
        if readOnly { return engine }
        engine.sealValueLogSegments(ms.version)

        // A full drive may have no room for the L0 table: the replayed memtable then waits as
        // an immutable memtable for the background flush (retried until space is freed), and
        // the manifest keeps naming the replayed WALs (from the oldest one on) until it lands.
        if !deferred { deferred = try !engine.flushRecovered() }
        let wal = try kvimr.createFile(.wal, level: 0)
        let snapshot = engine.state.withLock { s -> ManifestState in
            if deferred {
                s.imms.append(s.mem)
            } else {
                s.logNumber = wal
            }
            s.mem = Memtable(walNumber: wal, capacityBytes: o.memtableBytes)
            return s.manifestState
        }
        engine.writer.withLock { $0.log = LogWriter(file: wal) }
        let log = try ManifestLog.create(kvimr: kvimr, snapshot)
        engine.manifest.withLock { $0 = log }

        // Everything the new manifest does not name is garbage from before (replayed WALs,
        // the old manifest, tables of an unfinished flush or compaction).
        var keep = snapshot.version.allNumbers
        keep.insert(wal)
        keep.insert(log.number)
        if deferred { keep.formUnion(wals) }   // still needed until the deferred flush lands
        for f in kvimr.files() where !keep.contains(f.number) {
            try? kvimr.deleteFile(f.number)
        }
        engine.maybeScheduleBackground()
        return engine
    }

    /// During WAL replay: nil if every value pointer of the batch is sound, else why not. The
    /// segment must be listed and the record inside its durable size with the entry's key and
    /// lengths matching the pointer. Records in a segment that was still open (the head at the
    /// crash) are read whole and their checksums checked too; a sealed segment was durable
    /// before any WAL that points into it was, so its header and key suffice (reading every
    /// replayed value would make a mount read gigabytes).
    func missingValue(_ entries: [BatchEntry], _ check: inout PointerCheck) throws(LSMError) -> String? {
        for e in entries where e.kind == .valuePointer {
            guard let p = ValuePointer.decode(e.value) else { return "holds a malformed value pointer" }
            guard check.version.segments[p.segment] != nil, let size = check.sizes[p.segment] else {
                return "points into unlisted segment \(p.segment)"
            }
            guard p.end <= size else {
                return "points past the durable end of segment \(p.segment) (\(p.end) > \(size))"
            }
            let whole = check.open.contains(p.segment)
            let count = whole ? Int(p.length) : min(Int(p.length), VLogFormat.headerSize + e.key.count)
            let bytes = try readSpan(p.segment, at: p.offset, count: count)
            let checked = bytes.withUnsafeBytes { b in
                whole ? VLogFormat.verify(b, expectedKey: e.key)
                      : VLogFormat.verifyPrefix(b, recordLength: Int(p.length), expectedKey: e.key)
            }
            if case .failure(let damage) = checked {
                return "points to a damaged record in segment \(p.segment) at \(p.offset) (\(damage))"
            }
        }
        return nil
    }

    /// During recovery: writes the replayed memtable to L0 (the manifest is written afterwards).
    /// Returns false, changing nothing, when the drive has no room for the table: the memtable
    /// stays in memory (its `walNumber` is 0: several replayed WALs back it).
    func flushRecovered() throws(LSMError) -> Bool {
        let mem = state.withLock { $0.mem }
        guard !mem.isEmpty else { return true }
        var edit = VersionEdit()
        do throws(LSMError) {
            edit.added = try writeTables(level: 0, split: false, tombstones: mem.rangeTombstones) { (add) throws(LSMError) in
                let it = MemtableIterator(mem)
                it.seekToFirst()
                while it.isValid { try add(it.key, it.value); it.next() }
            }
        } catch where error.kind == .noSpace {
            return false
        }
        let reclaimer = self.reclaimer
        state.withLock { s in
            s.version = s.version.applying(edit, reclaimer: reclaimer).0
            s.mem = Memtable(walNumber: 0, capacityBytes: options.memtableBytes)
        }
        counters.flushes.bump()
        return true
    }
}

/// What WAL replay checks pointers against: the manifest's segments, their durable sizes, and
/// which of them were still open (not sealed) when the store stopped.
struct PointerCheck {
    let version: Version
    var sizes: [UInt64: UInt64] = [:]
    var open: Set<UInt64> = []
    init(version: Version, kvimr: KVIMR) {
        self.version = version
        for f in kvimr.files() where f.kind == .vlog && version.segments[f.number] != nil {
            sizes[f.number] = f.size
            if !f.sealed { open.insert(f.number) }
        }
    }
}
