import KVIMR
import Synchronization

/// Open tables by file number (footer, index and filter stay in memory while open).
package final class TableCache: Sendable {
    let kvimr: KVIMR
    let blockCache: BlockCache
    private let tables = Mutex<[UInt64: Table]>([:])

    package init(kvimr: KVIMR, blockCache: BlockCache) { self.kvimr = kvimr; self.blockCache = blockCache }

    package func table(_ f: FileMeta) throws(LSMError) -> Table {
        if let t = tables.withLock({ $0[f.number] }) { return t }
        let kvimr = self.kvimr
        let number = f.number
        let t = try Table(number: number, size: f.size, cache: blockCache) { (offset, count) throws(LSMError) -> [UInt8] in
            try kvimr.readExact(number, at: offset, count: count)
        }
        return tables.withLock { m in
            if let existing = m[number] { return existing }
            m[number] = t
            return t
        }
    }

    package func evict(_ number: UInt64) {
        _ = tables.withLock { $0.removeValue(forKey: number) }
        blockCache.evict(file: number)
    }
}
