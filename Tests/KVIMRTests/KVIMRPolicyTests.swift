import IMRDisk
import KVIMR
import Testing

/// The kvimr policy as a pure function over allocator state: learned lifetimes, short-lived
/// files on safe tops once clean bottoms are scarce, clean bottoms for long-lived data.
@Suite struct KVIMRPolicyTests {
    let wal = TrackRequest(file: 1, kind: .wal, level: 0)
    let deep = TrackRequest(file: 2, kind: .sstable, level: 3)

    /// 20 tracks; every bottom except `freeBottoms` holds level-3 data.
    func state(freeBottoms: [Int]) -> AllocatorState {
        let g = smallGeometry(tracks: 20)
        var s = AllocatorState(geometry: g)
        for b in stride(from: 0, to: 20, by: 2) where !freeBottoms.contains(b) {
            s.allocate(b)
            s.setLifetime(b, KVIMRPolicy.lifetimeClass(kind: .sstable, level: 3))
        }
        return s
    }

    @Test func learnedLifetimeIsARunningMean() {
        var s = AllocatorState(geometry: smallGeometry(tracks: 8))
        #expect(s.expectedLifetime(2) == nil)
        s.observeLifetime(2, 10)
        s.observeLifetime(2, 10)
        s.observeLifetime(2, 40)
        #expect(s.expectedLifetime(2) == 20)
        #expect(s.observedDeaths[2] == 3)
        // The allocation clock advances per allocated track; age counts from there.
        s.allocate(0); s.allocate(2); s.allocate(4)
        #expect(s.clock == 3 && s.age(0) == 3 && s.age(4) == 1)
    }

    @Test func plentyOfCleanBottomsBehavesLikeTwoPhase() {
        let s = state(freeBottoms: [8, 10, 12, 14, 16, 18])
        let p = KVIMRPolicy()
        #expect(p.chooseTrack(s, for: wal) == 8)        // the lowest clean bottom, as two-phase
        #expect(s.geometry.isBottom(p.chooseTrack(s, for: deep)!))
    }

    @Test func shortLivedGoesOnSafeTopsWhenCleanBottomsAreScarce() throws {
        let s = state(freeBottoms: [16, 18])            // two clean bottoms left: scarce
        let p = KVIMRPolicy(shortLivedOnTops: true)
        let t = try #require(p.chooseTrack(s, for: wal))
        #expect(s.geometry.isTop(t))
        // Safe: both neighbouring bottoms hold longer-lived data.
        #expect(s.isUsed(t - 1) && s.isUsed(t + 1))
        // Long-lived data still gets a clean bottom.
        #expect(p.chooseTrack(s, for: deep) == 16)
        // Without the short-lived rule (the default) the WAL takes the clean bottom.
        #expect(KVIMRPolicy().chooseTrack(s, for: wal) == 16)
    }

    @Test func learnedLifetimesDecideWhatIsShortLived() throws {
        var s = state(freeBottoms: [16, 18])
        let walClass = KVIMRPolicy.lifetimeClass(kind: .wal, level: 0)
        let l3 = KVIMRPolicy.lifetimeClass(kind: .sstable, level: 3)
        // Observed: WALs live long, level-3 tables die fast (a workload unlike the guess).
        for _ in 0..<4 { s.observeLifetime(walClass, 1000); s.observeLifetime(l3, 10) }
        let p = KVIMRPolicy(shortLivedOnTops: true)
        // A WAL is no longer short-lived: it takes a clean bottom, not a top.
        #expect(p.chooseTrack(s, for: wal) == 16)
    }

    @Test func neverATopNextToAnOpenBottomWhenSomethingBetterExists() throws {
        var s = state(freeBottoms: [])
        s.setOpen(4, true)                               // bottom 4 is a growing file's end
        let t = try #require(KVIMRPolicy().chooseTrack(s, for: wal))
        #expect(t != 3 && t != 5)
    }
}

/// Group placement: consecutive files of one class (a compaction's outputs) sit side by side —
/// bottoms b, b+2, then the top b+1 between them once both are sealed.
@Suite struct GroupPlacementTests {
    @Test func compactionOutputsSitSideBySide() {
        let g = smallGeometry(tracks: 20)
        var s = AllocatorState(geometry: g)
        // Used: bottoms 0..6 hold other data; the rest of the drive is free.
        for b in [0, 2, 4, 6] { s.allocate(b); s.setLifetime(b, 1) }
        let p = KVIMRPolicy(packShare: 0)               // group rules from the start
        let cls = KVIMRPolicy.lifetimeClass(kind: .sstable, level: 2)
        var placed: [Int] = []
        for f in 0..<4 {
            let req = TrackRequest(file: FileNumber(100 + f), kind: .sstable, level: 2)
            let t = p.chooseTrack(s, for: req)!
            s.allocate(t); s.setLifetime(t, cls); s.noteAllocation(t, lifetimeClass: cls)
            placed.append(t)
        }
        // 8 (lowest clean bottom), 10 (next clean bottom of the group), 9 (between them), 12.
        #expect(placed == [8, 10, 9, 12])
        // Without grouping the third file takes a clean bottom instead.
        #expect(KVIMRPolicy(grouping: false, packShare: 0).chooseTrack(s, for: TrackRequest(file: 200, kind: .sstable, level: 2)) == 14)
        // With the default packing (at least half the bottoms clean) it packs like two-phase.
        var fresh = AllocatorState(geometry: smallGeometry(tracks: 40))   // 16 of 20 bottoms clean
        for b in [0, 2, 4, 6] { fresh.allocate(b); fresh.setLifetime(b, 1) }
        var packed: [Int] = []
        for f in 0..<4 {
            let t = KVIMRPolicy().chooseTrack(fresh, for: TrackRequest(file: FileNumber(300 + f), kind: .sstable, level: 2))!
            #expect(t == TwoPhasePolicy().chooseTrack(fresh, for: TrackRequest(file: FileNumber(300 + f), kind: .sstable, level: 2)))
            fresh.allocate(t); fresh.setLifetime(t, cls); fresh.noteAllocation(t, lifetimeClass: cls)
            packed.append(t)
        }
        #expect(packed == [8, 10, 12, 14])
    }
}

/// The risk score (rule 6): a top is priced by the chance that a neighbouring bottom is
/// rewritten while the top's data lives.
@Suite struct RiskScoreTests {
    /// 20 tracks, every bottom used: bottoms 0..8 by level-1 tables allocated long ago (old,
    /// short-lived: they die soon), bottoms 10..18 by level-3 tables just allocated (young,
    /// long-lived). Every top is free; no clean bottom exists.
    func scene() -> AllocatorState {
        var s = AllocatorState(geometry: smallGeometry(tracks: 20))
        let l1 = KVIMRPolicy.lifetimeClass(kind: .sstable, level: 1)
        let l3 = KVIMRPolicy.lifetimeClass(kind: .sstable, level: 3)
        for b in stride(from: 0, to: 10, by: 2) { s.allocate(b); s.setLifetime(b, l1) }
        for b in stride(from: 10, to: 20, by: 2) { s.allocate(b); s.setLifetime(b, l3) }
        for _ in 0..<4 { s.observeLifetime(l1, 6); s.observeLifetime(l3, 400) }
        return s
    }

    @Test func shortLivedDataGoesOnTopOfLongLivedBottoms() throws {
        let s = scene()
        let t = try #require(KVIMRPolicy().chooseTrack(s, for: TrackRequest(file: 1, kind: .wal, level: 0)))
        // Between two young level-3 bottoms: they outlive a WAL by far.
        #expect(s.geometry.isTop(t) && t > 10 && t < 19)
        #expect(s.isUsed(t - 1) && s.isUsed(t + 1))
    }

    @Test func neverNextToAFreeBottomWhileASaferTopExists() throws {
        var s = scene()
        _ = s.free(14)                                   // freed: will be rewritten soon
        s.releasePending()
        s.allocate(13); s.setLifetime(13, KVIMRPolicy.lifetimeClass(kind: .sstable, level: 3)) // so 14 is not clean
        let t = try #require(KVIMRPolicy().chooseTrack(s, for: TrackRequest(file: 1, kind: .wal, level: 0)))
        #expect(t != 13 && t != 15)
        #expect(s.geometry.isTop(t) && t > 10)
    }

    /// Property: over random allocator states (used, pending, open tracks, learned and static
    /// lifetimes), every kvimr variant only ever returns a free track — never a used or
    /// pending one — returns nil only when no track is free, and allocating its choices until
    /// nil takes every free track exactly once.
    @Test(arguments: 0..<4)
    func choicesAreAlwaysFreeTracks(seed: Int) {
        var rng = TestRNG(seed: UInt64(seed) &* 7919)
        let variants = [KVIMRPolicy(), KVIMRPolicy(packShare: 0), KVIMRPolicy(riskScore: false),
                        KVIMRPolicy(learned: false, packShare: 0)]
        for _ in 0..<40 {
            let g = smallGeometry(tracks: rng.int(2...48))
            var s = AllocatorState(geometry: g)
            for t in 0..<g.trackCount where rng.bool(60) {
                s.allocate(t)
                s.setLifetime(t, rng.int(0...8))
                if rng.bool(10) { s.setOpen(t, true) }
            }
            for t in 0..<g.trackCount where s.isUsed(t) && rng.bool(15) { s.free(t) }
            for c in 0..<9 where rng.bool(50) { s.observeLifetime(c, UInt64(rng.int(1...500))) }
            for p in variants {
                var st = s
                let freeBefore = st.freeCount
                var taken = Set<Int>()
                while let t = p.chooseTrack(st, for: TrackRequest(file: 1, kind: FileKind.allCases[rng.int(0...3)], level: rng.int(0...5))) {
                    #expect(st.isFree(t) && !st.isPending(t))
                    #expect(!taken.contains(t))
                    let allocated = st.allocate(t)
                    #expect(allocated)
                    st.noteAllocation(t, lifetimeClass: rng.int(0...8))
                    taken.insert(t)
                }
                #expect(taken.count == freeBefore && st.freeCount == 0)
                #expect(st.pending == s.pending)          // pending tracks are never handed out
            }
        }
    }

    @Test func theOldScoreIsStillAvailable() throws {
        let s = scene()
        let t = try #require(KVIMRPolicy(riskScore: false).chooseTrack(s, for: TrackRequest(file: 1, kind: .wal, level: 0)))
        #expect(s.isFree(t))
    }
}
