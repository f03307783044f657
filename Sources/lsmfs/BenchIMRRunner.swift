import LSMCommon
import Glibc
import IMRDisk
import KVIMR
import LSMStore

struct BenchIMRConfig {
    var imageBytes: UInt64
    var policy: KVIMRPolicyName
    var valueSize: Int
    var usage: String
    var datasetFraction: Double
    var readFraction: Double
    var tableBytes: Int
    var memtableBytes: Int
    var seed: UInt64
    /// Values of this many bytes or more go to the value log (Int.max: none, LevelDB-like).
    var valueLogThreshold: Int = Int.max
}

/// One phase's figures: operations and the drive's simulated busy time they took.
struct BenchIMRPhase {
    var ops: Int
    var simNanos: UInt64
    var opsPerSimSecond: Double { simNanos == 0 ? 0 : Double(ops) / (Double(simNanos) / 1e9) }
}

struct BenchIMRResult {
    var config: BenchIMRConfig
    var fill: BenchIMRPhase
    var overwrite: BenchIMRPhase
    var read: BenchIMRPhase
    /// fillrandom + overwrite together (the write-intensive figure).
    var writes: BenchIMRPhase { BenchIMRPhase(ops: fill.ops + overwrite.ops, simNanos: fill.simNanos + overwrite.simNanos) }
    var userBytes: UInt64
    var deviceBytesWritten: UInt64
    var driveRmwOps: UInt64        // device-managed RMW (top tracks rewritten by the drive)
    var hostRmwOps: UInt64         // top tracks KVIMR rewrote in merged RMWs
    var mergedRmwOps: UInt64       // merged RMW batches
    var rmwBytes: UInt64
    var peakUsage: Double          // fraction of tracks allocated, peak during overwrite
    var meanUsage: Double          // ... mean during overwrite
    var peakTopUsage: Double       // fraction of top tracks allocated, peak during overwrite
    var meanTopUsage: Double
    /// Where the headline phase's simulated time went (KVIMRStats.io over that phase).
    var breakdown: IOBreakdown
    var wallSeconds: Double

    /// The figure the ratio line compares: fillrandom+overwrite at low usage (write-intensive),
    /// overwrite alone at high usage (the drive is full throughout it).
    var headline: BenchIMRPhase { config.usage == "high" ? overwrite : writes }
    var writeAmp: Double { userBytes == 0 ? 0 : Double(deviceBytesWritten) / Double(userBytes) }
    var progressLine: String {
        let p = config.policy.rawValue + String(repeating: " ", count: max(0, 12 - config.policy.rawValue.count))
        return "  \(config.usage) v=\(config.valueSize) \(p) writes \(imrFmt(writes.opsPerSimSecond, 0)) ops/sim-s, reads \(imrFmt(read.opsPerSimSecond, 0)) ops/sim-s, RMW \(driveRmwOps + hostRmwOps) (merged \(mergedRmwOps)), usage mean \(imrFmt(meanUsage * 100, 0))% peak \(imrFmt(peakUsage * 100, 0))% (\(imrFmt(wallSeconds, 1)) s wall)"
    }
}

func imrFmt(_ x: Double, _ digits: Int) -> String {
    var p = 1.0
    for _ in 0..<digits { p *= 10 }
    let r = (x * p).rounded() / p
    if digits == 0 { return String(Int(r)) }
    var s = String(r)
    if let dot = s.firstIndex(of: ".") {
        let have = s.distance(from: dot, to: s.endIndex) - 1
        if have < digits { s += String(repeating: "0", count: digits - have) }
    }
    return s
}

/// Runs one policy's workloads on a fresh in-memory drive.
struct BenchIMRRunner {
    let c: BenchIMRConfig
    init(_ c: BenchIMRConfig) { self.c = c }

    func run() throws -> BenchIMRResult {
        let started = nowSeconds()
        guard let g = IMRGeometry.fitting(imageBytes: c.imageBytes) else { throw CLIError("drive of \(c.imageBytes) bytes is too small") }
        let device = MemoryTrackDevice(geometry: g, policy: c.policy.rawValue)
        try Stack.wrap { () throws(KVIMRError) in try KVIMR.format(device: device) }
        let kvimr = try Stack.wrap { () throws(KVIMRError) in try KVIMR(device: device) }
        // Full tracks are written before `append` returns, not by the write-behind thread: the
        // drive then sees the same I/O order on every run (simulated time counts drive time
        // only, so the thread would change nothing but the order).
        kvimr.asyncWriteOut = false
        var o = LSMOptions()
        o.targetFileBytes = c.tableBytes
        o.memtableBytes = c.memtableBytes
        o.valueLogThreshold = c.valueLogThreshold
        let store = try Stack.wrap { () throws(LSMError) in try LSMStore(kvimr: kvimr, options: o) }

        let keySize = 16
        let keys = max(1, Int(c.datasetFraction * Double(g.trackBytes)) / (keySize + c.valueSize))
        var rng = SplitMix64(seed: c.seed &+ UInt64(c.valueSize))
        var usageSum = 0.0, usageSamples = 0, peak = 0.0, topSum = 0.0, topPeak = 0.0
        func sample() {
            let s = kvimr.stats()
            let used = Double(s.bottomTracksUsed + s.topTracksUsed) / Double(max(s.tracksTotal, 1))
            let tops = Double(s.topTracksUsed) / Double(max(s.tracksTotal / 2, 1))
            usageSum += used; usageSamples += 1; peak = max(peak, used)
            topSum += tops; topPeak = max(topPeak, tops)
            if trace { traceSpace(kvimr, store, used) }
        }
        // Puts go in write batches of about 64 KiB (db_bench --batch_size): the drive sees the
        // same WAL and table bytes; the engine's per-call overhead stays out of the wall time.
        let batchOps = max(1, 65536 / (keySize + c.valueSize))
        var batch = WriteBatch()
        // Compaction keeps up with the writes: after each memtable flush the bench waits until
        // no compaction is due. The drive is simulated, so without this the backlog of L0 and
        // L1 would depend on how fast the machine's CPU merges, not on the drive — and it would
        // eat the free space the high-usage run needs. Every policy runs the same schedule.
        var flushesSeen: UInt64 = 0
        func flushBatch() throws {
            if batch.isEmpty { return }
            let b = batch
            try Stack.wrap { () throws(LSMError) in try store.write(b) }
            batch = WriteBatch()
            // Wait as soon as a memtable is frozen (not only once its flush is done): the
            // writer then never runs beside a flush or compaction, so the order of drive I/O,
            // and with it the simulated time, is the same on every run and machine.
            let st = store.stats()
            if st.flushes != flushesSeen || st.immutableMemtables > 0 {
                store.waitForBackgroundWork()
                flushesSeen = store.stats().flushes
            }
        }
        func put(_ k: Int) throws {
            var value = [UInt8](repeating: 0, count: c.valueSize)
            for i in stride(from: 0, to: value.count, by: 8) {
                var x = rng.next()
                for j in i..<min(i + 8, value.count) { value[j] = UInt8(truncatingIfNeeded: x); x >>= 8 }
            }
            batch.put(BenchIMRRunner.key(k, keySize), value)
            if batch.count >= batchOps { try flushBatch() }
        }
        let every = max(1, keys / 200)

        // fillrandom: every key once, in random order.
        var order = Array(0..<keys)
        for i in stride(from: keys - 1, to: 0, by: -1) { order.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
        let t0 = device.counters().totalBusyNanos
        let io0 = kvimr.stats().io
        for k in order { try put(k) }
        try flushBatch()
        try Stack.wrap { () throws(LSMError) in try store.sync() }
        store.waitForBackgroundWork()
        let t1 = device.counters().totalBusyNanos
        let io1 = kvimr.stats().io
        // overwrite: as many random keys again.
        for i in 0..<keys {
            try put(Int(rng.next() % UInt64(keys)))
            if i % every == 0 { sample() }
        }
        try flushBatch()
        try Stack.wrap { () throws(LSMError) in try store.sync() }
        store.waitForBackgroundWork()
        sample()
        let t2 = device.counters().totalBusyNanos
        let io2 = kvimr.stats().io
        // readrandom.
        let readOps = max(1, Int(Double(keys) * c.readFraction))
        for _ in 0..<readOps {
            let k = Int(rng.next() % UInt64(keys))
            _ = try Stack.wrap { () throws(LSMError) in try store.get(BenchIMRRunner.key(k, keySize)) }
        }
        let t3 = device.counters().totalBusyNanos

        let s = kvimr.stats()
        let counters = device.counters()
        let result = BenchIMRResult(
            config: c,
            fill: BenchIMRPhase(ops: keys, simNanos: t1 - t0),
            overwrite: BenchIMRPhase(ops: keys, simNanos: t2 - t1),
            read: BenchIMRPhase(ops: readOps, simNanos: t3 - t2),
            userBytes: UInt64(2 * keys * (keySize + c.valueSize)),
            deviceBytesWritten: counters.hostBytesWritten + counters.rmwBytes,
            driveRmwOps: counters.rmwOps, hostRmwOps: s.rmwOps - counters.rmwOps,
            mergedRmwOps: s.mergedRmwOps, rmwBytes: s.rmwBytes,
            peakUsage: peak, meanUsage: usageSamples == 0 ? 0 : usageSum / Double(usageSamples),
            peakTopUsage: topPeak, meanTopUsage: usageSamples == 0 ? 0 : topSum / Double(usageSamples),
            breakdown: io2.since(c.usage == "high" ? io1 : io0),
            wallSeconds: nowSeconds() - started)
        try Stack.wrap { () throws(LSMError) in try store.close() }
        return result
    }

    /// IMR_TRACE=1: where the tracks go (per file kind and level, track fill, pending).
    var trace: Bool { getenv("IMR_TRACE") != nil }

    func traceSpace(_ kvimr: KVIMR, _ store: LSMStore, _ used: Double) {
        var tracks: [String: (files: Int, tracks: Int, bytes: UInt64)] = [:]
        var capacity: UInt64 = 0
        let g = kvimr.device.geometry
        for f in kvimr.files() {
            let key = f.kind == .sstable ? "L\(f.level)" : "\(f.kind)"
            let ex = kvimr.extents(f.number) ?? []
            var cur = tracks[key] ?? (0, 0, 0)
            cur.files += 1; cur.tracks += ex.count; cur.bytes += f.size
            tracks[key] = cur
            for e in ex { capacity += UInt64(g.sectors(of: e.track) * g.sectorSize) }
        }
        let s = kvimr.stats()
        var line = "trace used \(imrFmt(used * 100, 1))% free \(s.freeBytes >> 20) MiB "
        for (k, v) in tracks.sorted(by: { $0.key < $1.key }) {
            line += "\(k): \(v.files)f/\(v.tracks)t/\(v.bytes >> 20)MiB "
        }
        let st = store.stats()
        line += "| imm \(st.immutableMemtables) levels " + st.levels.map { "\($0.files)/\($0.bytes >> 20)" }.joined(separator: " ")
        printError(line)
    }

    static func key(_ k: Int, _ size: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0x30, count: size)
        var x = k, i = size - 1
        while x > 0 && i >= 0 { out[i] = UInt8(0x30 + x % 10); x /= 10; i -= 1 }
        return out
    }
}
