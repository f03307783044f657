import Foundation
import IMRDisk
import KVIMR
import LSMStore
import Synchronization

/// `bench kv`'s value-log (WiscKey) flags. db_bench's BlobDB flags map onto LSMOptions:
///   --enable_blob_files=true      values of at least --min_blob_size bytes (db_bench's
///                                 default 0: every value) go to the value log;
///   --enable_blob_files absent    or false: the engine's default threshold applies
///                                 (LSMOptions.valueLogThreshold, 2048) — our value log is
///                                 always on, as in WiscKey; --vlog_threshold=max turns it off;
///   --blob_file_size=N            value-log segment size (LSMOptions.valueLogSegmentBytes);
///   --enable_blob_garbage_collection=false   no background GC (true or absent: on, at
///                                 --gc_garbage_ratio, default LSMOptions.gcGarbageRatio);
///   --blob_garbage_collection_age_cutoff     accepted, not mapped: RocksDB relocates the
///                                 blobs of the oldest fraction of files, our GC picks the
///                                 segments with the most garbage.
struct BenchKVValueLogFlags {
    var enableBlobFiles: Bool?
    var minBlobSize = 0
    var blobFileSize: Int?
    var enableBlobGC: Bool?
    var ageCutoff: Double?
    /// Ours: an explicit threshold (Int.max: off), over the blob flags.
    var threshold: Int?
    var gcGarbageRatio: Double?
    var gcBytesPerSecond: Int?

    func apply(to o: inout LSMOptions) {
        if let t = threshold {
            o.valueLogThreshold = t
        } else if enableBlobFiles == true {
            o.valueLogThreshold = max(minBlobSize, 0)
        }
        if let n = blobFileSize { o.valueLogSegmentBytes = n }
        if let r = gcGarbageRatio { o.gcGarbageRatio = r }
        if enableBlobGC == false { o.gcGarbageRatio = 2 }   // > 1: background GC off
        if let b = gcBytesPerSecond { o.gcBytesPerSecond = b }
    }

    /// The header line: what the run's value log does and where each setting came from.
    var summary: String {
        var o = LSMOptions()
        apply(to: &o)
        let source = threshold != nil ? "--vlog_threshold"
            : enableBlobFiles == true ? "--enable_blob_files --min_blob_size"
            : "engine default; --enable_blob_files not given"
        let t = o.valueLogThreshold == .max ? "off" : "values >= \(o.valueLogThreshold) B"
        let gc = o.gcGarbageRatio > 1 || o.gcGarbageRatio <= 0 ? "background GC off"
            : String(format: "background GC at garbage ratio %.2f, %@/s", o.gcGarbageRatio, formatBytes(UInt64(max(o.gcBytesPerSecond, 0))))
        var s = "\(t) (\(source)), segments of \(formatBytes(UInt64(max(o.valueLogSegmentBytes, 0)))), \(gc)"
        if ageCutoff != nil { s += " (--blob_garbage_collection_age_cutoff not mapped: GC picks the most garbage)" }
        return s
    }
}

extension BenchKVConfig {
    /// Parses one value-log flag; false when `name` is not one.
    mutating func parseValueLogFlag(_ name: String, _ value: String) throws -> Bool {
        func double() throws -> Double {
            guard let v = Double(value), v.isFinite else { throw CLIError("--\(name): '\(value)' is not a number") }
            return v
        }
        switch name {
        case "enable_blob_files": valueLog.enableBlobFiles = try BenchKVConfig.bool(name, value)
        case "min_blob_size":
            valueLog.minBlobSize = try BenchKVConfig.int(name, value)
            guard valueLog.minBlobSize >= 0 else { throw CLIError("--min_blob_size must be >= 0") }
        case "blob_file_size":
            let n = try BenchKVConfig.int(name, value)
            guard n >= 4096 else { throw CLIError("--blob_file_size must be at least 4096") }
            valueLog.blobFileSize = n
        case "enable_blob_garbage_collection": valueLog.enableBlobGC = try BenchKVConfig.bool(name, value)
        case "blob_garbage_collection_age_cutoff":
            let v = try double()
            guard v >= 0, v <= 1 else { throw CLIError("--\(name) must be in [0, 1]") }
            valueLog.ageCutoff = v
        case "vlog_threshold":
            if value == "max" || value == "off" { valueLog.threshold = .max; break }
            let n = try BenchKVConfig.int(name, value)
            guard n >= 0 else { throw CLIError("--vlog_threshold must be >= 0 (or max)") }
            valueLog.threshold = n
        case "gc_garbage_ratio":
            let v = try double()
            guard v >= 0 else { throw CLIError("--gc_garbage_ratio must be >= 0 (> 1: off)") }
            valueLog.gcGarbageRatio = v
        case "gc_bytes_per_second":
            let n = try BenchKVConfig.int(name, value)
            guard n > 0 else { throw CLIError("--gc_bytes_per_second must be > 0") }
            valueLog.gcBytesPerSecond = n
        // db_bench flags that only choose RocksDB's blob format or cache: nothing to map.
        case "blob_compression_type", "blob_file_starting_level", "use_blob_cache", "blob_cache_size",
             "blob_garbage_collection_force_threshold", "blob_compaction_readahead_size":
            warnings.append("--\(name): RocksDB BlobDB setting without an equivalent here; ignored")
        default: return false
        }
        return true
    }
}

/// The key numbers that hold a value (fills and overwrites set, deletes clear), for the
/// space measurement: live data = live keys × (key + value size).
final class BenchKVLiveKeys: Sendable {
    private let bits: Mutex<[UInt64]>
    init(num: Int) { bits = Mutex([UInt64](repeating: 0, count: (num + 63) / 64)) }
    func insert(_ n: Int) { bits.withLock { $0[n >> 6] |= 1 << UInt64(n & 63) } }
    func remove(_ n: Int) { bits.withLock { $0[n >> 6] &= ~(1 << UInt64(n & 63)) } }
    func reset() { bits.withLock { for i in $0.indices { $0[i] = 0 } } }
    var count: Int { bits.withLock { $0.reduce(0) { $0 + $1.nonzeroBitCount } } }
}

/// Everything a benchmark's value-log line compares: the engine's and KVIMR's counters.
struct BenchKVCounters {
    var lsm: LSMStats
    var kvimr: KVIMRStats
    init(_ store: LSMStore) { lsm = store.stats(); kvimr = store.kvimr.stats() }

    /// Bytes the drive wrote: host track writes, its own read-modify-write rewrites of top
    /// tracks, and meta-zone writes (track-map checkpoints, RMW journal).
    var deviceBytesWritten: UInt64 {
        let d = kvimr.device
        return d.bottom.bytesWritten &+ d.top.bytesWritten &+ d.bottom.rmwBytes &+ d.top.rmwBytes &+ d.metaBytesWritten
    }
    var hostBytesWritten: UInt64 { kvimr.device.bottom.bytesWritten &+ kvimr.device.top.bytesWritten }
    /// File bytes KVIMR holds (on tracks or still buffered): WAL, manifest, SSTables, vLog.
    var storedBytes: UInt64 { kvimr.bytesStored &+ kvimr.bytesBuffered }
}

extension BenchKVRunner {
    /// One line after a benchmark's db_bench line: value-log bytes written, the vLog's state,
    /// and device write amplification (drive bytes written / user bytes).
    func printValueLog(_ a: BenchKVCounters, _ b: BenchKVCounters) {
        let user = b.lsm.userBytesWritten &- a.lsm.userBytesWritten
        let vlogWritten = (b.lsm.vlog.valueBytesWritten &- a.lsm.vlog.valueBytesWritten)
            &+ (b.lsm.vlog.gcBytesMoved &- a.lsm.vlog.gcBytesMoved)
        let v = b.lsm.vlog
        var parts = [String(format: "vlog %@ written, %d segments, %@ total, garbage %.1f%%",
                            formatBytes(vlogWritten), v.segments, formatBytes(v.totalBytes),
                            v.totalBytes == 0 ? 0 : 100 * Double(v.garbageBytes) / Double(v.totalBytes))]
        if v.gcRuns > a.lsm.vlog.gcRuns {
            parts.append("\(v.gcRuns - a.lsm.vlog.gcRuns) GC runs freed \(v.gcSegmentsFreed - a.lsm.vlog.gcSegmentsFreed) segments")
        }
        if user > 0 {
            let dev = b.deviceBytesWritten &- a.deviceBytesWritten
            let host = b.hostBytesWritten &- a.hostBytesWritten
            parts.append(String(format: "device write-amp %.2f (host writes %.2f)", Double(dev) / Double(user), Double(host) / Double(user)))
        }
        print("             : " + parts.joined(separator: ", "))
    }

    /// The `gc` pseudo-benchmark: waits for flushes and compactions (they account the garbage),
    /// collects every segment with garbage, and prints what it did and the space line.
    func runGC(_ store: LSMStore) throws {
        store.waitForBackgroundWork()
        let before = store.stats().vlog
        let start = nowSeconds()
        let r: GCResult
        do throws(LSMError) {
            r = try store.collectGarbage()
        } catch {
            print("gc           : not run: \(error.message)")
            printSpace(store)
            return
        }
        store.waitForBackgroundWork()
        let after = store.stats().vlog
        print(String(format: "gc           : %.3f s, freed %d segments (%@), moved %@; vlog garbage %@ -> %@",
                     nowSeconds() - start, r.segmentsFreed, formatBytes(r.bytesFreed), formatBytes(r.bytesMoved),
                     formatBytes(before.garbageBytes), formatBytes(after.garbageBytes)))
        printSpace(store)
    }

    /// Space used on the drive (KVIMR file bytes) over the live data (live keys × entry size).
    func printSpace(_ store: LSMStore) {
        let c = BenchKVCounters(store)
        let liveKeys = live.count
        let liveBytes = UInt64(liveKeys) * UInt64(config.keySize + config.valueSize)
        var line = "space        : \(formatBytes(c.storedBytes)) stored (KVIMR files)"
        if config.useExistingDB {
            line += ", live data unknown (--use_existing_db)"
        } else {
            line += ", \(formatBytes(liveBytes)) live data (\(liveKeys) keys)"
            if liveBytes > 0 { line += String(format: ", space-amp %.2f", Double(c.storedBytes) / Double(liveBytes)) }
        }
        let v = c.lsm.vlog
        line += "; vlog \(formatBytes(v.totalBytes)) in \(v.segments) segments, \(formatBytes(v.garbageBytes)) garbage"
        print(line)
    }
}
