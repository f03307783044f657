import KVIMR

/// What the store is configured to keep in memory, part by part (`LSMStore.memoryBudget()`),
/// for a process that wants to stay within a budget (`lsmfs bench kv` prints it beside its
/// peak RSS).
public struct LSMMemoryBudget: Sendable {
    /// Active memtable plus the immutable ones writers may queue before they stall. A
    /// memtable's footprint is its skiplist arena (nodes, keys, values: `Memtable.approximateBytes`),
    /// which may pass `memtableBytes` by the chunk its last insert opened, plus its key filter.
    public var memtables: UInt64
    public var blockCache: UInt64
    /// KVIMR's write buffers (`KVIMR.bufferBudgetBytes`; 0 there means unbounded, counted
    /// here as what the buffers held at most so far).
    public var kvimrBuffers: UInt64
    /// Index blocks and Bloom filters of the open tables, as they are now (they grow with
    /// the data: about 1.5% of the table bytes at 10 bits/key and 116-byte entries).
    public var openTables: UInt64
    public var total: UInt64 { memtables + blockCache + kvimrBuffers + openTables }
}

extension LSMStore {
    public func memoryBudget() -> LSMMemoryBudget {
        let e = engine
        let kvimrBudget = e.kvimr.bufferBudgetBytes
        return LSMMemoryBudget(
            memtables: UInt64(e.options.memtableBytes + SkipList.maxChunk + MemtableFilter.bytes(forCapacity: e.options.memtableBytes))
                * UInt64(1 + e.maxImmutables),
            blockCache: UInt64(max(0, e.options.blockCacheBytes)),
            kvimrBuffers: kvimrBudget > 0 ? kvimrBudget : e.kvimr.peakBufferedBytes,
            openTables: e.tableCache.residentBytes)
    }
}

extension Table {
    /// Memory this open table keeps: its index block (with its restart prefixes), filter and
    /// tombstones.
    var residentBytes: UInt64 {
        UInt64(index.count + 8 * index.numRestarts + filter.count)
            + tombstones.reduce(0) { $0 + UInt64($1.start.count + $1.end.count + 24) }
    }
}
