import KVIMR

/// What `LSMStore.verify()` found (for `lsmfs fsck`).
public struct LSMVerifyReport: Sendable {
    public var tables = 0
    public var entries: UInt64 = 0
    public var rangeTombstones = 0
    public var tableBytes: UInt64 = 0
    /// Value-log segments the manifest lists, their records and bytes (every record read and
    /// checked; see docs/format/vlog.md).
    public var valueLogSegments = 0
    public var valueLogRecords: UInt64 = 0
    public var valueLogBytes: UInt64 = 0
    /// KVIMR files no version, live WAL or the manifest names (a crash leftover; the next
    /// read-write open deletes them).
    public var orphanFiles: [UInt64] = []
    /// One line per damaged structure, naming it; empty when the store is sound.
    public var problems: [String] = []
    public var isClean: Bool { problems.isEmpty }
}

extension LSMStore {
    /// Reads every table of the current version end to end — every block checksum, key order,
    /// the table's recorded key range, its Bloom filter — and checks the version's shape.
    /// Reports problems instead of stopping at the first.
    public func verify() -> LSMVerifyReport { engine.verify() }
}

extension Engine {
    func verify() -> LSMVerifyReport {
        var r = LSMVerifyReport()
        // WALs from the log number on are live (a memtable recovery could not flush keeps all
        // the WALs it replayed).
        let (v, wals, logNumber) = state.withLock { s in
            (s.version, Set([s.mem.walNumber] + s.imms.map(\.walNumber)), s.logNumber)
        }
        // The files and the manifest are listed at the same moment as the version, before the
        // (slow) table reads: a flush or compaction finishing meanwhile must not make its new
        // table look like an orphan.
        let files = kvimr.files()
        let current = manifest.withLock { $0?.number }
        if let why = v.invariantViolation(allowOverlap: options.compactionStyle != .leveled) { r.problems.append("version: \(why)") }
        verifyValueLog(v, into: &r)
        for (level, files) in v.levels.enumerated() {
            for f in files {
                r.tables += 1
                r.tableBytes += f.size
                do throws(LSMError) {
                    try verifyTable(f, level: level, into: &r)
                } catch {
                    r.problems.append("table \(f.number) (level \(level)): \(error.message)")
                }
            }
        }
        let live = v.allNumbers
        for f in files {
            switch f.kind {
            case .sstable where !live.contains(f.number): r.orphanFiles.append(f.number)
            case .wal where !wals.contains(f.number) && f.number < logNumber && !readOnly: r.orphanFiles.append(f.number)
            case .manifest where current != nil && f.number != current: r.orphanFiles.append(f.number)
            case .vlog where !live.contains(f.number): r.orphanFiles.append(f.number)
            default: break
            }
        }
        return r
    }

    private func verifyTable(_ f: FileMeta, level: Int, into r: inout LSMVerifyReport) throws(LSMError) {
        let t = try tableCache.table(f)
        let it = t.iterator(fillCache: false)
        try it.seekToFirst()
        var prev: [UInt8]? = nil
        while it.isValid {
            let k = it.key
            if let p = prev, InternalKey.compare(p, k) >= 0 { throw LSMError.corrupt("keys out of order") }
            if InternalKey.compare(k, f.smallest) < 0 || InternalKey.compare(k, f.largest) > 0 {
                throw LSMError.corrupt("a key lies outside the range the manifest records")
            }
            if !t.mayContain(hash: Bloom.hash(InternalKey.userKey(k))) {
                throw LSMError.corrupt("Bloom filter misses a key the table holds")
            }
            r.entries += 1
            prev = k
            try it.next()
        }
        for ts in t.tombstones {
            r.rangeTombstones += 1
            if InternalKey.compare(ts.startKey, f.smallest) < 0 || InternalKey.compare(ts.endSentinel, f.largest) > 0 {
                throw LSMError.corrupt("a range tombstone lies outside the range the manifest records")
            }
        }
    }
}
