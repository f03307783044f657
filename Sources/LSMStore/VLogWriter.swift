import KVIMR
import LSMCommon
import Synchronization

/// The value log's mutable state and counters (docs/format/vlog.md). Lock order: the head
/// lock comes after `Engine.writer` and before `Engine.manifest` (starting a segment logs an
/// edit while holding it).
final class ValueLog: Sendable {
    struct Head {
        /// The segment appends go to; nil until the first append after open (a crash may have
        /// torn the previous head's tail, so appends never continue an old segment).
        var segment: FileNumber?
        /// Bytes appended to `segment` (handed to KVIMR; KVIMR buffers them until a sync).
        var size: UInt64 = 0
        /// Sealed segments whose tail may not be durable yet: the next WAL sync includes them.
        var unsynced: [FileNumber] = []
        /// Records of one append call, handed to KVIMR in pieces of at most `handOverBytes`.
        var scratch: [UInt8] = []
        /// A failed hand-over other than "no space" leaves the head unknown: no more appends.
        var failed: LSMError?
    }
    let head = Mutex(Head())
    let valuesWritten = Atomic<UInt64>(0)
    let valueBytesWritten = Atomic<UInt64>(0)
    let checksumErrors = Atomic<UInt64>(0)
    /// Records are handed to KVIMR once this many bytes are pending.
    static let handOverBytes = 1 << 20
    /// A separated value charges its memtable 1/`memtableShare` of its record besides the
    /// pointer entry: a memtable then stands for at most about 16 × `memtableBytes` of values.
    static let memtableShare = 16
    /// A value at least this large is handed to KVIMR straight from the caller's array (after
    /// its header and key), not copied into the scratch buffer first.
    static let directValueBytes = 8 << 10
}

extension Engine {
    /// Appends one record per (key, value) at the head of the value log and returns their
    /// pointers, in order. The records are in KVIMR's write buffer on return, not durable: a
    /// WAL sync (`syncWAL`, which syncs the head first) or `syncValueLog` makes them so. Used
    /// by the write path and by GC (moved values). Thread-safe.
    func appendValues(_ items: [(key: [UInt8], value: [UInt8])]) throws(LSMError) -> [ValuePointer] {
        try appendRecords(items.count, countAsWrites: false, key: { items[$0].key }, value: { items[$0].value })
    }

    /// Moves the values of `entries`' puts of at least `options.valueLogThreshold` bytes into
    /// the value log: such an entry becomes a `.valuePointer` entry holding the pointer.
    func separateValues(_ entries: inout [BatchEntry]) throws(LSMError) {
        let threshold = options.valueLogThreshold
        guard threshold != Int.max else { return }
        var large: [Int] = []
        for i in entries.indices where entries[i].kind == .put && entries[i].value.count >= threshold { large.append(i) }
        guard !large.isEmpty else { return }
        let pointers = try appendRecords(large.count, countAsWrites: true,
                                         key: { entries[large[$0]].key }, value: { entries[large[$0]].value })
        for (j, i) in large.enumerated() {
            entries[i].kind = .valuePointer
            entries[i].value = pointers[j].encode()
        }
    }

    /// The files a sync must make durable, vLog before WAL: sealed segments not yet synced and
    /// the head. Call with the writer lock held (no append runs meanwhile on the write path).
    func valueLogFilesToSync() -> ValueLogSyncSet {
        vlog.head.withLock { h in ValueLogSyncSet(sealed: h.unsynced, head: h.segment) }
    }

    /// Forgets the sealed segments of `set` once a sync covering them succeeded. (The head of
    /// `set` may have been sealed since, with records the sync did not cover: it stays.)
    func valueLogSynced(_ set: ValueLogSyncSet) {
        guard !set.sealed.isEmpty else { return }
        vlog.head.withLock { h in h.unsynced.removeAll { set.sealed.contains($0) } }
    }

    /// Makes every record appended so far durable (GC, before it logs pointers elsewhere).
    func syncValueLog() throws(LSMError) {
        let set = valueLogFilesToSync()
        guard !set.files.isEmpty else { return }
        try kvimr.syncFilesSkippingDeleted(set.files)   // (listed under the head lock; GC may free a sealed one since)
        valueLogSynced(set)
    }

    private func appendRecords(_ count: Int, countAsWrites: Bool,
                               key: (Int) -> [UInt8], value: (Int) -> [UInt8]) throws(LSMError) -> [ValuePointer] {
        if readOnly { throw LSMError(.readOnly, "store is read-only") }
        let segmentBytes = UInt64(max(1, options.valueLogSegmentBytes))
        let out = try vlog.head.withLock { (h: inout ValueLog.Head) throws(LSMError) -> [ValuePointer] in
            if let f = h.failed { throw f }
            var pointers: [ValuePointer] = []
            pointers.reserveCapacity(count)
            h.scratch.removeAll(keepingCapacity: true)
            var handed = h.size   // head size before the scratch's first byte
            do throws(LSMError) {
                for i in 0..<count {
                    let k = key(i), v = value(i)
                    let size = VLogFormat.recordSize(keyCount: k.count, valueCount: v.count)
                    guard size <= Int(UInt32.max) else { throw LSMError(.invalidArgument, "value of \(v.count) bytes is too long") }
                    if h.segment == nil || (h.size > 0 && h.size + UInt64(size) > segmentBytes) || h.scratch.count >= ValueLog.handOverBytes {
                        try handOver(&h)
                        handed = h.size
                        if h.segment == nil || (h.size > 0 && h.size + UInt64(size) > segmentBytes) {
                            try startSegment(&h)
                            handed = 0
                        }
                    }
                    if v.count >= ValueLog.directValueBytes {
                        // Header and key via the scratch, the value straight from the caller's
                        // array: one KVIMR append of both (all or nothing).
                        VLogFormat.appendHeader(key: k, value: v, to: &h.scratch)
                        try handOver(&h, then: v)
                        handed = h.size + UInt64(size)
                    } else {
                        VLogFormat.appendRecord(key: k, value: v, to: &h.scratch)
                    }
                    pointers.append(ValuePointer(segment: h.segment!, offset: h.size, length: UInt32(size)))
                    h.size += UInt64(size)
                }
                try handOver(&h)
            } catch {
                // KVIMR refuses an append without changing anything (no space): the head is as
                // it was after the last hand-over; records handed over already are garbage. If
                // a record's header went out without its value, the segment ends in a torn
                // record: it is sealed and left (nothing may follow a torn record).
                if let seg = h.segment, let actual = kvimr.size(seg), actual != handed {
                    h.unsynced.append(seg)
                    try? kvimr.sealFile(seg)
                    h.segment = nil
                    h.size = 0
                } else {
                    h.size = handed
                }
                h.scratch.removeAll(keepingCapacity: false)
                if error.kind != .noSpace && error.kind != .invalidArgument { h.failed = error }
                throw error
            }
            if h.scratch.capacity > 2 * ValueLog.handOverBytes { h.scratch = [] }
            return pointers
        }
        if countAsWrites {
            vlog.valuesWritten.bump(UInt64(out.count))
            vlog.valueBytesWritten.bump(out.reduce(0) { $0 + UInt64($1.length) })
        }
        return out
    }

    /// Hands the scratch records to KVIMR (the head's size already counts them), followed by
    /// `value` in the same append if given.
    private func handOver(_ h: inout ValueLog.Head, then value: [UInt8]? = nil) throws(LSMError) {
        guard let seg = h.segment, !h.scratch.isEmpty || value != nil else { return }
        do throws(KVIMRError) {
            try kvimr.append(seg, h.scratch, value ?? [])
        } catch { throw LSMError(error, "append to file \(seg)") }
        h.scratch.removeAll(keepingCapacity: true)
    }

    /// Seals the head (its tail becomes durable with the next sync or checkpoint; KVIMR queues
    /// it for its write-behind thread) and starts a new segment, listed in the manifest before
    /// any pointer into it can be written: the edit is written out, not synced (a sync per
    /// segment made the whole dirty image write back, stalling the writer), so the checkpoint
    /// that first makes a WAL record or table pointing into the segment durable carries it too.
    private func startSegment(_ h: inout ValueLog.Head) throws(LSMError) {
        if let old = h.segment {
            h.segment = nil
            h.size = 0
            h.unsynced.append(old)
            try kvimr.sealFile(old)
        }
        let n = try kvimr.createFile(.vlog, level: VLogFormat.segmentLevel)
        var edit = VersionEdit()
        edit.vlogAdded = [n]
        // On failure the edit may or may not be durable: the file stays (an orphan the next
        // open deletes if no manifest lists it).
        try logAndApply(edit, durable: false)
        h.segment = n
        h.size = 0
    }

    /// At open: seals every listed segment still open (its tail may be torn; appends go to a
    /// new segment).
    func sealValueLogSegments(_ v: Version) {
        let open = Set(kvimr.files().filter { $0.kind == .vlog && !$0.sealed }.map(\.number))
        for n in v.segments.keys where open.contains(n) { try? kvimr.sealFile(n) }
    }
}

/// The value-log files one sync covers, in the order they are synced (before the WAL).
struct ValueLogSyncSet {
    var sealed: [FileNumber]
    var head: FileNumber?
    var files: [FileNumber] { sealed + (head.map { [$0] } ?? []) }
}
