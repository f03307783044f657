import Dispatch
import KVIMR
import LSMCommon
import Synchronization

/// Everything the engine's threads share. Lock order (outer first):
/// `syncState` → `writer` → `manifest` → `state`; the table and block caches and memtables have
/// their own leaf locks and never call back.
final class Engine: Sendable {
    let kvimr: KVIMR
    let options: LSMOptions
    let readOnly: Bool
    let blockCache: BlockCache
    let tableCache: TableCache
    let reclaim: ReclaimContext
    let reclaimer: FileReclaimer
    let counters = Counters()
    /// The value log's head and counters (VLogWriter.swift).
    let vlog = ValueLog()
    /// Value-log garbage collection: one collector, counters (VLogGCBackground.swift).
    let gc = VLogCollector()
    let signal = Signal()
    /// Merging iterators kept between short scans (IteratorPool.swift).
    let iterators = IteratorPool()
    let bgQueue = DispatchQueue(label: "lsmstore.background")

    /// The write path: the current WAL. Held for a whole write (writes are serialized).
    let writer: Mutex<WriterState>
    /// How far the WAL is known durable (group commit); held while syncing the WAL.
    let syncState = Mutex(WALPosition(file: 0, offset: 0))
    /// The manifest log and the persisted state it describes; held while logging an edit.
    let manifest: Mutex<ManifestLog?>
    /// Memtables, current version, published sequence, background bookkeeping.
    let state: Mutex<EngineState>

    struct WriterState {
        var log: LogWriter?
        /// A failed WAL append leaves the log in an unknown state: no further writes.
        var failed: LSMError?
        /// A memtable switch stopped by `.noSpace` (the error): nothing is lost, but `log` — the
        /// WAL being frozen — may already be sealed and takes no more records. Every path that
        /// logs (`makeRoomForWrite`, hence writes and GC's moves) or freezes the memtable does
        /// the switch again first; a sync still makes `log` durable (`syncWAL`).
        var switchPending: LSMError?
    }

    struct EngineState {
        var mem: Memtable
        var imms: [Memtable] = []          // oldest first
        var version: Version
        var lastSequence: UInt64
        var logNumber: UInt64
        var bgScheduled = false
        /// The last background failure. `.noSpace` and `.io` are retried once `bgRetryAfter`
        /// passes (see `Engine.isRetryable`); any other failure is sticky until reopen.
        var bgError: LSMError?
        var bgRetryAfter: UInt64 = 0
        var closing = false
        var closed = false
        var pointers: [[UInt8]?]
        var manifestState: ManifestState {
            ManifestState(version: version, logNumber: logNumber, lastSequence: lastSequence)
        }
    }

    /// A consistent read view: later writes have larger sequences, later versions are ignored.
    struct View: Sendable {
        var mems: [Memtable]   // newest first
        var version: Version
        var sequence: UInt64
    }

    init(kvimr: KVIMR, options: LSMOptions, readOnly: Bool, reclaim: ReclaimContext,
         writer: WriterState, manifest: ManifestLog?, state: EngineState) {
        self.kvimr = kvimr; self.options = options; self.readOnly = readOnly
        self.reclaim = reclaim
        self.blockCache = reclaim.blockCache
        self.tableCache = reclaim.tableCache
        self.reclaimer = reclaim.reclaimer
        self.writer = Mutex(writer)
        self.manifest = Mutex(manifest)
        self.state = Mutex(state)
    }

    func view() throws(LSMError) -> View {
        try state.withLock { (s: inout EngineState) throws(LSMError) -> View in
            if s.closed { throw LSMError(.closed, "store is closed") }
            var mems: [Memtable] = []
            mems.reserveCapacity(1 + s.imms.count)
            mems.append(s.mem)
            mems.append(contentsOf: s.imms.reversed())
            return View(mems: mems, version: s.version, sequence: s.lastSequence)
        }
    }

    // MARK: Reads

    func get(_ key: [UInt8]) throws(LSMError) -> [UInt8]? { try get(key, in: try view()) }

    /// Point lookup: `lookup`, with a value-log pointer resolved to its value.
    func get(_ key: [UInt8], in v: View) throws(LSMError) -> [UInt8]? {
        counters.gets.bump()
        guard let (kind, stored) = try lookup(key, in: v) else { return nil }
        return try materialize(kind, stored, key: key, in: v)
    }

    /// The newest visible live entry for `key` as the tree stores it: (kind — put or
    /// valuePointer —, stored value), or nil if absent or deleted. Sources newest first; the
    /// first version found answers unless a range tombstone seen so far (in it or a newer
    /// source) is newer than it. GC checks liveness with this (an unresolved pointer).
    func lookup(_ key: [UInt8], in v: View) throws(LSMError) -> (kind: UInt8, stored: [UInt8])? {
        var tomb: UInt64 = 0
        let hash = Bloom.hash(key)
        for m in v.mems {
            tomb = max(tomb, m.maxCoveringSeq(key, seq: v.sequence))
            guard m.mayContain(hash: hash) else { continue }
            if let (kind, seq, value) = m.getWithSeq(key, seq: v.sequence) {
                guard (kind == .put || kind == .valuePointer) && seq > tomb else { return nil }
                return (kind.rawValue, value)
            }
        }
        let target = InternalKey.make(key, v.sequence, LSMFormat.seekKind)
        // L0 files newest first (any may hold the key), then at most one file per level.
        var l0 = v.version.levels[0].makeIterator()
        var level = 0
        while level < v.version.levels.count {
            let file: FileMeta?
            if level == 0 {
                guard let f = l0.next() else { level = 1; continue }
                if !f.contains(key) { continue }
                file = f
            } else if v.version.shape.overlapped[level] { // tiering: several runs may hold it
                level += 1
                // The holder's entry was already read (and its tombstones folded into `tomb`).
                guard let e = try newestHolder(v.version, level - 1, key, target: target, hash: hash,
                                               snapshot: v.sequence, tomb: &tomb) else { continue }
                counters.bloomChecks.bump()
                counters.tablesProbed.bump()
                return Self.live(e, tomb: tomb)
            } else {
                file = v.version.fileContaining(level, key)
                level += 1
            }
            if let f = file {
                let t = try tableCache.table(f)
                tomb = max(tomb, t.maxCoveringSeq(key, snapshot: v.sequence))
                counters.bloomChecks.bump()
                if !t.mayContain(hash: hash) { counters.bloomNegatives.bump(); continue }
                counters.tablesProbed.bump()
                if let e = try t.get(target, userKey: key) { return Self.live(e, tomb: tomb) }
            }
        }
        return nil
    }

    /// A table entry's answer to a lookup: (kind, stored value) if it is a put or value
    /// pointer newer than every covering range tombstone (`tomb`), else nil (deleted).
    private static func live(_ e: (key: [UInt8], value: [UInt8]), tomb: UInt64) -> (kind: UInt8, stored: [UInt8])? {
        let kind = InternalKey.kind(e.key)
        let live = (kind == ValueKind.put.rawValue || kind == ValueKind.valuePointer.rawValue)
            && InternalKey.sequence(e.key) > tomb
        return live ? (kind, e.value) : nil
    }

    /// The range tombstones of `v` that may touch [start, end).
    func tombstones(_ v: View, from start: [UInt8], to end: [UInt8]?) throws(LSMError) -> [RangeTombstone] {
        var out: [RangeTombstone] = []
        for m in v.mems { out += m.rangeTombstones(from: start, to: end) }
        if tableCache.isKnownClean(v.version) { return out } // no table of it has any
        var clean = true
        for level in 0..<v.version.levels.count {
            for f in v.version.levels[level] where f.rangeTombstones.load(ordering: .relaxed) != 1 { // 1: known to have none
                guard f.overlaps(start, end) else { clean = false; continue }
                let t = try tableCache.table(f)
                f.rangeTombstones.store(t.tombstones.isEmpty ? 1 : 2, ordering: .relaxed)
                if !t.tombstones.isEmpty { clean = false }
                out += t.tombstones(from: start, to: end)
            }
        }
        if clean { tableCache.markClean(v.version) }
        return out
    }

    /// A merging iterator over every source of `v` (newest first).
    func iterator(_ v: View) throws(LSMError) -> MergingIterator {
        var children: [any InternalIterator] = v.mems.map { MemtableIterator($0) }
        for f in v.version.levels[0] { children.append(try tableCache.table(f).iterator()) }
        let tc = tableCache
        for level in 1..<v.version.levels.count {
            for run in v.version.runs(level) { // one run per level unless tiering
                children.append(LevelIterator(files: run) { (f: FileMeta) throws(LSMError) -> Table in try tc.table(f) })
            }
        }
        return MergingIterator(children)
    }

    /// Visits the newest visible live version of each user key in [start, end). Values in the
    /// value log are fetched in batches (`ScanBatch`), read in log order, visited in key order.
    func scan(_ v: View, from start: [UInt8], to end: [UInt8]?,
              _ visit: (_ key: [UInt8], _ value: [UInt8]) -> Bool) throws(LSMError) {
        var batch = ScanBatch()
        let completed = try forEachLiveEntry(v, from: start, to: end) { (user, kind, stored) throws(LSMError) -> Bool in
            if kind == ValueKind.put.rawValue && batch.isEmpty { return visit(user, stored) }
            let p = kind == ValueKind.put.rawValue ? nil : try pointer(stored, key: user, in: v)
            return batch.add(user, stored, p) ? try batch.drain(self, visit) : true
        }
        if completed { _ = try batch.drain(self, visit) }
    }
}

/// What deleting an obsolete table needs; disabled once the store is closed (files left
/// behind are orphans that the next open deletes).
final class ReclaimContext: Sendable {
    let kvimr: KVIMR
    let blockCache: BlockCache
    let tableCache: TableCache
    let enabled = Atomic<Bool>(true)

    init(kvimr: KVIMR, options: LSMOptions) {
        self.kvimr = kvimr
        blockCache = BlockCache(capacityBytes: options.blockCacheBytes)
        tableCache = TableCache(kvimr: kvimr, blockCache: blockCache, capacity: options.maxOpenTables)
    }

    var reclaimer: FileReclaimer { FileReclaimer { [self] n in self.reclaim(n) } }

    func reclaim(_ number: UInt64) {
        tableCache.evict(number)
        guard enabled.load(ordering: .sequentiallyConsistent) else { return }
        try? kvimr.deleteFile(number)
    }
}
