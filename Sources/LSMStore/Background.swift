import KVIMR
import LSMCommon

/// Flushes and compactions, run one at a time on the background queue.
extension Engine {
    /// Background failures of these kinds are retried after `retryMicros` (space may be freed,
    /// a drive error may be transient); others (corruption) stop background work until reopen.
    static func isRetryable(_ e: LSMError) -> Bool { e.kind == .noSpace || e.kind == .io }
    static let retryMicros: UInt64 = 500_000

    func maybeScheduleBackground() {
        if readOnly { return }
        let now = monotonicMicros()
        let go = state.withLock { s -> Bool in
            if let e = s.bgError {
                guard Engine.isRetryable(e), now >= s.bgRetryAfter else { return false }
                s.bgError = nil // retry
            }
            if s.bgScheduled || s.closed { return false }
            let work = !s.imms.isEmpty || (!s.closing && CompactionPicker.needsCompaction(s.version, options))
            if work { s.bgScheduled = true }
            return work
        }
        if go { bgQueue.async { self.backgroundWork() } }
    }

    func backgroundWork() {
        do throws(LSMError) {
            if state.withLock({ !$0.imms.isEmpty }) {
                try flushOldest()
            } else {
                try compactOnce()
            }
        } catch {
            let retry = monotonicMicros() + Engine.retryMicros
            state.withLock { $0.bgError = error; $0.bgRetryAfter = retry }
        }
        state.withLock { $0.bgScheduled = false }
        signal.broadcast()
        maybeScheduleBackground()
        maybeScheduleGC() // flushes and compactions are what find vLog garbage
    }

    /// Writes the oldest immutable memtable to an L0 table, logs it, and drops its WAL.
    func flushOldest() throws(LSMError) {
        guard let (imm, nextLog) = state.withLock({ s -> (Memtable, UInt64)? in
            guard let imm = s.imms.first else { return nil }
            return (imm, s.imms.count > 1 ? s.imms[1].walNumber : s.mem.walNumber)
        }) else { return }
        var edit = VersionEdit()
        var garbage = GarbageTally()
        edit.added = try writeTables(level: 0, split: false, tombstones: imm.rangeTombstones) { (add) throws(LSMError) in
            let it = MemtableIterator(imm)
            it.seekToFirst()
            var last: [UInt8]? = nil
            while it.isValid {
                // An older version of the key just written: views taken before this flush
                // read the memtable itself, later ones see the newer version (vLog garbage).
                if let l = last, InternalKey.sameUser(l, it.key) { garbage.dropped(it.key, it.value) } else { try add(it.key, it.value) }
                last = it.key
                it.next()
            }
        }
        edit.logNumber = nextLog
        edit.vlogGarbage = garbage.deltas
        try logAndApply(edit) { s in
            s.imms.removeFirst()
            s.logNumber = nextLog
        }
        counters.flushes.bump()
        // The edit moving past its WAL is durable. A memtable recovery could not flush may
        // stand for several replayed WALs: every WAL below the new log number goes.
        for f in kvimr.files() where f.kind == .wal && f.number < nextLog {
            try? kvimr.deleteFile(f.number)
        }
    }

    /// Writes the entries `produce` emits (sorted internal keys) and `tombstones` into new
    /// tables of `level`, cutting a new table at `targetFileBytes` when `split` (never between
    /// two versions of one user key). The tables partition the key space at their first point
    /// keys; each gets the tombstone pieces inside its part, so tables of one level never
    /// overlap. Each table is sealed (written out) before this returns: the checkpoint that makes
    /// the manifest edit naming it durable makes the table durable too.
    func writeTables(level: Int, split: Bool, tombstones: [RangeTombstone] = [],
                     _ produce: (_ add: ([UInt8], [UInt8]) throws(LSMError) -> Void) throws(LSMError) -> Void)
        throws(LSMError) -> [VersionEdit.NewFile] {
        var done: [VersionEdit.NewFile] = []
        var current: (number: FileNumber, builder: TableBuilder)? = nil
        var lastKey: [UInt8]? = nil
        var lower: [UInt8]? = nil   // this table's part of the key space starts here (nil: -inf)
        let kvimr = self.kvimr
        let options = self.options
        func newTable() throws(LSMError) {
            let n = try kvimr.createFile(.sstable, level: level)
            current = (n, TableBuilder(blockSize: options.blockSize, bitsPerKey: options.bloomBitsPerKey) {
                (bytes: [UInt8]) throws(LSMError) in try kvimr.appendBytes(n, bytes)
            })
        }
        /// Finishes the current table, whose part ends at `upper` (nil: +inf).
        func finish(upper: [UInt8]?) throws(LSMError) {
            let pieces = tombstones.compactMap { $0.clipped(lower, upper) }
            if current == nil {
                if pieces.isEmpty { return }
                try newTable()
            }
            for t in pieces { current!.builder.addRangeTombstone(t) }
            guard var c = current else { return }
            let info = try c.builder.finish()   // on failure `current` still names the file
            // Sealing writes the table out (queued): every later checkpoint holds it, so the
            // manifest edit's sync that names it makes it durable too (no sync of its own).
            try kvimr.sealFile(c.number)
            current = nil
            lower = upper
            counters.tableBytesWritten.bump(info.size)
            done.append(.init(level: level, number: c.number, size: info.size, smallest: info.smallest, largest: info.largest))
        }
        do throws(LSMError) {
            try produce { (key, value) throws(LSMError) in
                if split, let c = current, c.builder.estimatedSize >= UInt64(max(1, options.targetFileBytes)),
                   let l = lastKey, !InternalKey.sameUser(l, key) {
                    try finish(upper: InternalKey.userKey(key))
                }
                if current == nil { try newTable() }
                try current!.builder.add(key, value)
                lastKey = key
            }
            try finish(upper: nil)
        } catch {
            // Nothing names these files yet: remove them.
            if let c = current { try? kvimr.deleteFile(c.number) }
            for f in done { try? kvimr.deleteFile(f.number) }
            throw error
        }
        return done
    }

    /// Logs `edit` durably in the manifest, then installs the new version (and `also`'s
    /// changes) atomically for readers. Tables the edit drops are marked obsolete: their files
    /// go once the last reader of an older version lets go. `durable: false`: the edit is only
    /// ordered before every later write, durable with the next sync (`ManifestLog.append`).
    func logAndApply(_ edit: VersionEdit, durable: Bool = true, also: (inout EngineState) -> Void = { _ in }) throws(LSMError) {
        var edit = edit
        let reclaimer = self.reclaimer
        let obsolete = try manifest.withLock { (m: inout ManifestLog?) throws(LSMError) -> [FileMeta] in
            let before = state.withLock { s -> ManifestState in
                edit.lastSequence = s.lastSequence
                return s.manifestState
            }
            guard var log = m else { throw LSMError(.closed, "manifest is closed") }
            try log.append(edit, before: before, kvimr: kvimr, durable: durable)
            m = log
            return state.withLock { s -> [FileMeta] in
                let (v, dropped) = s.version.applying(edit, reclaimer: reclaimer)
                s.version = v
                also(&s)
                return dropped
            }
        }
        iterators.clear() // pooled iterators hold the old version's tables
        for f in obsolete { f.markObsolete() }
    }

    /// Runs the most urgent compaction, if any.
    func compactOnce() throws(LSMError) {
        let (v, pointers, smallestSnapshot) = state.withLock { s in (s.version, s.pointers, s.lastSequence) }
        guard let c = CompactionPicker.pick(v, options, pointers: pointers) else { return }
        var edit = VersionEdit()
        for f in c.inputs { edit.deleted.append((c.level, f.number)) }
        for f in c.next { edit.deleted.append((c.outputLevel, f.number)) }
        let largest = c.inputs.map(\.largest).max { InternalKey.compare($0, $1) < 0 }
        if c.isTrivialMove {
            for f in c.inputs {
                edit.added.append(.init(level: c.outputLevel, number: f.number, size: f.size, smallest: f.smallest, largest: f.largest))
            }
        } else {
            var children: [any InternalIterator] = []
            let tc = tableCache
            // L0 files newest first; a deeper level (several runs under tiering) run by run.
            // `next` too: an output level left with tiering runs holds overlapping files, and
            // one LevelIterator over them would yield keys out of order (the merge then lost
            // deletes and kept shadowed versions).
            let runs = (c.level == 0 ? c.inputs.sorted(by: { $0.number > $1.number }).map { [$0] } : LevelShape.chains(c.inputs))
                + LevelShape.chains(c.next)
            for run in runs {
                children.append(run.count == 1 ? try tableCache.table(run[0]).iterator(fillCache: false)
                    : LevelIterator(files: run, fillCache: false) { (m: FileMeta) throws(LSMError) in try tc.table(m) })
            }
            let merged = MergingIterator(children)
            var base = BaseLevelCheck(version: v, from: c.olderDataFrom)
            // Range tombstones: cut into disjoint newest-wins pieces; a piece with nothing
            // beneath the output level has done its work and is dropped.
            var all: [RangeTombstone] = []
            for f in c.inputs + c.next { all += try tableCache.table(f).tombstones }
            let frags = TombstoneFragments(all, snapshot: smallestSnapshot)
            let kept = frags.tombstones.filter { t in
                (c.olderDataFrom..<v.levels.count).contains { !v.overlapping($0, t.start, t.end).isEmpty }
            }
            var garbage = GarbageTally()
            edit.added = try writeTables(level: c.outputLevel, split: true, tombstones: kept) { (add) throws(LSMError) in
                try merged.seekToFirst()
                var currentUser: [UInt8]? = nil
                var lastSeqForKey = UInt64.max
                while merged.isValid {
                    let k = merged.key
                    let seq = InternalKey.sequence(k)
                    if currentUser == nil || !InternalKey.sameUser(currentUser!, k) {
                        currentUser = k
                        lastSeqForKey = UInt64.max
                    }
                    var drop = false
                    if !frags.isEmpty, frags.coveringSeq(InternalKey.userKey(k)) > seq {
                        drop = true // deleted by a range tombstone
                    } else if lastSeqForKey <= smallestSnapshot {
                        drop = true // shadowed by a newer version every reader can see
                    } else if InternalKey.kind(k) == ValueKind.delete.rawValue, seq <= smallestSnapshot,
                              base.isBaseLevel(for: InternalKey.userKey(k)) {
                        drop = true // tombstone with nothing older beneath it
                    }
                    lastSeqForKey = seq
                    if !drop { try add(k, merged.value) } else { garbage.dropped(k, merged.value) }
                    try merged.next()
                }
            }
            edit.vlogGarbage = garbage.deltas
        }
        try logAndApply(edit) { s in
            if let largest, c.level < s.pointers.count { s.pointers[c.level] = largest }
        }
        counters.compactions.bump()
    }
}

/// Answers "does any level from `from` on hold this user key's range?" for keys asked in
/// ascending order (LevelDB's IsBaseLevelForKey). Levels are sorted by smallest key; their
/// files may overlap (tiering): the first file not ending before the key decides.
struct BaseLevelCheck {
    let version: Version
    let from: Int
    var pointers: [Int]
    init(version: Version, from: Int) {
        self.version = version; self.from = from
        pointers = Array(repeating: 0, count: version.levels.count)
    }
    mutating func isBaseLevel(for user: [UInt8]) -> Bool {
        var l = from
        while l < version.levels.count {
            let files = version.levels[l]
            while pointers[l] < files.count {
                let f = files[pointers[l]]
                if InternalKey.compareUser(f.largest, user) >= 0 {
                    if InternalKey.compareUser(f.smallest, user) <= 0 { return false }
                    break
                }
                pointers[l] += 1
            }
            l += 1
        }
        return true
    }
}

extension Engine {
    /// Waits until the background queue has nothing to do (or has failed).
    func waitIdle() {
        while true {
            let g = signal.generation
            maybeScheduleBackground()
            let busy = state.withLock { s in
                s.bgError == nil && !s.closed && (s.bgScheduled || !s.imms.isEmpty
                    || (!s.closing && CompactionPicker.needsCompaction(s.version, options)))
            }
            if !busy { return }
            signal.wait(past: g)
        }
    }
}
