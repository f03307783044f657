import IMRDisk

/// What a file asks the allocator for: one more whole track.
public struct TrackRequest: Sendable, Equatable {
    public var file: FileNumber
    public var kind: FileKind
    public var level: Int
    /// The file's current last track, if it has one (for policies that value locality).
    public var lastTrack: Int?
    /// Every track the file already owns, in file order (empty for a new file).
    public var ownTracks: [Int] = []
    public init(file: FileNumber, kind: FileKind, level: Int, lastTrack: Int? = nil) {
        self.file = file; self.kind = kind; self.level = level; self.lastTrack = lastTrack
    }
    public init(file: FileNumber, kind: FileKind, level: Int, ownTracks: [Int]) {
        self.init(file: file, kind: kind, level: level, lastTrack: ownTracks.last)
        self.ownTracks = ownTracks
    }
}

/// A track-allocation policy: a pure decision function over the allocator state. It must
/// return a track that is free in `state`, or nil when it will not place the request (no
/// suitable free track). It never changes anything; the caller commits the choice.
public protocol TrackAllocationPolicy: Sendable {
    var name: String { get }
    func chooseTrack(_ state: AllocatorState, for request: TrackRequest) -> Int?
    /// How KVIMR writes bottom tracks for this policy: `.deviceManaged` (the drive's firmware
    /// read-modify-writes damaged neighbours, one bottom write at a time) or `.hostManaged`
    /// (KVIMR's merged, journaled RMW; docs/kvimr.md).
    var writeMode: WriteMode { get }
    /// Full tracks' worth of a file's bytes the write buffer may hold before writing them out
    /// early (at least 1). Larger batches let a host-managed policy merge the RMW of a whole
    /// multi-track file.
    var writeOutTracks: Int { get }
    /// For host-managed writes: whether a batch whose bottom writes meet `tops` valid top
    /// tracks in `pairs` (bottom, top) adjacencies should use KVIMR's merged, journaled RMW
    /// (true) or leave that batch to the drive's RMW (false).
    func prefersMergedRMW(pairs: Int, tops: Int) -> Bool
}

extension TrackAllocationPolicy {
    public var writeMode: WriteMode { .deviceManaged }
    public var writeOutTracks: Int { 1 }
    public func prefersMergedRMW(pairs: Int, tops: Int) -> Bool { true }
}

/// Conventional (IMR-unaware) allocation: first fit over all tracks in index order, as a file
/// system for a conventional drive would do; the drive's firmware does the RMW.
public struct ConventionalPolicy: TrackAllocationPolicy {
    public init() {}
    public var name: String { KVIMRPolicyName.conventional.rawValue }
    public func chooseTrack(_ state: AllocatorState, for request: TrackRequest) -> Int? {
        switch (state.freeBottom.first(), state.freeTop.first()) {
        case let (b?, t?): return min(b, t)
        case let (b?, nil): return b
        case let (nil, t?): return t
        default: return nil
        }
    }
}

/// Two-phase allocation, as in public IMR simulators: fill every bottom track first (lowest
/// index first; a bottom write then never damages valid top data), then the top tracks (lowest
/// index first; every top write from then on is free of RMW, but bottom rewrites need RMW).
public struct TwoPhasePolicy: TrackAllocationPolicy {
    public init() {}
    public var name: String { KVIMRPolicyName.twoPhase.rawValue }
    public func chooseTrack(_ state: AllocatorState, for request: TrackRequest) -> Int? {
        state.freeBottom.first() ?? state.freeTop.first()
    }
}

/// Three-phase allocation (Wu et al., HotStorage '18; IMRSim): phase 1 fills the bottom tracks,
/// phase 2 every other top track — the "even" tops, top index (t-1)/2 even: tracks 1, 5, 9, ... —
/// so that each bottom track has at most one valid top neighbour, phase 3 the remaining
/// ("odd") tops 3, 7, 11, ... Lowest index first within each phase.
public struct ThreePhasePolicy: TrackAllocationPolicy {
    public init() {}
    public var name: String { KVIMRPolicyName.threePhase.rawValue }
    public func chooseTrack(_ state: AllocatorState, for request: TrackRequest) -> Int? {
        if let b = state.freeBottom.first() { return b }
        var t = state.freeTop.first()
        var odd: Int? = nil
        while let x = t {
            if ((x - 1) / 2) % 2 == 0 { return x }
            if odd == nil { odd = x }
            t = state.freeTop.first(from: x + 1)
        }
        return odd
    }
}

/// The policy names lsmfs knows (DESIGN.md §3).
public enum KVIMRPolicyName: String, Sendable, CaseIterable {
    case conventional = "conventional"
    case twoPhase = "two-phase"
    case threePhase = "three-phase"
    case kvimr = "kvimr"

    /// The policies that can be used right now.
    public static let implemented: [KVIMRPolicyName] = [.conventional, .twoPhase, .threePhase, .kvimr]

    public var isImplemented: Bool { Self.implemented.contains(self) }

    /// The policy object.
    public var policy: any TrackAllocationPolicy {
        switch self {
        case .conventional: return ConventionalPolicy()
        case .twoPhase: return TwoPhasePolicy()
        case .threePhase: return ThreePhasePolicy()
        case .kvimr:
            return KVIMRPolicy()
        }
    }

    /// The policy object for `name`; `.outOfRange` with the valid names for an unknown or
    /// not-yet-implemented name.
    public static func policy(named name: String) throws(KVIMRError) -> any TrackAllocationPolicy {
        let valid = implemented.map(\.rawValue).joined(separator: ", ")
        guard let known = KVIMRPolicyName(rawValue: name) else {
            let all = allCases.map(\.rawValue).joined(separator: ", ")
            throw KVIMRError(.outOfRange, "unknown track-allocation policy '\(name)' (known: \(all); implemented: \(valid))")
        }
        guard known.isImplemented else {
            throw KVIMRError(.outOfRange, "track-allocation policy '\(name)' is not implemented yet (implemented: \(valid))")
        }
        return known.policy
    }
}
