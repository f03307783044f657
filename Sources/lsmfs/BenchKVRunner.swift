import Dispatch
import Foundation
import IMRDisk
import KVIMR
import LSMStore

/// Runs the db_bench workloads of one `bench kv` invocation on one image, printing one
/// db_bench result line per benchmark plus the engine's amplification and the peak RSS.
final class BenchKVRunner {
    let config: BenchKVConfig
    var store: LSMStore?
    /// Keys holding a value (for the space measurement; reset by a fresh fill).
    let live: BenchKVLiveKeys

    init(_ config: BenchKVConfig) { self.config = config; live = BenchKVLiveKeys(num: config.num) }

    func run() throws {
        baselineRSS = currentRSSBytes()
        for w in config.warnings { printError("lsmfs bench kv: \(w)") }
        let c = config
        print("Keys:       \(c.keySize) bytes each")
        print("Values:     \(c.valueSize) bytes each")
        print("Entries:    \(c.num)")
        print("Image:      \(c.db) (\(formatBytes(c.imageSize)), policy \(c.policy))")
        print("Options:    sync=\(c.sync) bloom_bits=\(c.bloomBits) cache_size=\(c.cacheSize) write_buffer_size=\(c.writeBufferSize) threads=\(c.threads) level0 trigger/slowdown/stop=\(c.l0Trigger)/\(c.l0Slowdown)/\(c.l0Stop) level base/file=\(c.maxBytesForLevelBase.map(String.init) ?? "default")/\(c.targetFileSizeBase.map(String.init) ?? "default") compaction=\(c.compactionStyle == 1 ? "tiered T=\(c.tieringSizeRatio)" : "leveled")")
        print("Value log:  \(c.valueLog.summary)")
        print("------------------------------------------------")
        defer { if let s = store { try? s.close() } }
        if c.useExistingDB { try open(fresh: false) }
        for (index, name) in c.benchmarks.enumerated() {
            let fresh = (name == "fillseq" || name == "fillrandom") && !c.useExistingDB
            if fresh || store == nil { try open(fresh: fresh) }
            try runOne(name, index: index)
        }
        if let s = store, c.benchmarks.last != "gc" { printSpace(s) }
        if let s = store {
            try Stack.wrap { () throws(LSMError) in try s.close() }
            store = nil
        }
        print(String(format: "peak RSS: %.1f MB", Double(peakRSSBytes()) / 1048576))
        if let b = budget { printBudget(b) }
    }

    /// The store's memory budget, as configured (largest seen over the run: the open tables
    /// grow with the data).
    var budget: LSMMemoryBudget?
    /// The process before the store opened (runtime, binary, libraries).
    var baselineRSS: UInt64 = 0

    func noteBudget() {
        guard let b = store?.memoryBudget() else { return }
        if budget == nil || b.total > budget!.total { budget = b }
    }

    func printBudget(_ b: LSMMemoryBudget) {
        func mib(_ x: UInt64) -> String { String(format: "%.1f", Double(x) / 1048576) }
        let rss = peakRSSBytes(), store = rss - min(rss, baselineRSS)
        print("memory budget: memtables \(mib(b.memtables)) + block cache \(mib(b.blockCache)) + KVIMR buffers \(mib(b.kvimrBuffers))"
              + " + open tables \(mib(b.openTables)) = \(mib(b.total)) MiB; peak RSS \(mib(rss)) MiB = process before"
              + " opening \(mib(baselineRSS)) + store \(mib(store))"
              + String(format: " (%.0f%% of the budget)", 100 * Double(store) / Double(max(b.total, 1))))
    }

    func open(fresh: Bool) throws {
        if let s = store { try Stack.wrap { () throws(LSMError) in try s.close() }; store = nil }
        let c = config
        let device: ImageTrackDevice
        if fresh || access(c.db, F_OK) != 0 {
            device = try Stack.wrap { () throws(DeviceError) in
                try ImageTrackDevice.create(path: c.db, size: c.imageSize, policy: c.policy, overwrite: true)
            }
            try Stack.wrap { () throws(KVIMRError) in try KVIMR.format(device: device) }
        } else {
            device = try Stack.wrap { () throws(DeviceError) in try ImageTrackDevice.open(path: c.db) }
        }
        let kvimr = try Stack.wrap { () throws(KVIMRError) in try KVIMR(device: device) }
        if let b = c.kvimrBufferBudget { kvimr.bufferBudgetBytes = b }
        var options = LSMOptions()
        options.bloomBitsPerKey = c.bloomBits
        options.blockCacheBytes = c.cacheSize
        options.memtableBytes = c.writeBufferSize
        options.l0CompactionTrigger = c.l0Trigger
        options.l0SlowdownTrigger = c.l0Slowdown
        options.l0StopTrigger = c.l0Stop
        options.compactionStyle = c.style
        if let b = c.maxBytesForLevelBase { options.baseLevelBytes = b }
        if let t = c.targetFileSizeBase { options.targetFileBytes = t }
        c.valueLog.apply(to: &options)
        if fresh { live.reset() }
        store = try Stack.wrap { () throws(LSMError) in try LSMStore(kvimr: kvimr, options: options) }
    }

    /// `index` varies the random seed per benchmark, as db_bench does, so readrandom does not
    /// replay exactly the keys fillrandom wrote.
    func runOne(_ name: String, index: Int) throws {
        guard let store else { return }
        if name == "stats" { printStats(store); return }
        if name == "gc" { try runGC(store); return }
        let beforeAll = BenchKVCounters(store)
        let before = beforeAll.lsm
        let c = config
        let start = nowSeconds()
        let results = BenchKVResults()
        let failure = BenchKVFailure()
        let live = self.live
        DispatchQueue.concurrentPerform(iterations: c.threads) { t in
            var w = BenchKVWorker(config: c, store: store, live: live, thread: t, stream: index)
            do {
                let (ops, bytes, found) = try w.run(name)
                results.add(ops: ops, bytes: bytes, found: found)
            } catch {
                failure.set(Stack.describe(error))
            }
        }
        if let f = failure.message { throw CLIError("\(name): \(f)") }
        let elapsed = nowSeconds() - start
        let (ops, bytes, found) = results.totals
        let afterAll = BenchKVCounters(store)
        let after = afterAll.lsm
        var extra = ""
        if bytes > 0 { extra += String(format: " %6.1f MB/s", Double(bytes) / 1048576 / elapsed) }
        if name == "readrandom" || name == "seekrandom" { extra += " (\(found) of \(ops) found)" }
        let microsPerOp = elapsed * 1e6 / Double(max(ops, 1)) * Double(c.threads)
        let padded = name.count >= 12 ? name : name + String(repeating: " ", count: 12 - name.count)
        let line = padded + String(format: " : %11.3f micros/op %ld ops/sec;", microsPerOp, Int(Double(ops) / elapsed)) + extra
        print(line)
        printAmplification(before, after)
        printValueLog(beforeAll, afterAll)
        noteBudget()
        fflush(nil)
    }

    /// Write amplification: bytes written by the engine (WAL + tables + value log, GC moves
    /// included) per user byte, during this benchmark. Read amplification: SSTables whose blocks a get read, per get.
    func printAmplification(_ a: LSMStats, _ b: LSMStats) {
        let user = b.userBytesWritten &- a.userBytesWritten
        let written = (b.walBytesWritten &- a.walBytesWritten) &+ (b.tableBytesWritten &- a.tableBytesWritten)
            &+ (b.vlog.valueBytesWritten &- a.vlog.valueBytesWritten) &+ (b.vlog.gcBytesMoved &- a.vlog.gcBytesMoved)
        let gets = b.gets &- a.gets
        let probed = b.tablesProbed &- a.tablesProbed
        var parts: [String] = []
        if user > 0 { parts.append(String(format: "write-amp %.2f", Double(written) / Double(user))) }
        if gets > 0 {
            parts.append(String(format: "read-amp %.2f tables/get", Double(probed) / Double(gets)))
            let checks = b.bloomChecks &- a.bloomChecks
            if checks > 0 {
                parts.append(String(format: "bloom negatives %.1f%%", 100 * Double(b.bloomNegatives &- a.bloomNegatives) / Double(checks)))
            }
        }
        let hits = b.blockCacheHits &- a.blockCacheHits, misses = b.blockCacheMisses &- a.blockCacheMisses
        if hits + misses > 0 { parts.append(String(format: "cache hit %.1f%%", 100 * Double(hits) / Double(hits + misses))) }
        if b.stallMicros > a.stallMicros { parts.append(String(format: "stall %.2f s", Double(b.stallMicros - a.stallMicros) / 1e6)) }
        parts.append(String(format: "peak RSS %.1f MB", Double(peakRSSBytes()) / 1048576))
        print("             : " + parts.joined(separator: ", "))
    }

    func printStats(_ store: LSMStore) {
        let s = store.stats()
        print("** LSMStore stats **")
        for (i, l) in s.levels.enumerated() where l.files > 0 {
            print(String(format: "  L%d: %4d files %10.1f MB", i, l.files, Double(l.bytes) / 1048576))
        }
        print("  flushes \(s.flushes), compactions \(s.compactions), write-amp \(String(format: "%.2f", s.writeAmplification)), read-amp \(String(format: "%.2f", s.readAmplification))")
    }
}

func nowSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// Totals summed over the benchmark's threads.
final class BenchKVResults: @unchecked Sendable {
    private let lock = NSLock()
    private var ops = 0, bytes = 0, found = 0
    func add(ops: Int, bytes: Int, found: Int) {
        lock.lock(); self.ops += ops; self.bytes += bytes; self.found += found; lock.unlock()
    }
    var totals: (Int, Int, Int) { lock.lock(); defer { lock.unlock() }; return (ops, bytes, found) }
}

/// The first error a benchmark thread hit.
final class BenchKVFailure: @unchecked Sendable {
    private let lock = NSLock()
    private var first: String?
    func set(_ m: String) { lock.lock(); if first == nil { first = m }; lock.unlock() }
    var message: String? { lock.lock(); defer { lock.unlock() }; return first }
}
