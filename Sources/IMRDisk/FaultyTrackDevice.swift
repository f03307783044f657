import Synchronization

/// A fault-injecting wrapper over any `TrackDevice` (after Pebble's errorfs): operations pass
/// through to `base` unless a `FaultRule` fires, in which case the operation fails with
/// `.injected` (nothing done), or — for a torn write — only a prefix of its sectors reaches
/// `base` before it fails. `trim` and `counters` always pass through.
public final class FaultyTrackDevice: TrackDevice, @unchecked Sendable {
    private struct State {
        var rules: [ArmedRule] = []
        var nextID = 1
        var injected = 0
        var writesPassed = 0
    }
    public let base: TrackDevice
    private let state = Mutex(State())

    public init(_ base: TrackDevice, rules: [FaultRule] = []) {
        self.base = base
        for r in rules { inject(r) }
    }

    /// Adds a rule; returns its id for `remove`.
    @discardableResult public func inject(_ rule: FaultRule) -> Int {
        state.withLock { s in
            let id = s.nextID; s.nextID += 1
            s.rules.append(ArmedRule(id: id, rule: rule, writesPassed: s.writesPassed))
            return id
        }
    }

    public func remove(_ id: Int) { state.withLock { $0.rules.removeAll { $0.id == id } } }
    public func removeAllRules() { state.withLock { $0.rules.removeAll() } }

    /// How many operations have failed by injection so far.
    public var injectedCount: Int { state.withLock { $0.injected } }

    /// The effect to apply to `op`, if any rule fires (every matching rule counts the op).
    private func check(_ op: FaultRule.Operation, track: Int? = nil) -> FaultRule.Effect? {
        state.withLock { s in
            var effect: FaultRule.Effect? = nil
            for i in s.rules.indices where s.rules[i].observe(op, track: track, writesPassed: s.writesPassed) {
                if effect == nil { effect = s.rules[i].rule.effect }
            }
            if effect != nil {
                s.injected += 1
            } else if op == .writeTrack || op == .writeMeta {
                s.writesPassed += 1
            }
            return effect
        }
    }

    private static func error(_ op: FaultRule.Operation, _ errno: Int32, _ track: Int?) -> DeviceError {
        let where_ = track.map { " on track \($0)" } ?? ""
        return DeviceError(.injected, errno: errno, "injected fault: \(op)\(where_) failed")
    }

    public var superblock: Superblock { base.superblock }
    public var metaCapacity: Int { base.metaCapacity }

    public func readTrack(_ track: Int, sector: Int, into buffer: UnsafeMutableRawBufferPointer) throws(DeviceError) {
        switch check(.readTrack, track: track) {
        case .fail(let e)?, .tornWrite(_, let e)?: throw Self.error(.readTrack, e, track)
        case nil: try base.readTrack(track, sector: sector, into: buffer)
        }
    }

    public func writeTrack(_ track: Int, sector: Int, from buffer: UnsafeRawBufferPointer, mode: WriteMode) throws(DeviceError) {
        switch check(.writeTrack, track: track) {
        case .fail(let e)?: throw Self.error(.writeTrack, e, track)
        case .tornWrite(let keep, let e)?:
            let ss = base.geometry.sectorSize
            let n = min(max(keep, 0) * ss, buffer.count / ss * ss)
            if n > 0 {
                try base.writeTrack(track, sector: sector, from: UnsafeRawBufferPointer(rebasing: buffer[0..<n]), mode: mode)
            }
            throw DeviceError(.injected, errno: e, "injected fault: torn write on track \(track) (\(n / ss) sectors written)")
        case nil: try base.writeTrack(track, sector: sector, from: buffer, mode: mode)
        }
    }

    public func trim(_ track: Int, sector: Int, count: Int) { base.trim(track, sector: sector, count: count) }

    public func readMeta(offset: Int, into buffer: UnsafeMutableRawBufferPointer) throws(DeviceError) {
        switch check(.readMeta) {
        case .fail(let e)?, .tornWrite(_, let e)?: throw Self.error(.readMeta, e, nil)
        case nil: try base.readMeta(offset: offset, into: buffer)
        }
    }

    public func writeMeta(offset: Int, from buffer: UnsafeRawBufferPointer) throws(DeviceError) {
        switch check(.writeMeta) {
        case .fail(let e)?: throw Self.error(.writeMeta, e, nil)
        case .tornWrite(let keep, let e)?:
            let ss = base.geometry.sectorSize
            let n = min(max(keep, 0) * ss, buffer.count / ss * ss)
            if n > 0 { try base.writeMeta(offset: offset, from: UnsafeRawBufferPointer(rebasing: buffer[0..<n])) }
            throw DeviceError(.injected, errno: e, "injected fault: torn meta write (\(n / ss) sectors written)")
        case nil: try base.writeMeta(offset: offset, from: buffer)
        }
    }

    public func sync() throws(DeviceError) {
        if let eff = check(.sync) { throw Self.error(.sync, eff.errno, nil) }
        try base.sync()
    }

    public func counters() -> DeviceCounters { base.counters() }

    public func close() throws(DeviceError) {
        if let eff = check(.close) { throw Self.error(.close, eff.errno, nil) }
        try base.close()
    }
}
