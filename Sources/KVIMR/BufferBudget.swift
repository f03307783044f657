/// A memory budget for KVIMR's write buffers.
///
/// Appended bytes wait in a per-file buffer until a sync, a seal, or the policy's early
/// write-out of whole tracks (`writeOutTracks`: 4 tracks, about 9 MiB per file, under
/// `kvimr`). Several files fill at once (the WAL, a flush's table, a compaction's outputs, a
/// value-log segment), so without a bound the buffers add tens of MiB to the process beside
/// the engine's own budget. Once all buffers together hold more than `bufferBudget`, the
/// largest are written out — tail included, as a sync would, but without a checkpoint —
/// until they hold at most half of it. Durability is unchanged: bytes on tracks become
/// durable only with the next checkpoint, and a later write-out rewrites the partial last
/// sector whole. Pages kept for reuse (`PagePool`, at most 10 MiB) count in the peak, not
/// in the budget.
extension KVIMRCore {
    /// 32 MiB: room for the policy's early write-out of three files at once.
    static let defaultBufferBudget: UInt64 = 32 << 20

    /// Memory held by all write buffers.
    var bufferedMemory: UInt64 { buffers.values.reduce(0) { $0 + $1.memoryBytes } }

    mutating func enforceBufferBudget() {
        var total = bufferedMemory
        peakBuffered = max(peakBuffered, total + pagePool.memoryBytes)
        guard bufferBudget > 0, total > bufferBudget else { return }
        for (n, _) in buffers.sorted(by: { $0.value.memoryBytes > $1.value.memoryBytes }) {
            guard total > bufferBudget / 2 else { break }
            // A failure leaves the bytes buffered; the next sync reports it.
            _ = try? writeOut(n, includeTail: true)
            total = bufferedMemory
        }
    }
}
