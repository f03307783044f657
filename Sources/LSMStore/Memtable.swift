import Synchronization

/// The in-memory write buffer: a sorted map of internal keys with byte accounting.
/// Thread-safe: point entries live in a skiplist with lock-free reads (the engine serializes
/// writers); range tombstones sit behind a small mutex.
package final class Memtable: Sendable {
    /// The WAL holding this memtable's updates.
    package let walNumber: UInt64
    let list = SkipList()
    private struct Ranges {
        var list: [RangeTombstone] = []   // insertion (sequence) order
        var index = TombstoneIndex()
    }
    private let ranges = Mutex(Ranges())
    private let bytes = Atomic<Int>(0)
    /// Per-entry bookkeeping charged against `memtableBytes` besides key and value.
    static let entryOverhead = 128

    package init(walNumber: UInt64) { self.walNumber = walNumber }

    package var approximateBytes: Int { bytes.load(ordering: .relaxed) }
    package var count: Int { list.count + ranges.withLock { $0.list.count } }
    package var isEmpty: Bool { count == 0 }

    package func add(_ seq: UInt64, _ kind: ValueKind, _ key: [UInt8], _ value: [UInt8]) {
        if kind == .rangeDelete {
            let t = RangeTombstone(start: key, end: value, seq: seq)
            ranges.withLock { $0.list.append(t); $0.index.insert(t) }
            bytes.add(key.count + value.count + Memtable.entryOverhead, ordering: .relaxed)
            return
        }
        let ikey = InternalKey.make(key, seq, kind.rawValue)
        list.insert(ikey, value)
        var charge = ikey.count + value.count + Memtable.entryOverhead
        // A separated value also charges a share of its record (`ValueLog.memtableShare`): a
        // memtable of pointers alone would otherwise stand for gigabytes of values, whose
        // overwrites count as garbage (and become collectable) only once it is flushed, and
        // whose pointers recovery would have to check.
        if kind == .valuePointer, let p = ValuePointer.decode(value) { charge += Int(p.length) / ValueLog.memtableShare }
        bytes.add(charge, ordering: .relaxed)
    }

    /// The newest entry for `key` with sequence <= `seq`: (kind, value), or nil if none.
    package func get(_ key: [UInt8], seq: UInt64) -> (ValueKind, [UInt8])? {
        getWithSeq(key, seq: seq).map { ($0.0, $0.2) }
    }

    /// The range tombstones (all sequences; readers filter by their snapshot).
    package var rangeTombstones: [RangeTombstone] { ranges.withLock { $0.list } }

    /// The newest sequence <= `seq` of a range tombstone covering `key`, or 0.
    package func maxCoveringSeq(_ key: [UInt8], seq: UInt64) -> UInt64 {
        ranges.withLock { $0.list.isEmpty ? 0 : $0.index.maxCoveringSeq(key, snapshot: seq) }
    }

    /// Range tombstone pieces touching [start, end).
    package func rangeTombstones(from start: [UInt8], to end: [UInt8]?) -> [RangeTombstone] {
        ranges.withLock { $0.list.isEmpty ? [] : $0.index.overlapping(start, end) }
    }

    /// The newest entry for `key` with sequence <= `seq`, with its sequence.
    package func getWithSeq(_ key: [UInt8], seq: UInt64) -> (ValueKind, UInt64, [UInt8])? {
        let target = InternalKey.make(key, seq, LSMFormat.seekKind)
        var none: [SkipNode] = []
        guard let n = list.seek(target, prev: &none),
              InternalKey.compareUser(n.key, key) == 0,
              let kind = ValueKind(rawValue: InternalKey.kind(n.key)) else { return nil }
        return (kind, InternalKey.sequence(n.key), n.value)
    }
}
