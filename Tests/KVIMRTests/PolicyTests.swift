import IMRDisk
import KVIMR
import Testing

@Suite struct PolicyTests {
    /// Drives the allocator with the two-phase policy through random allocations, frees and
    /// checkpoints: a track is never handed out while used or pending, bottoms go before tops,
    /// and the state's counts always agree with a simple model.
    @Test(arguments: 0..<20)
    func twoPhaseNeverAllocatesATrackTwice(seed: Int) {
        var rng = TestRNG(seed: UInt64(seed))
        let g = smallGeometry(tracks: rng.int(2...300))
        let policy = TwoPhasePolicy()
        var state = AllocatorState(geometry: g)
        var used = Set<Int>(), pending = Set<Int>()
        for step in 0..<2000 {
            let roll = rng.int(0...99)
            if roll < 60 {
                let req = TrackRequest(file: FileNumber(step), kind: .sstable, level: rng.int(0...6))
                guard let t = policy.chooseTrack(state, for: req) else {
                    #expect(state.freeCount == 0)
                    continue
                }
                #expect(!used.contains(t) && !pending.contains(t), "track \(t) handed out twice")
                if g.isTop(t) { #expect(state.freeBottom.isEmpty, "top \(t) chosen while a bottom is free") }
                let first = state.allocate(t), second = state.allocate(t)
                #expect(first && !second)
                used.insert(t)
            } else if roll < 90, let t = used.randomElement(using: &rng) {
                let first = state.free(t), second = state.free(t)
                #expect(first && !second)
                used.remove(t); pending.insert(t)
            } else {
                let released = state.releasePending()
                #expect(Set(released) == pending)
                pending.removeAll()
            }
            #expect(state.freeCount + used.count + pending.count == g.trackCount)
            #expect(state.pending.count == pending.count)
            #expect(state.pendingCapacityBytes == pending.reduce(0) { $0 + UInt64(g.capacity(of: $1)) })
        }
    }

    @Test func trackSetSearch() {
        var s = TrackSet(capacity: 200)
        #expect(s.first() == nil)
        for t in [3, 64, 65, 127, 128, 199] { s.insert(t) }
        #expect(s.first() == 3)
        #expect(s.first(from: 4) == 64)
        #expect(s.first(from: 66) == 127)
        #expect(s.first(from: 129) == 199)
        #expect(s.first(from: 200) == nil)
        #expect(s.members == [3, 64, 65, 127, 128, 199])
        s.remove(64)
        #expect(s.first(from: 4) == 65 && s.count == 5)
    }

    @Test func knownPolicyNames() {
        #expect(KVIMRPolicyName.allCases.map(\.rawValue) == ["conventional", "two-phase", "three-phase", "kvimr"])
        #expect(KVIMRPolicyName.implemented == KVIMRPolicyName.allCases)
    }
}

extension TestRNG: RandomNumberGenerator {}
