import KVIMR
import Synchronization

/// Open tables by file number (footer, index and filter stay in memory while open).
package final class TableCache: Sendable {
    let kvimr: KVIMR
    let blockCache: BlockCache
    /// Open tables beyond this are closed, oldest opened first (an iterator still holding
    /// one keeps using it; it is simply reopened on the next use).
    let capacity: Int
    private struct State {
        var map: [UInt64: Table] = [:]
        var order: [UInt64] = []   // opening order, may hold numbers already evicted
    }
    private let tables = Mutex(State())

    package init(kvimr: KVIMR, blockCache: BlockCache, capacity: Int = 1000) {
        self.kvimr = kvimr; self.blockCache = blockCache; self.capacity = max(8, capacity)
    }

    package func table(_ f: FileMeta) throws(LSMError) -> Table {
        if let t = tables.withLock({ $0.map[f.number] }) { return t }
        let kvimr = self.kvimr
        let number = f.number
        let t = try Table(number: number, size: f.size, cache: blockCache) {
            (offset: UInt64, buffer: UnsafeMutableRawBufferPointer) throws(LSMError) in
            try kvimr.readExact(number, at: offset, into: buffer)
        }
        return tables.withLock { s in
            if let existing = s.map[number] { return existing }
            s.map[number] = t
            s.order.append(number)
            while s.map.count > capacity, !s.order.isEmpty {
                s.map[s.order.removeFirst()] = nil
            }
            if s.order.count > 4 * capacity { s.order = s.order.filter { s.map[$0] != nil } }
            return t
        }
    }

    /// Memory the open tables keep (index blocks, filters, tombstones), for the memory budget.
    package var residentBytes: UInt64 {
        tables.withLock { s in s.map.values.reduce(0) { $0 + $1.residentBytes } }
    }

    /// The newest version seen whose tables all hold no range tombstones (weak: a version that
    /// is gone never matches, so a new one at the same address is not taken for it).
    private struct CleanVersion: ~Copyable { weak var version: Version? }
    private let clean = Mutex(CleanVersion())

    /// Whether `v` is known to have no table with range tombstones (scans skip the search).
    package func isKnownClean(_ v: Version) -> Bool { clean.withLock { $0.version === v } }
    package func markClean(_ v: Version) { clean.withLock { $0.version = v } }

    package func evict(_ number: UInt64) {
        _ = tables.withLock { $0.map.removeValue(forKey: number) }
        blockCache.evict(file: number)
    }
}
