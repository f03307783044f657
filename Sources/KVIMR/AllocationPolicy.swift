/// What a file asks the allocator for: one more whole track.
public struct TrackRequest: Sendable, Equatable {
    public var file: FileNumber
    public var kind: FileKind
    public var level: Int
    /// The file's current last track, if it has one (for policies that value locality).
    public var lastTrack: Int?
    public init(file: FileNumber, kind: FileKind, level: Int, lastTrack: Int? = nil) {
        self.file = file; self.kind = kind; self.level = level; self.lastTrack = lastTrack
    }
}

/// A track-allocation policy: a pure decision function over the allocator state. It must
/// return a track that is free in `state`, or nil when it will not place the request (no
/// suitable free track). It never changes anything; the caller commits the choice.
public protocol TrackAllocationPolicy: Sendable {
    var name: String { get }
    func chooseTrack(_ state: AllocatorState, for request: TrackRequest) -> Int?
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

/// The policy names lsmfs knows (DESIGN.md §3). Only some are implemented so far.
public enum KVIMRPolicyName: String, Sendable, CaseIterable {
    case conventional = "conventional"
    case twoPhase = "two-phase"
    case threePhase = "three-phase"
    case kvimr = "kvimr"

    /// The policies that can be used right now.
    public static let implemented: [KVIMRPolicyName] = [.twoPhase]

    public var isImplemented: Bool { Self.implemented.contains(self) }

    /// The policy object for `name`; `.outOfRange` with the valid names for an unknown or
    /// not-yet-implemented name.
    public static func policy(named name: String) throws(KVIMRError) -> any TrackAllocationPolicy {
        let valid = implemented.map(\.rawValue).joined(separator: ", ")
        guard let known = KVIMRPolicyName(rawValue: name) else {
            let all = allCases.map(\.rawValue).joined(separator: ", ")
            throw KVIMRError(.outOfRange, "unknown track-allocation policy '\(name)' (known: \(all); implemented: \(valid))")
        }
        switch known {
        case .twoPhase:
            return TwoPhasePolicy()
        case .conventional, .threePhase, .kvimr:
            throw KVIMRError(.outOfRange, "track-allocation policy '\(name)' is not implemented yet (implemented: \(valid))")
        }
    }
}
