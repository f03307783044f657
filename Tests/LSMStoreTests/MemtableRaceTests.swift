import Foundation
import LSMStore
import Synchronization
import Testing

/// Readers never block the memtable's writer, so a point lookup races with inserts. A lookup
/// at sequence S must never return a version newer than S, even when the writer links that
/// version right where the lookup is looking (a batch's second key right after its first).
@Suite struct MemtableRaceTests {
    @Test func lookupsNeverSeeVersionsPastTheirSequence() {
        let mem = Memtable(walNumber: 1)
        let published = Atomic<UInt64>(0)
        let done = Atomic<Bool>(false)
        let bad = Atomic<Int>(0)
        let a: [UInt8] = Array("w2/a".utf8), b: [UInt8] = Array("w2/b".utf8)
        let group = DispatchGroup()
        for _ in 0..<2 {
            group.enter()
            Thread.detachNewThread {
                while !done.load(ordering: .acquiring) {
                    let s = published.load(ordering: .acquiring)
                    for key in [b, a] {
                        if let (_, seq, _) = mem.getWithSeq(key, seq: s), seq > s { bad.add(1, ordering: .relaxed) }
                    }
                }
                group.leave()
            }
        }
        var seq: UInt64 = 0
        let value = [UInt8](repeating: 7, count: 16)
        for _ in 0..<150_000 {       // batches of two keys, like a counter pair
            mem.add(seq + 1, .put, a, value)
            mem.add(seq + 2, .put, b, value)
            seq += 2
            published.store(seq, ordering: .releasing)
        }
        done.store(true, ordering: .releasing)
        group.wait()
        #expect(bad.load(ordering: .relaxed) == 0, "lookups returned versions newer than their sequence")
    }
}
