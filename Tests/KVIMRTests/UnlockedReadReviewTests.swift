import Foundation
import Glibc
import IMRDisk
import KVIMR
import Synchronization
import Testing

/// Review of `KVIMR.read`'s unlocked track reads (revread): the one write that lands on a live
/// file's stored sectors outside a merged RMW — the rewrite of a reopened, unsealed file's
/// partial last sector by a later write-out (its head read back and written again with the new
/// bytes) — must never hand a reader stalled across it anything but the file's bytes.
@Suite struct UnlockedReadReviewTests {
    @Test func readersOfAReopenedTailRaceItsRewrite() throws {
        let problems = Problems()
        let g = smallGeometry(tracks: 16)
        let mem = MemoryTrackDevice(geometry: g, policy: "two-phase")
        try KVIMR.format(device: mem)
        let all = pattern(6 * g.sectorSize, seed: 77)
        let base = g.sectorSize + 123                     // ends inside a sector
        let n: FileNumber
        do {
            let k0 = try KVIMR(device: mem)
            n = try k0.create(kind: .vlog, level: 0)
            try k0.append(n, Array(all[0..<base]))
            try k0.sync([n])
            try k0.close()
        }
        let dev = StallingDevice(mem.reopened())
        let k = try KVIMR(device: dev)                     // no buffer: the tail is read from its track
        #expect(try readAll(k, n) == Array(all[0..<base]))
        dev.set(readMicros: 1500)
        let size = Atomic<Int>(base)
        let stop = Atomic<Bool>(false)
        let reads = Atomic<Int>(0)
        onThreads(4) { t in
            guard t > 0 else {
                defer { stop.store(true, ordering: .releasing) }
                dev.exemptCallingThread()
                while reads.load(ordering: .relaxed) < 2 { usleep(200) }
                var at = base
                do {
                    while at < all.count {
                        let step = min(29, all.count - at)  // many rewrites of each tail sector
                        try k.append(n, Array(all[at..<(at + step)]))
                        at += step
                        size.store(at, ordering: .releasing)
                        try k.sync([n])
                        usleep(300)
                    }
                } catch { problems.note("writer: \(error)") }
                return
            }
            while !stop.load(ordering: .acquiring) {
                let have = size.load(ordering: .acquiring)
                do {
                    let back = try readRange(k, n, at: 0, count: have)
                    if back[...] != all[0..<have] { problems.note("reader \(t): wrong bytes of \(have)"); return }
                    reads.add(1, ordering: .relaxed)
                } catch { problems.note("reader \(t): \(error)"); return }
            }
        }
        dev.set()
        #expect(problems.all.isEmpty, "\(problems.all)")
        #expect(reads.load(ordering: .relaxed) > 2)
        #expect(try readAll(k, n) == all)
    }
}
