import KVIMR

public struct LSMOptions: Sendable {
    /// A memtable is frozen and flushed when it holds this many bytes.
    public var memtableBytes: Int = 4 << 20
    public var blockSize: Int = 4096
    public var bloomBitsPerKey: Int = 10
    public var targetFileBytes: Int = 2 << 20
    public var l0CompactionTrigger: Int = 4
    /// L0 files at which each write is delayed by 1 ms (nil: max(2 × trigger, trigger + 2)).
    public var l0SlowdownTrigger: Int? = nil
    /// L0 files at which writers stop until compaction catches up (nil: max(3 × trigger, trigger + 4)).
    public var l0StopTrigger: Int? = nil
    public var levelSizeMultiplier: Int = 10
    /// Leveled (default) or tiered merging of sorted runs (TieringPolicy.swift).
    public var compactionStyle: CompactionStyle = .leveled
    public var baseLevelBytes: Int = 10 << 20
    public var maxLevels: Int = 7
    public var blockCacheBytes: Int = 8 << 20
    /// Open SSTables kept (each holds its index and Bloom filter in memory).
    public var maxOpenTables: Int = 1000
    /// Values of at least this many bytes go to the value log (WiscKey); the tree keeps a
    /// pointer. `Int.max` keeps every value in the tree. 2048: the smallest size at which
    /// separating won every benchmark measured (docs/format/vlog.md, "Threshold").
    public var valueLogThreshold: Int = 2048
    /// A value-log segment is sealed and a new one started once it holds this many bytes.
    public var valueLogSegmentBytes: Int = 64 << 20
    /// Background garbage collection starts when garbage / total vLog bytes passes this, and
    /// collects until it is half that (0, or more than 1, turns background GC off).
    public var gcGarbageRatio: Double = 0.5
    /// Background garbage collection moves at most this many bytes per second (0: no limit).
    public var gcBytesPerSecond: Int = 64 << 20
    public init() {}
}

/// The value log (WiscKey) at a glance: `LSMStats.vlog`.
public struct VLogStats: Sendable {
    public var segments: Int = 0
    public var totalBytes: UInt64 = 0          // bytes of every segment on the drive
    public var liveBytes: UInt64 = 0           // total less garbage
    public var garbageBytes: UInt64 = 0        // records no pointer in the tree refers to
    public var valuesWritten: UInt64 = 0       // values appended by writes (not GC moves)
    public var valueBytesWritten: UInt64 = 0   // record bytes appended by writes
    public var gcRuns: UInt64 = 0
    public var gcSegmentsFreed: UInt64 = 0
    public var gcBytesMoved: UInt64 = 0        // live record bytes rewritten at the head by GC
    public var gcBytesFreed: UInt64 = 0        // segment bytes returned to KVIMR by GC
    public var checksumErrors: UInt64 = 0      // records that failed their CRC or key check
    public init() {}
}

/// What one garbage-collection call did.
public struct GCResult: Sendable {
    public var segmentsFreed: Int = 0
    public var bytesMoved: UInt64 = 0
    public var bytesFreed: UInt64 = 0
    public init() {}
}

public struct LSMError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        case io, corrupt, noSpace, closed, readOnly, invalidArgument
    }
    public var kind: Kind
    public var message: String
    public init(_ kind: Kind, _ message: String) { self.kind = kind; self.message = message }
    public var description: String { message }
    /// The errno a filesystem should report for this error.
    public var errno: Int32 {
        switch kind {
        case .noSpace: return 28 // ENOSPC
        case .readOnly: return 30 // EROFS
        case .invalidArgument: return 22 // EINVAL
        default: return 5 // EIO
        }
    }
}

/// An atomic group of updates, applied in order.
public struct WriteBatch: Sendable {
    public enum Op: Sendable {
        case put([UInt8], [UInt8])
        case delete([UInt8])
        /// Deletes every key in [start, end).
        case deleteRange([UInt8], [UInt8])
    }
    public private(set) var ops: [Op] = []
    public init() {}
    public mutating func put(_ key: [UInt8], _ value: [UInt8]) { ops.append(.put(key, value)) }
    public mutating func delete(_ key: [UInt8]) { ops.append(.delete(key)) }
    public mutating func deleteRange(_ start: [UInt8], _ end: [UInt8]) { ops.append(.deleteRange(start, end)) }
    public var count: Int { ops.count }
    public var isEmpty: Bool { ops.isEmpty }
}

public struct LSMStats: Sendable {
    public struct Level: Sendable { public var files: Int; public var bytes: UInt64 }
    public var levels: [Level]
    public var memtableBytes: Int
    public var immutableMemtables: Int
    public var sequence: UInt64
    public var flushes: UInt64
    public var compactions: UInt64
    public var userBytesWritten: UInt64      // keys+values accepted by put/write
    public var tableBytesWritten: UInt64     // SSTable bytes written by flush + compaction
    public var walBytesWritten: UInt64
    public var gets: UInt64
    public var tablesProbed: UInt64          // SSTables whose blocks a get read
    public var bloomChecks: UInt64
    public var bloomNegatives: UInt64        // lookups a Bloom filter answered "absent"
    public var blockCacheHits: UInt64
    public var blockCacheMisses: UInt64
    public var stallMicros: UInt64
    /// Device bytes written per user byte (WAL + tables) / user bytes.
    public var writeAmplification: Double
    /// Average tables probed per get.
    public var readAmplification: Double
    /// The value log.
    public var vlog = VLogStats()
}

/// A leveled LSM-tree key-value store on KVIMR files. Keys and values are byte strings,
/// ordered by memcmp. Thread-safe; writes are serialized, reads run concurrently.
///
/// The engine is split by concept: `Memtable` (skiplist), `LogWriter`/`LogReader` (WAL and
/// manifest framing), `BatchCodec`, `BlockBuilder`/`Block`, `Bloom`, `TableBuilder`/`Table`,
/// `Version`/`VersionEdit`/`ManifestLog`, `LeveledPolicy`, and `Engine` (write path, read
/// path, background flush and compaction, recovery). Formats: docs/format/{wal,sstable,manifest}.md.
public final class LSMStore: Sendable {
    let engine: Engine

    /// Opens the store on `kvimr` (recovery: track map root → manifest → WAL replay),
    /// creating an empty one if the root is empty.
    public init(kvimr: KVIMR, options: LSMOptions = LSMOptions(), readOnly: Bool = false) throws(LSMError) {
        engine = try Engine.open(kvimr: kvimr, options: options, readOnly: readOnly)
    }

    public func get(_ key: [UInt8]) throws(LSMError) -> [UInt8]? { try engine.get(key) }
    public func put(_ key: [UInt8], _ value: [UInt8], sync: Bool = false) throws(LSMError) {
        var b = WriteBatch(); b.put(key, value); try engine.write(b, sync: sync)
    }
    public func delete(_ key: [UInt8], sync: Bool = false) throws(LSMError) {
        var b = WriteBatch(); b.delete(key); try engine.write(b, sync: sync)
    }
    public func deleteRange(_ start: [UInt8], _ end: [UInt8], sync: Bool = false) throws(LSMError) {
        var b = WriteBatch(); b.deleteRange(start, end); try engine.write(b, sync: sync)
    }
    /// Applies the batch atomically: after a crash either all of it or none of it is visible.
    public func write(_ batch: WriteBatch, sync: Bool = false) throws(LSMError) { try engine.write(batch, sync: sync) }
    /// Visits live keys in [start, end) (end nil = to the last key) in ascending order, on a
    /// consistent view taken at the call; `visit` returns false to stop early.
    public func scan(from start: [UInt8], to end: [UInt8]?, _ visit: (_ key: [UInt8], _ value: [UInt8]) -> Bool) throws(LSMError) {
        try engine.scan(try engine.view(), from: start, to: end, visit)
    }
    /// Every write accepted before the call survives a crash once it returns.
    public func sync() throws(LSMError) { try engine.sync() }
    /// Flushes the memtable, waits for background work, syncs and closes KVIMR.
    public func close() throws(LSMError) { try engine.close() }
    public func stats() -> LSMStats { engine.stats() }
    public var kvimr: KVIMR { engine.kvimr }

    /// Garbage-collects value-log segments whose garbage ratio is at least `minGarbageRatio`,
    /// most garbage first, at most `maxSegments` of them: moves their live values to the head,
    /// updates the pointers in one batch and frees each segment once that is durable.
    @discardableResult
    public func collectGarbage(minGarbageRatio: Double = 0, maxSegments: Int = .max) throws(LSMError) -> GCResult {
        try engine.collectGarbage(minGarbageRatio: minGarbageRatio, maxSegments: maxSegments)
    }

    /// Blocks until no flush or compaction is pending (tests, benchmarks, `lsmfs bench`).
    public func waitForBackgroundWork() { engine.waitIdle() }
}
