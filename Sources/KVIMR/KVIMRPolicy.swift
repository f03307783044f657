import IMRDisk

/// The `kvimr` policy: compaction-aware track allocation (docs/kvimr.md). A pure function of
/// the allocator state and the request, like every policy; KVIMR pairs it with host-managed
/// writes and merged, journaled RMW.
///
/// The idea: a bottom track is only expensive to write when a neighbouring top holds valid data
/// that outlives it. So
/// 0. while at least half the bottoms are clean, pack like two-phase (lowest clean bottom):
///    there is no RMW to avoid yet, and data packed at the low end keeps seeks short;
/// 1. a file grows along clean bottoms b, b+2, ... and fills the tops between its own bottoms
///    (written after both, they die with them and never force an RMW); the files one
///    compaction writes in a row are kept side by side the same way (group placement), so a
///    later compaction that deletes them frees whole runs;
/// 2. a bottom is *clean* when both neighbouring tops are free (not used, not awaiting a
///    checkpoint): writing it meets no valid data;
/// 3. when no clean bottom is left, every free track is priced by the RMW it costs now (a
///    bottom: one per valid neighbour) or is expected to cost later (a top: per neighbouring
///    bottom, the chance that bottom is rewritten while the top's data lives), cheapest first.
public struct KVIMRPolicy: TrackAllocationPolicy {
    /// Use lifetimes learned from deletes (else only the static classes).
    public var learned: Bool
    /// Put short-lived files (WAL, L0, L1 — or whatever the learned lifetimes say) on safe tops
    /// before clean bottoms, keeping clean bottoms for long-lived data.
    public var shortLivedOnTops: Bool
    /// Keep the files of one class written one after another side by side (`groupTrack`).
    public var grouping: Bool
    /// Merge (journal) a batch's RMW only when that is cheaper than the drive's own RMW
    /// (`KVIMRCore.mergingPays`); false: always merge (as the first kvimr did).
    public var mergeOnlyWhenCheaper: Bool
    /// Price a top's neighbouring bottoms by the chance that they are rewritten while the top
    /// lives (`riskScore`); false: the fixed steps of session 2 (`topScore`).
    public var riskScore: Bool
    /// While at least 1/`packShare` of the bottoms are clean, take the lowest clean bottom for
    /// everything, as two-phase does; 0: never (the compaction-aware rules from the start).
    public var packShare: Int
    /// Defaults: what measured best in `lsmfs bench imr` (docs/bench/imr.md). The short-lived-
    /// on-tops rule measured worse (more RMW at high usage) and is off by default.
    public init(learned: Bool = true, shortLivedOnTops: Bool = false, grouping: Bool = true,
                mergeOnlyWhenCheaper: Bool = true, riskScore: Bool = true, packShare: Int = 2) {
        self.learned = learned
        self.shortLivedOnTops = shortLivedOnTops
        self.grouping = grouping
        self.mergeOnlyWhenCheaper = mergeOnlyWhenCheaper
        self.riskScore = riskScore
        self.packShare = packShare
    }

    public func prefersMergedRMW(pairs: Int, tops: Int) -> Bool {
        !mergeOnlyWhenCheaper || KVIMRPolicy.mergingPays(pairs: pairs, tops: tops)
    }

    /// Whether merging pays for the journal: the drive's RMW reads and rewrites each (bottom,
    /// valid top) pair once per bottom write (`pairs`); a merged RMW reads and rewrites each
    /// affected top once (`tops`) but also writes the saved runs to the journal and clears it
    /// (two trips to the meta zone). Priced on full tracks with the latency model's averages
    /// (a top read or rewrite ~13.5 ms; journal ~6.7 ms per top plus ~32 ms of seeks and
    /// rotation), merging wins when 27·pairs > 33.7·tops + 32, i.e. 4·pairs > 5·tops + 5:
    /// a single bottom (2 pairs, 2 tops) or a short run of adjacent bottoms is cheaper left to
    /// the drive; four or more adjacent bottoms sharing their tops are cheaper merged.
    public static func mergingPays(pairs: Int, tops: Int) -> Bool { 4 * pairs > 5 * tops + 5 }
    public var name: String { KVIMRPolicyName.kvimr.rawValue }
    public var writeMode: WriteMode { .hostManaged }
    public var writeOutTracks: Int { 4 }

    public func chooseTrack(_ state: AllocatorState, for request: TrackRequest) -> Int? {
        // 0. plenty of clean bottoms: pack them from the low end, as two-phase does.
        if packShare > 0, cleanBottoms(state, atLeast: max(1, (state.geometry.trackCount + 1) / 2 / packShare)),
           let b = firstBottom(state, where: { isClean(state, $0) }) {
            return b
        }
        let own = Set(request.ownTracks)
        let ownBottoms = request.ownTracks.filter { state.geometry.isBottom($0) }.sorted()

        // 1. continue the file at its last bottom + 2 when that is clean.
        if let last = ownBottoms.last, isClean(state, last + 2) { return last + 2 }
        // 2. the top between two of the file's own bottoms (written after both, dies with them).
        for b in ownBottoms where own.contains(b + 2) && state.freeTop.contains(b + 1) {
            return b + 1
        }
        let mine = KVIMRPolicy.lifetimeClass(kind: request.kind, level: request.level)
        let life = expectedLife(state, mine)
        // 2b. the same two rules for the file's group — the tracks just allocated to files of
        //     its class (a compaction's consecutive outputs, neighbours in key order that a
        //     later compaction deletes together): the top between two sealed group bottoms,
        //     then the next clean bottom after the group's last one.
        if grouping, let t = groupTrack(state, cls: mine) { return t }
        // 3. short-lived data goes on top of bottoms that outlive it (no RMW ever: the top is
        //    gone before they are rewritten), keeping clean bottoms for long-lived data.
        let short = shortLivedOnTops && cleanBottomsScarce(state) && isShortLived(state, mine, life: life)
        if short, let t = safeTop(state, life: life) { return t }
        // 4. a clean bottom (dense, and no valid data to preserve), lowest first (the state
        //    counts them: with none left, no scan of every free bottom).
        if state.cleanBottomCount > 0, let b = firstBottom(state, where: { isClean(state, $0) }) { return b }
        // 5. a safe top for anyone.
        if shortLivedOnTops, let t = safeTop(state, life: life) { return t }
        // 6. score every free track by the RMW it costs now (a bottom: one per valid neighbour)
        //    or is expected to cost later (a top: `riskScore`).
        var best: (track: Int, score: Int)? = nil
        var t = state.freeTop.first()
        while let x = t {
            let sc = topScore(state, x, lifetime: mine, life: life)
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

    /// Group placement (rule 2b): among the class's recent tracks still holding sealed data of
    /// that class, a free top between two of its bottoms (written after both, dies with them);
    /// else the clean bottom after the most recent such bottom.
    func groupTrack(_ s: AllocatorState, cls: Int) -> Int? {
        let g = s.geometry
        let members = s.recent[cls].filter { s.isUsed($0) && Int(s.lifetime[$0]) == cls }
        let sealed = Set(members.filter { g.isBottom($0) && !s.open.contains($0) })
        for b in members where sealed.contains(b) && sealed.contains(b + 2) && s.freeTop.contains(b + 1) {
            return b + 1
        }
        if let last = members.last(where: { g.isBottom($0) }), isClean(s, last + 2) { return last + 2 }
        return nil
    }

    // MARK: - lifetimes

    /// Expected lifetime of a file of class `cls`, in allocation-clock ticks: learned from the
    /// files of that class deleted so far; before any died, a static guess ordered by class
    /// (a WAL dies first, deeper levels later) scaled to the drive.
    func expectedLife(_ s: AllocatorState, _ cls: Int) -> Double {
        if learned, let l = s.expectedLifetime(cls) { return max(l, 1) }
        return Double(cls + 1) * Double(max(s.geometry.trackCount, 8)) / 8
    }

    /// Expected remaining life of the data on used track `t`: its class's lifetime less its age,
    /// at least a quarter of the lifetime (an overdue file may still live a while).
    func remainingLife(_ s: AllocatorState, _ t: Int) -> Double {
        let l = expectedLife(s, Int(s.lifetime[t]))
        return max(l - Double(s.age(t)), l / 4)
    }

    /// Short-lived: at most half as long-lived as the longest-lived class seen dying (learned);
    /// before anything died, WAL, manifest, L0 and L1.
    func isShortLived(_ s: AllocatorState, _ cls: Int, life: Double) -> Bool {
        if learned {
            var longest = 0.0
            for c in 0..<AllocatorState.lifetimeClasses {
                if let l = s.expectedLifetime(c) { longest = max(longest, l) }
            }
            if longest > 0, s.expectedLifetime(cls) != nil { return life * 2 <= longest }
        }
        return cls <= KVIMRPolicy.lifetimeClass(kind: .sstable, level: 1)
    }

    /// Clean bottoms are scarce when fewer than an eighth of the bottoms (at least 4) are left:
    /// below that, short-lived data leaves them to long-lived data. With plenty left, tops
    /// only cost density (a top holds 20% less), so kvimr fills clean bottoms like two-phase.
    func cleanBottomsScarce(_ s: AllocatorState) -> Bool {
        !cleanBottoms(s, atLeast: max(4, (s.geometry.trackCount + 1) / 2 / 8))
    }

    /// Whether at least `want` bottoms are clean (the state keeps the count).
    func cleanBottoms(_ s: AllocatorState, atLeast want: Int) -> Bool {
        s.cleanBottomCount >= want
    }

    /// A free top whose neighbouring bottoms both hold sealed data expected to outlive `life`
    /// (or lie off the drive): writing it never forces an RMW later. Among them the tightest
    /// fit (neighbours dying soonest after it), so data that dies together sits together.
    func safeTop(_ s: AllocatorState, life: Double) -> Int? {
        var best: (track: Int, slack: Double)? = nil
        var t = s.freeTop.first()
        while let x = t {
            var slack = 0.0, ok = true
            for n in [x - 1, x + 1] where n >= 0 && n < s.geometry.trackCount {
                guard s.isUsed(n), !s.open.contains(n) else { ok = false; break }
                let r = remainingLife(s, n)
                if r < life { ok = false; break }
                slack += r - life
            }
            if ok && (best == nil || slack < best!.slack) { best = (x, slack) }
            t = s.freeTop.first(from: x + 1)
        }
        return best?.track
    }

    /// Scores, in quarters of a top-track RMW. A bottom with valid neighbours costs a journaled
    /// RMW per neighbour now; a top costs nothing now, but each neighbouring bottom that will
    /// likely be rewritten while it lives costs one later (growing end of an unsealed file:
    /// certain; a free or pending bottom: as much as an RMW now — at high usage it will be reused
    /// while the top lives, and the top also takes away a clean bottom; a bottom of
    /// shorter-lived data: likely). Measured: 2 for a free neighbour filled the tops first (92%
    /// of them at 78% usage) and left every reused bottom under valid tops; 12 halved the RMWs.
    static let rmwNow = 12
    static let densityPenalty = 1
    /// A top next to a free or pending bottom makes that bottom need an RMW when it is reused
    /// (12 = one RMW now, as a bottom with one valid neighbour costs).
    static let freeNeighbourCost = 12

    func topScore(_ s: AllocatorState, _ t: Int, lifetime mine: Int, life: Double) -> Int {
        if riskScore { return riskScore(s, t, life: life) }
        var score = KVIMRPolicy.densityPenalty
        for n in [t - 1, t + 1] where n >= 0 && n < s.geometry.trackCount {
            if s.open.contains(n) { score += 8 }
            else if s.freeBottom.contains(n) || s.isPending(n) { score += KVIMRPolicy.freeNeighbourCost }
            else if learned ? remainingLife(s, n) < life : Int(s.lifetime[n]) < mine { score += 4 }
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
    func isClean(_ s: AllocatorState, _ b: Int) -> Bool { s.isCleanBottom(b) }

    /// Neighbouring tops of bottom `b` that may hold valid data (used or pending).
    func validNeighbours(_ s: AllocatorState, _ b: Int) -> Int { s.validTopNeighbours(ofBottom: b) }

    /// Risk score of top `t` (same units as `topScore`): per neighbouring bottom, one RMW
    /// (`rmwNow`) times the chance that the bottom is rewritten while the top's data lives.
    /// Open (its file grows): certain. Free or pending: certain (at high usage it is reused
    /// while the top lives). Sealed data: the chance that it dies first, `life / (life + rem)`
    /// for remaining life `rem` (as for two exponential lifetimes); a freed bottom is reused
    /// soon at high usage, so dying first means being rewritten under the top.
    func riskScore(_ s: AllocatorState, _ t: Int, life: Double) -> Int {
        var score = Double(KVIMRPolicy.densityPenalty)
        for n in [t - 1, t + 1] where n >= 0 && n < s.geometry.trackCount {
            if s.open.contains(n) || s.freeBottom.contains(n) || s.isPending(n) {
                score += Double(KVIMRPolicy.rmwNow)
            } else {
                let rem = remainingLife(s, n)
                score += Double(KVIMRPolicy.rmwNow) * life / (life + rem)
            }
        }
        return Int(score.rounded())
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
