import Synchronization

/// Merging iterators kept between scans, so a short scan (a seek and a few steps: the
/// filesystem's directory and file lookups, db_bench's seekrandom) does not build one
/// iterator per memtable, per L0 table and per level — with their block iterators and key
/// buffers — every time. An iterator is reused only for a view of the same memtables and the
/// same version (it is positioned afresh by its seek; sequences are filtered by the scan).
///
/// A pooled iterator holds its version's tables and memtables: the pool is emptied whenever
/// a new version is installed (`Engine.logAndApply`, which every flush and compaction ends
/// with) and at close, so it never keeps an obsolete table file or a flushed memtable alive
/// past the next version change.
final class IteratorPool: Sendable {
    private struct Entry: @unchecked Sendable { // the iterator is used by one thread at a time: taken out, then given back
        let version: Version
        let mems: [Memtable]
        let iterator: MergingIterator
    }
    private let entries = Mutex<[Entry]>([])
    /// Bumped by `clear`: an iterator taken before a clear is not given back after it.
    private let generation = Atomic<UInt64>(0)
    /// Iterators kept at most (one per concurrent scanner is enough).
    static let capacity = 4

    /// An iterator over `v`'s sources from the pool, or nil (build one). `token` is what
    /// `give` needs to tell whether the pool was cleared meanwhile.
    func take(_ v: Engine.View) -> (MergingIterator, UInt64)? {
        entries.withLock { es -> (MergingIterator, UInt64)? in
            guard let i = es.firstIndex(where: { $0.version === v.version && Self.same($0.mems, v.mems) }) else { return nil }
            return (es.remove(at: i).iterator, generation.load(ordering: .relaxed))
        }
    }

    /// The generation to pass to `give` for an iterator built now.
    var token: UInt64 { generation.load(ordering: .relaxed) }

    /// Returns an iterator over `v` after a scan that completed without error.
    func give(_ it: MergingIterator, _ v: Engine.View, token: UInt64) {
        entries.withLock { es in
            guard token == generation.load(ordering: .relaxed) else { return } // cleared meanwhile
            if es.count >= IteratorPool.capacity { es.removeFirst() }
            es.append(Entry(version: v.version, mems: v.mems, iterator: it))
        }
    }

    /// Drops every pooled iterator (a new version was installed, or the store closes).
    func clear() {
        let dropped = entries.withLock { es -> [Entry] in
            generation.add(1, ordering: .relaxed)
            defer { es.removeAll() }
            return es
        }
        _ = dropped   // released here, outside the lock (table files may be deleted on release)
    }

    private static func same(_ a: [Memtable], _ b: [Memtable]) -> Bool {
        a.count == b.count && zip(a, b).allSatisfy { $0 === $1 }
    }
}
