import LSMCommon
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
    /// Set once a range tombstone is added: point lookups skip `ranges`' lock until then.
    private let hasRanges = Atomic<Bool>(false)
    /// Charged besides the skiplist's arena: range tombstones and value-log shares.
    private let bytes = Atomic<Int>(0)
    /// Per-tombstone bookkeeping charged against `memtableBytes` besides its keys.
    static let entryOverhead = 128

    /// Point entries' user keys (MemtableFilter.swift).
    let filter: MemtableFilter

    /// `capacityBytes`: the memtable size the store switches at (sizes the key filter).
    package init(walNumber: UInt64, capacityBytes: Int = 4 << 20) {
        self.walNumber = walNumber
        filter = MemtableFilter(capacity: capacityBytes)
    }

    /// Whether the memtable may hold a point entry for the user key of Bloom hash `hash`.
    package func mayContain(hash: UInt32) -> Bool { filter.mayContain(hash: hash) }

    /// What the memtable holds against `memtableBytes`: its skiplist's nodes as they lie in
    /// its arena (headers, links, keys, values), its range tombstones, and a share of each
    /// separated value's record (below). The arena itself (`footprintBytes`) is larger by at
    /// most about one chunk (`SkipList.maxChunk`), which the memory budget adds.
    package var approximateBytes: Int { bytes.load(ordering: .relaxed) + list.usedBytes }
    /// The memory the memtable holds: its skiplist's arena and its key filter.
    package var footprintBytes: Int { list.footprintBytes + filter.bytes }
    package var count: Int { list.count + ranges.withLock { $0.list.count } }
    package var isEmpty: Bool { count == 0 }

    package func add(_ seq: UInt64, _ kind: ValueKind, _ key: [UInt8], _ value: [UInt8]) {
        if kind == .rangeDelete {
            let t = RangeTombstone(start: key, end: value, seq: seq)
            ranges.withLock { $0.list.append(t); $0.index.insert(t) }
            hasRanges.store(true, ordering: .releasing)
            bytes.add(key.count + value.count + Memtable.entryOverhead, ordering: .relaxed)
            return
        }
        filter.add(hash: Bloom.hash(key))
        // The internal key is built on the stack and copied into the arena with the value.
        InternalKey.withKey(key, seq, kind.rawValue) { ikey in
            _ = value.withUnsafeBytes { list.insert(key: ikey, value: $0) }
        }
        guard kind == .valuePointer else { return }
        // A separated value also charges a share of its record (`ValueLog.memtableShare`): a
        // memtable of pointers alone would otherwise stand for gigabytes of values, whose
        // overwrites count as garbage (and become collectable) only once it is flushed, and
        // whose pointers recovery would have to check.
        if let p = ValuePointer.decode(value) { bytes.add(Int(p.length) / ValueLog.memtableShare, ordering: .relaxed) }
    }

    /// The newest entry for `key` with sequence <= `seq`: (kind, value), or nil if none.
    package func get(_ key: [UInt8], seq: UInt64) -> (ValueKind, [UInt8])? {
        getWithSeq(key, seq: seq).map { ($0.0, $0.2) }
    }

    /// The range tombstones (all sequences; readers filter by their snapshot).
    package var rangeTombstones: [RangeTombstone] { ranges.withLock { $0.list } }

    /// The newest sequence <= `seq` of a range tombstone covering `key`, or 0.
    package func maxCoveringSeq(_ key: [UInt8], seq: UInt64) -> UInt64 {
        guard hasRanges.load(ordering: .acquiring) else { return 0 }
        return ranges.withLock { $0.list.isEmpty ? 0 : $0.index.maxCoveringSeq(key, snapshot: seq) }
    }

    /// Range tombstone pieces touching [start, end).
    package func rangeTombstones(from start: [UInt8], to end: [UInt8]?) -> [RangeTombstone] {
        guard hasRanges.load(ordering: .acquiring) else { return [] }
        return ranges.withLock { $0.list.isEmpty ? [] : $0.index.overlapping(start, end) }
    }

    /// The newest entry for `key` with sequence <= `seq`, with its sequence.
    package func getWithSeq(_ key: [UInt8], seq: UInt64) -> (ValueKind, UInt64, [UInt8])? {
        // The seek key is built on the stack: no array per lookup.
        guard let n = InternalKey.withKey(key, seq, LSMFormat.seekKind, { list.seek(raw: $0, prev: nil) }) else { return nil }
        let k = n.keyBytes
        guard k.count == key.count + 8,
              key.withUnsafeBytes({ compareBytes(UnsafeRawBufferPointer(rebasing: k[0..<key.count]), $0) }) == 0,
              let kind = ValueKind(rawValue: k[key.count]) else { return nil }
        let trailer = UInt64(littleEndian: k.loadUnaligned(fromByteOffset: key.count, as: UInt64.self))
        return (kind, trailer >> 8, n.value)
    }
}
