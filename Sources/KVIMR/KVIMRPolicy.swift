import IMRDisk

/// The `kvimr` policy: compaction-aware track allocation (docs/kvimr.md). A pure function of
/// the allocator state and the request, like every policy; KVIMR pairs it with host-managed
/// writes and merged, journaled RMW.
///
/// The idea: a bottom track is only expensive to write when a neighbouring top holds valid data
/// that outlives it. So
/// 1. a file grows along clean bottoms b, b+2, ... and fills the tops between its own bottoms
///    (written after both, they die with them and never force an RMW). Files deleted together
///    (a compaction's inputs) free whole runs;
/// 2. a bottom is *clean* when both neighbouring tops are free (not used, not awaiting a
///    checkpoint): writing it meets no valid data;
/// 3. when no clean bottom is left, a top beats a bottom that needs RMW — best a top between
///    bottoms in use whose files are complete (they are rewritten least soon), never one next to
///    the growing end of an unsealed file (that bottom's next write would need RMW);
/// 4. only when no top is left, a bottom with valid neighbours is taken, the one with the
///    fewest; KVIMR merges and journals its RMW.
public struct KVIMRPolicy: TrackAllocationPolicy {
    public init() {}
    public var name: String { KVIMRPolicyName.kvimr.rawValue }
    public var writeMode: WriteMode { .hostManaged }
    public var writeOutTracks: Int { 4 }

    public func chooseTrack(_ state: AllocatorState, for request: TrackRequest) -> Int? {
        let own = Set(request.ownTracks)
        let ownBottoms = request.ownTracks.filter { state.geometry.isBottom($0) }.sorted()

        // 1. continue the file at its last bottom + 2 when that is clean.
        if let last = ownBottoms.last, isClean(state, last + 2) { return last + 2 }
        // 2. the top between two of the file's own bottoms (written after both, dies with them).
        for b in ownBottoms where own.contains(b + 2) && state.freeTop.contains(b + 1) {
            return b + 1
        }
        // 3. a clean bottom (dense, and no valid data to preserve), lowest first.
        if let b = firstBottom(state, where: { isClean(state, $0) }) { return b }
        // 4.-5. no clean bottom: score every free track by the RMW it costs now or later.
        let mine = KVIMRPolicy.lifetimeClass(kind: request.kind, level: request.level)
        var best: (track: Int, score: Int)? = nil
        var t = state.freeTop.first()
        while let x = t {
            let sc = topScore(state, x, lifetime: mine)
            if best == nil || sc < best!.score { best = (x, sc) }
            t = state.freeTop.first(from: x + 1)
        }
        var b = state.freeBottom.first()
        while let x = b {
            let sc = KVIMRPolicy.rmwNow * validNeighbours(state, x)
            if best == nil || sc < best!.score { best = (x, sc) }
            b = state.freeBottom.first(from: x + 1)
        }
        return best?.track
    }

    /// Scores, in quarters of a top-track RMW. A bottom with valid neighbours costs a journaled
    /// RMW per neighbour now; a top costs nothing now, but each neighbouring bottom that will
    /// likely be rewritten while it lives costs one later (growing end of an unsealed file:
    /// certain; a free or pending bottom: even odds; a bottom of shorter-lived data: likely).
    static let rmwNow = 12
    static let densityPenalty = 1

    func topScore(_ s: AllocatorState, _ t: Int, lifetime mine: Int) -> Int {
        var score = KVIMRPolicy.densityPenalty
        for n in [t - 1, t + 1] where n >= 0 && n < s.geometry.trackCount {
            if s.open.contains(n) { score += 8 }
            else if s.freeBottom.contains(n) || s.isPending(n) { score += 2 }
            else if Int(s.lifetime[n]) < mine { score += 4 }
        }
        return score
    }

    /// Expected-lifetime class of a file (higher lives longer): a WAL or manifest dies at the
    /// next flush or roll, a level-L table when level L is compacted (deeper levels more rarely),
    /// vLog segments live longest.
    public static func lifetimeClass(kind: FileKind, level: Int) -> Int {
        switch kind {
        case .wal, .manifest: return 0
        case .sstable: return 1 + min(max(level, 0), 6)
        case .vlog: return 8
        }
    }

    /// A free bottom whose neighbouring tops are free (or off the drive).
    func isClean(_ s: AllocatorState, _ b: Int) -> Bool {
        guard b >= 0, b < s.geometry.trackCount, s.freeBottom.contains(b) else { return false }
        return validNeighbours(s, b) == 0
    }

    /// Neighbouring tops of bottom `b` that may hold valid data (used or pending).
    func validNeighbours(_ s: AllocatorState, _ b: Int) -> Int {
        s.geometry.neighbours(ofBottom: b).filter { !s.freeTop.contains($0) }.count
    }



    func firstBottom(_ s: AllocatorState, where ok: (Int) -> Bool) -> Int? {
        var b = s.freeBottom.first()
        while let x = b {
            if ok(x) { return x }
            b = s.freeBottom.first(from: x + 1)
        }
        return nil
    }

}
