import Synchronization

/// Engine counters behind `stats()`; relaxed atomics, updated on the hot paths.
final class Counters: Sendable {
    let flushes = Atomic<UInt64>(0)
    let compactions = Atomic<UInt64>(0)
    let userBytesWritten = Atomic<UInt64>(0)
    let tableBytesWritten = Atomic<UInt64>(0)
    let walBytesWritten = Atomic<UInt64>(0)
    let gets = Atomic<UInt64>(0)
    let tablesProbed = Atomic<UInt64>(0)
    let bloomChecks = Atomic<UInt64>(0)
    let bloomNegatives = Atomic<UInt64>(0)
    let stallMicros = Atomic<UInt64>(0)

}

extension Atomic where Value == UInt64 {
    func bump(_ n: UInt64 = 1) { add(n, ordering: .relaxed) }
    var value: UInt64 { load(ordering: .relaxed) }
}

extension Engine {
    func stats() -> LSMStats {
        let (mem, imms, v, seq) = state.withLock { s in (s.mem.approximateBytes, s.imms.count, s.version, s.lastSequence) }
        let c = counters
        let user = c.userBytesWritten.value
        let gets = c.gets.value
        var st = LSMStats(
            levels: v.levels.indices.map { LSMStats.Level(files: v.levels[$0].count, bytes: v.bytes($0)) },
            memtableBytes: mem, immutableMemtables: imms, sequence: seq,
            flushes: c.flushes.value, compactions: c.compactions.value,
            userBytesWritten: user, tableBytesWritten: c.tableBytesWritten.value,
            walBytesWritten: c.walBytesWritten.value, gets: gets, tablesProbed: c.tablesProbed.value,
            bloomChecks: c.bloomChecks.value, bloomNegatives: c.bloomNegatives.value,
            blockCacheHits: blockCache.hits.load(ordering: .relaxed),
            blockCacheMisses: blockCache.misses.load(ordering: .relaxed),
            stallMicros: c.stallMicros.value,
            writeAmplification: user == 0 ? 0 : Double(c.walBytesWritten.value + c.tableBytesWritten.value) / Double(user),
            readAmplification: gets == 0 ? 0 : Double(c.tablesProbed.value) / Double(gets))
        fillValueLogStats(&st, v)
        fillGCStats(&st.vlog)
        return st
    }
}
