// Owned by vlog-gc (issue 5): replace this file with the real garbage collector.
extension Engine {
    func collectGarbage(minGarbageRatio: Double, maxSegments: Int) throws(LSMError) -> GCResult {
        throw LSMError(.invalidArgument, "value-log garbage collection is not built yet")
    }
}

extension Engine {
    /// Starts background GC when garbage passes `options.gcGarbageRatio` (being built).
    func maybeScheduleGC() {}
}
