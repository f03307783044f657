import LSMCommon
/// One fault to inject into a `FaultyTrackDevice`. Rules compose: every rule watches the
/// operations it matches and counts them independently; the first rule (in insertion order)
/// that fires decides what happens to an operation.
///
/// A rule matches an operation when the operation's kind is in `operations` and, for track I/O,
/// the track is `track` (nil: any). It lets the first `skip` matching operations pass, then
/// fires on every `oneIn`-th matching operation chosen by a seeded generator (1: every one),
/// at most `times` times (nil: forever).
public struct FaultRule: Sendable {
    public enum Operation: Sendable, Hashable, CaseIterable {
        case readTrack, writeTrack, readMeta, writeMeta, sync, close
    }
    public enum Effect: Sendable, Equatable {
        /// The operation does nothing and throws `.injected` with this errno.
        case fail(errno: Int32)
        /// A write stores only its first `keepSectors` sectors (a short/torn write), then throws
        /// `.injected`. On other operations it acts like `.fail`.
        case tornWrite(keepSectors: Int, errno: Int32)

        public var errno: Int32 {
            switch self { case .fail(let e), .tornWrite(_, let e): return e }
        }
    }

    public var operations: Set<Operation>
    public var track: Int?
    public var skip: Int
    public var times: Int?
    public var oneIn: UInt64
    public var seed: UInt64
    public var effect: Effect
    /// The rule sleeps (neither counts nor fires) until this many writes (track or meta) have
    /// passed through the device since the rule was added.
    public var armAfterWrites: Int

    public init(_ operations: Set<Operation>, track: Int? = nil, skip: Int = 0, times: Int? = nil,
                oneIn: UInt64 = 1, seed: UInt64 = 0, armAfterWrites: Int = 0,
                effect: Effect = .fail(errno: 5 /* EIO */)) {
        self.operations = operations; self.track = track; self.skip = skip; self.times = times
        self.oneIn = max(oneIn, 1); self.seed = seed; self.armAfterWrites = armAfterWrites; self.effect = effect
    }

    public static let writes: Set<Operation> = [.writeTrack, .writeMeta]
    public static let reads: Set<Operation> = [.readTrack, .readMeta]

    /// The `n`-th write (track or meta, counting from 1 after the rule is added) fails with EIO.
    public static func failNthWrite(_ n: Int, errno: Int32 = 5) -> FaultRule {
        FaultRule(writes, skip: max(n - 1, 0), times: 1, effect: .fail(errno: errno))
    }
    /// The `n`-th write stores only its first `keepSectors` sectors, then fails.
    public static func tearNthWrite(_ n: Int, keepSectors: Int, errno: Int32 = 5) -> FaultRule {
        FaultRule(writes, skip: max(n - 1, 0), times: 1, effect: .tornWrite(keepSectors: keepSectors, errno: errno))
    }
    /// Every write to `track` fails.
    public static func failWrites(toTrack track: Int, errno: Int32 = 5) -> FaultRule {
        FaultRule([.writeTrack], track: track, effect: .fail(errno: errno))
    }
    /// Every read of `track` fails (an unreadable track).
    public static func failReads(ofTrack track: Int, errno: Int32 = 5) -> FaultRule {
        FaultRule([.readTrack], track: track, effect: .fail(errno: errno))
    }
    /// The next `sync()` fails.
    public static func failNextSync(errno: Int32 = 5) -> FaultRule {
        FaultRule([.sync], times: 1, effect: .fail(errno: errno))
    }
    /// Power loss after `n` writes: from then on every operation (reads, writes, sync, close)
    /// fails. Pair with `MemoryTrackDevice.crashed()` to see what the "crash" left.
    public static func powerLoss(afterWrites n: Int) -> FaultRule {
        FaultRule(Set(Operation.allCases), armAfterWrites: n, effect: .fail(errno: 5))
    }
    /// Each matching operation fails with probability 1/`oneIn`, reproducibly for a seed.
    public static func failRandomly(_ operations: Set<Operation>, oneIn: UInt64, seed: UInt64, errno: Int32 = 5) -> FaultRule {
        FaultRule(operations, oneIn: oneIn, seed: seed, effect: .fail(errno: errno))
    }
}

/// A rule plus its counters (inside the FaultyTrackDevice's Mutex).
struct ArmedRule: Sendable {
    let id: Int
    var rule: FaultRule
    var seen = 0
    var fired = 0
    var rng: SplitMix64
    /// The device's count of writes passed when the rule was added.
    let writesAtInjection: Int

    init(id: Int, rule: FaultRule, writesPassed: Int) {
        self.id = id; self.rule = rule; self.rng = SplitMix64(seed: rule.seed)
        self.writesAtInjection = writesPassed
    }

    /// Counts `op` if it matches; true if the rule fires on it.
    mutating func observe(_ op: FaultRule.Operation, track: Int?, writesPassed: Int) -> Bool {
        guard writesPassed - writesAtInjection >= rule.armAfterWrites else { return false }
        guard rule.operations.contains(op) else { return false }
        if let want = rule.track, want != track { return false }
        seen += 1
        guard seen > rule.skip else { return false }
        if let t = rule.times, fired >= t { return false }
        if rule.oneIn > 1 && rng.next() % rule.oneIn != 0 { return false }
        fired += 1
        return true
    }
}
