/// A consistent, read-only view of the store at one sequence number. It keeps the memtables
/// and tables of that moment alive (flushes and compactions do not touch them) until released,
/// so hold snapshots briefly.
public final class LSMSnapshot: Sendable {
    let engine: Engine
    let view: Engine.View

    init(engine: Engine, view: Engine.View) { self.engine = engine; self.view = view }

    /// The sequence number of the last write the snapshot sees.
    public var sequence: UInt64 { view.sequence }

    public func get(_ key: [UInt8]) throws(LSMError) -> [UInt8]? { try engine.get(key, in: view) }

    /// Like `LSMStore.scan`, on the snapshot's view.
    public func scan(from start: [UInt8], to end: [UInt8]?, _ visit: (_ key: [UInt8], _ value: [UInt8]) -> Bool) throws(LSMError) {
        try engine.scan(view, from: start, to: end, visit)
    }
}

extension LSMStore {
    /// A consistent view of the store now (DESIGN §4 `snapshot()`).
    public func snapshot() throws(LSMError) -> LSMSnapshot {
        LSMSnapshot(engine: engine, view: try engine.view())
    }

    /// Freezes the memtable and waits until it (and everything frozen before it) is in tables.
    public func flush() throws(LSMError) { try engine.flushAll() }
}

extension Engine {
    func flushAll() throws(LSMError) {
        if readOnly { throw LSMError(.readOnly, "store is read-only") }
        try writer.withLock { (w: inout WriterState) throws(LSMError) in
            if let f = w.failed { throw f }
            if !state.withLock({ $0.mem.isEmpty }) { try switchMemtable(&w) }
        }
        while true {
            let g = signal.generation
            let (pending, err, closed) = state.withLock { s in (!s.imms.isEmpty, s.bgError, s.closed) }
            if closed { throw LSMError(.closed, "store is closed") }
            if let err { throw err }
            if !pending { return }
            maybeScheduleBackground()
            signal.wait(past: g)
        }
    }
}

extension LSMStore {
    /// For tests and fsck: nil if the current version is well formed, else the problem.
    package func versionInvariantViolation() -> String? {
        engine.state.withLock { $0.version }.invariantViolation(allowOverlap: engine.options.compactionStyle != .leveled)
    }
}
