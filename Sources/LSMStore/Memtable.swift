import Synchronization

/// A node of the memtable's skiplist: one internal entry.
final class SkipNode {
    let key: [UInt8]      // internal key
    let value: [UInt8]
    var next: [SkipNode?]
    init(key: [UInt8], value: [UInt8], height: Int) {
        self.key = key; self.value = value
        self.next = [SkipNode?](repeating: nil, count: height)
    }
}

/// A single-writer skiplist ordered by internal key; guarded by the memtable's mutex.
struct SkipList {
    static let maxHeight = 12
    let head = SkipNode(key: [], value: [], height: SkipList.maxHeight)
    var height = 1
    var rng: UInt64 = 0x9E37_79B9_7F4A_7C15
    var count = 0
    /// Range tombstones, in insertion (sequence) order, and indexed for lookups.
    var ranges: [RangeTombstone] = []
    var rangeIndex = TombstoneIndex()

    mutating func randomHeight() -> Int {
        var h = 1
        while h < SkipList.maxHeight {
            rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17
            if rng & 3 != 0 { break } // branching factor 4
            h += 1
        }
        return h
    }

    /// The first node whose key is >= `key`; fills `prev` with the predecessors per level.
    func findGreaterOrEqual(_ key: [UInt8], prev: inout [SkipNode]) -> SkipNode? {
        var x = head
        var level = height - 1
        while true {
            let nx = x.next[level]
            if let n = nx, InternalKey.compare(n.key, key) < 0 {
                x = n
            } else {
                if !prev.isEmpty { prev[level] = x }
                if level == 0 { return nx }
                level -= 1
            }
        }
    }

    mutating func insert(_ key: [UInt8], _ value: [UInt8]) {
        var prev = [SkipNode](repeating: head, count: SkipList.maxHeight)
        _ = findGreaterOrEqual(key, prev: &prev)
        let h = randomHeight()
        if h > height { height = h } // prev[] above the old height is already head
        let node = SkipNode(key: key, value: value, height: h)
        for i in 0..<h {
            node.next[i] = prev[i].next[i]
            prev[i].next[i] = node
        }
        count += 1
    }
}

/// The in-memory write buffer: a sorted map of internal keys with byte accounting.
/// Thread-safe (one mutex); entries are never removed, so iterators page through it by
/// re-seeking past the last key they returned.
package final class Memtable: Sendable {
    /// The WAL holding this memtable's updates.
    package let walNumber: UInt64
    private let list = Mutex(SkipList())
    private let bytes = Atomic<Int>(0)
    /// Per-entry bookkeeping charged against `memtableBytes` besides key and value.
    static let entryOverhead = 48

    package init(walNumber: UInt64) { self.walNumber = walNumber }

    package var approximateBytes: Int { bytes.load(ordering: .relaxed) }
    package var count: Int { list.withLock { $0.count + $0.ranges.count } }
    package var isEmpty: Bool { count == 0 }

    package func add(_ seq: UInt64, _ kind: ValueKind, _ key: [UInt8], _ value: [UInt8]) {
        if kind == .rangeDelete {
            let t = RangeTombstone(start: key, end: value, seq: seq)
            list.withLock { $0.ranges.append(t); $0.rangeIndex.insert(t) }
            bytes.add(key.count + value.count + Memtable.entryOverhead, ordering: .relaxed)
            return
        }
        let ikey = InternalKey.make(key, seq, kind.rawValue)
        list.withLock { $0.insert(ikey, value) }
        bytes.add(ikey.count + value.count + Memtable.entryOverhead, ordering: .relaxed)
    }

    /// The newest entry for `key` with sequence <= `seq`: (kind, value), or nil if none.
    package func get(_ key: [UInt8], seq: UInt64) -> (ValueKind, [UInt8])? {
        let target = InternalKey.make(key, seq, LSMFormat.seekKind)
        return list.withLock { l -> (ValueKind, [UInt8])? in
            var none: [SkipNode] = []
            guard let n = l.findGreaterOrEqual(target, prev: &none),
                  InternalKey.compareUser(n.key, key) == 0,
                  let kind = ValueKind(rawValue: InternalKey.kind(n.key)) else { return nil }
            return (kind, n.value)
        }
    }

    /// The range tombstones (all sequences; readers filter by their snapshot).
    package var rangeTombstones: [RangeTombstone] { list.withLock { $0.ranges } }

    /// The newest sequence <= `seq` of a range tombstone covering `key`, or 0.
    package func maxCoveringSeq(_ key: [UInt8], seq: UInt64) -> UInt64 {
        list.withLock { $0.ranges.isEmpty ? 0 : $0.rangeIndex.maxCoveringSeq(key, snapshot: seq) }
    }

    /// Range tombstone pieces touching [start, end).
    package func rangeTombstones(from start: [UInt8], to end: [UInt8]?) -> [RangeTombstone] {
        list.withLock { $0.ranges.isEmpty ? [] : $0.rangeIndex.overlapping(start, end) }
    }

    /// The newest entry for `key` with sequence <= `seq`, with its sequence.
    package func getWithSeq(_ key: [UInt8], seq: UInt64) -> (ValueKind, UInt64, [UInt8])? {
        let target = InternalKey.make(key, seq, LSMFormat.seekKind)
        return list.withLock { l -> (ValueKind, UInt64, [UInt8])? in
            var none: [SkipNode] = []
            guard let n = l.findGreaterOrEqual(target, prev: &none),
                  InternalKey.compareUser(n.key, key) == 0,
                  let kind = ValueKind(rawValue: InternalKey.kind(n.key)) else { return nil }
            return (kind, InternalKey.sequence(n.key), n.value)
        }
    }

    /// Up to `limit` entries with internal key >= `from` (or > `from` when `exclusive`).
    package func entries(from: [UInt8]?, exclusive: Bool, limit: Int) -> [([UInt8], [UInt8])] {
        list.withLock { l -> [([UInt8], [UInt8])] in
            var none: [SkipNode] = []
            var n: SkipNode?
            if let from {
                n = l.findGreaterOrEqual(from, prev: &none)
                if exclusive, let x = n, InternalKey.compare(x.key, from) == 0 { n = x.next[0] }
            } else {
                n = l.head.next[0]
            }
            var out: [([UInt8], [UInt8])] = []
            out.reserveCapacity(limit)
            while let x = n, out.count < limit {
                out.append((x.key, x.value))
                n = x.next[0]
            }
            return out
        }
    }
}
