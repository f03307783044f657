import Dispatch
import Foundation
import IMRDisk
import KVIMR
import LSMStore
import Testing

@Suite struct VLogCrashTests {
    /// Power fails after every possible number of device writes of one large synced batch
    /// (values spanning tracks and a segment rotation, overwrites of older separated values);
    /// the image is then crashed keeping none, some or all of the unsynced writes, torn or
    /// not. Recovery always mounts a store holding every earlier synced value and either all
    /// of the batch or none of it — all of it once the write returned — and every value it
    /// points to reads back (no pointer to a missing record).
    @Test func crashAtEveryStepOfALargeSyncedWrite() throws {
        let o = vlogOptions(threshold: 1024, segmentBytes: 192 << 10)
        let base = try freshDevice(tracks: 600)
        var model: [[UInt8]: [UInt8]] = [:]
        do {
            let s = try openStore(base, o)
            for i in 0..<40 {
                let v = value(i, version: 1, size: i % 2 == 0 ? 3000 : 100)
                try s.put(key(i), v); model[key(i)] = v
            }
            try s.sync()
            try s.close()
        }
        var batch = WriteBatch()
        var after = model
        for (n, size) in [40 << 10, 200 << 10, 40 << 10, 64 << 10, 500, 70 << 10, 2000].enumerated() {
            let i = n * 5 // overwrites keys 0, 5, 10, ...
            let v = value(i, version: 2, size: size)
            batch.put(key(i), v); after[key(i)] = v
        }
        batch.delete(key(1)); after[key(1)] = nil
        var writes = 1
        var completed = false
        while !completed {
            let mem = base.reopened()
            let faulty = FaultyTrackDevice(mem)
            let s = try LSMStore(kvimr: try KVIMR(device: faulty), options: o)
            faulty.inject(.powerLoss(afterWrites: writes))
            do { try s.write(batch, sync: true); completed = true } catch {}
            let unsynced = mem.unsyncedWriteCount
            let crashes = Set([(0, false), (unsynced / 2, true), (unsynced, false), (unsynced, true)].map { "\($0.0) \($0.1)" })
            for c in crashes {
                let parts = c.split(separator: " ")
                let image = mem.crashed(keepUnsynced: Int(parts[0])!, tearLast: parts[1] == "true")
                let r = try openStore(image, o)
                let got = try dump(r)
                if completed {
                    #expect(same(got, sortedModel(after)), "after \(writes) writes, crash \(c): the acknowledged batch is lost")
                } else {
                    #expect(same(got, sortedModel(model)) || same(got, sortedModel(after)),
                            "after \(writes) writes, crash \(c): \(got.count) keys, neither before nor after the batch")
                }
                #expect(r.verify().isClean, "after \(writes) writes, crash \(c)")
                // The recovered store keeps working.
                try r.put(key(777), value(777, version: 3, size: 5000), sync: true)
                #expect(try r.get(key(777)) == value(777, version: 3, size: 5000))
                try r.close()
            }
            try? s.close()
            writes += 1
            #expect(writes < 400, "the write never completed")
            if writes >= 400 { break }
        }
        #expect(writes > 5, "a large synced write takes several device writes")
    }

    /// Unsynced writes with separated values, crashed anywhere (keeping a random prefix of the
    /// unsynced device writes, maybe torn): the recovered store is exactly the state after some
    /// operation since the last sync — WAL records whose values did not make it end the log,
    /// never install a dangling pointer.
    @Test(arguments: Array(1...8) as [UInt64])
    func unsyncedCrashKeepsAPrefix(seed: UInt64) throws {
        var rng = RNG(seed: seed &* 91)
        let dev = try freshDevice(tracks: 800)
        let o = vlogOptions(threshold: 256, segmentBytes: 96 << 10)
        let s = try openStore(dev, o)
        var model: [[UInt8]: [UInt8]] = [:]
        var sinceSync: [[[UInt8]: [UInt8]]] = [model]
        for step in 0..<rng.int(100...600) {
            let i = rng.int(0...150)
            if rng.bool(80) {
                let v = value(i, version: step, size: rng.bool(50) ? rng.int(256...6000) : rng.int(0...255))
                try s.put(key(i), v); model[key(i)] = v
            } else {
                try s.delete(key(i)); model[key(i)] = nil
            }
            if rng.bool(4) {
                try s.sync()
                sinceSync = [model]
            } else {
                sinceSync.append(model)
            }
        }
        let after = dev.crashed(seed: seed)
        let r = try openStore(after, o)
        let got = try dump(r)
        #expect(sinceSync.contains { same(got, sortedModel($0)) },
                "seed \(seed): recovered \(got.count) keys, not a state since the last sync")
        #expect(r.verify().isClean)
        try r.close()
        try? s.close()
    }

    /// Power loss after a random number of device writes (inside a flush, a compaction, a
    /// segment rotation, a checkpoint) with separated values: the image recovers to a state
    /// at or after the last sync.
    @Test(arguments: Array(1...8) as [UInt64])
    func powerLossAnywhere(seed: UInt64) throws {
        var rng = RNG(seed: seed &* 7_919)
        try powerLossWorkload(seed: seed, rng: &rng, device: try freshDevice(tracks: 800),
                              options: vlogOptions(threshold: 512, segmentBytes: 128 << 10),
                              maxWrites: 500, steps: 2000, keys: 200) { r in
            r.bool(40) ? r.int(512...5000) : r.int(0...300)
        }
    }

    /// Concurrent synced writers of separated values (group commit): every acknowledged value
    /// survives a crash that keeps nothing unsynced.
    @Test func groupCommitWithSeparatedValues() throws {
        try concurrentSyncedWritesSurviveACrash(device: try freshDevice(tracks: 800),
                                                options: vlogOptions(threshold: 512, segmentBytes: 128 << 10),
                                                perWriter: 60) { n in n % 3 == 0 ? 100 : 3000 }
    }

    /// WAL replay checks every pointer: a batch whose pointer leads past a segment's durable
    /// end, into a segment the manifest does not list, or to a record of another key is where
    /// the log ends — it and every later batch are dropped, earlier ones kept.
    /// ("sealed": the pointer's segment was sealed before the crash, so replay checks the
    /// record's header and key only.)
    @Test(arguments: ["past the end", "unlisted segment", "other key", "other key, sealed"])
    func replayStopsAtADanglingPointer(kind: String) throws {
        let dev = try freshDevice()
        let o = vlogOptions(threshold: 200, segmentBytes: 1000)
        let s = try openStore(dev, o)
        try s.put(key(1), value(1, version: 1, size: 50), sync: true)
        try s.put(key(2), value(2, version: 1, size: 900), sync: true)
        let p2 = try #require(try s.valuePointer(key(2)))
        try s.put(key(5), value(5, version: 1, size: 900), sync: true) // seals p2's segment
        let p5 = try #require(try s.valuePointer(key(5)))            // in the open head
        #expect(p5.segment != p2.segment)
        var bad = p2
        switch kind {
        case "past the end": bad.offset = p2.end + 4096
        case "unlisted segment": bad.segment = p2.segment + 1000
        case "other key": bad = p5
        default: break // p2 itself, for another key
        }
        try s.putPointer(key(3), bad, sync: true)
        try s.put(key(4), value(4, version: 1, size: 50), sync: true)
        let r = try openStore(dev.crashed(), o)
        #expect(try r.get(key(1)) == value(1, version: 1, size: 50))
        #expect(try r.get(key(2)) == value(2, version: 1, size: 900))
        #expect(try r.get(key(5)) == value(5, version: 1, size: 900))
        #expect(try r.get(key(3)) == nil)
        #expect(try r.get(key(4)) == nil)
        #expect(r.verify().isClean)
        try r.close()
        try? s.close()
    }
}

/// Random puts (sizes from `size`), deletes and syncs on `device` until power fails after a
/// random number (1...`maxWrites`) of device writes; the image, crashed keeping a random part
/// of the unsynced writes, must recover to a state at or after the last completed sync.
func powerLossWorkload(seed: UInt64, rng: inout RNG, device mem: MemoryTrackDevice, options: LSMOptions,
                       maxWrites: Int, steps: Int, keys: Int, size: (inout RNG) -> Int) throws {
    let faulty = FaultyTrackDevice(mem, rules: [.powerLoss(afterWrites: rng.int(1...maxWrites))])
    var model: [[UInt8]: [UInt8]] = [:]
    var candidates: [[[UInt8]: [UInt8]]] = [model]
    var store: LSMStore? = nil
    do {
        let s = try LSMStore(kvimr: try KVIMR(device: faulty), options: options)
        store = s
        for step in 0..<steps {
            let i = rng.int(0...keys)
            if rng.bool(75) {
                let v = value(i, version: step, size: size(&rng))
                model[key(i)] = v
                candidates.append(model) // the failing op may or may not have landed
                try s.put(key(i), v)
            } else {
                model[key(i)] = nil
                candidates.append(model)
                try s.delete(key(i))
            }
            if rng.bool(4) {
                try s.sync()
                candidates = [model]
            }
        }
    } catch {} // power is gone
    let after = mem.crashed(keepUnsynced: rng.int(0...mem.unsyncedWriteCount), tearLast: rng.bool())
    let r = try openStore(after, options)
    let got = try dump(r)
    #expect(candidates.contains { same(got, sortedModel($0)) },
            "seed \(seed): recovered \(got.count) keys, not a state since the last sync")
    try r.close()
    _ = store
}

/// Four threads each write `perWriter` keys with `sync: true` (group commit); a crash that
/// keeps nothing unsynced must keep every one of them.
func concurrentSyncedWritesSurviveACrash(device dev: MemoryTrackDevice, options: LSMOptions, perWriter: Int,
                                         size: @escaping @Sendable (Int) -> Int) throws {
    let s = try openStore(dev, options)
    let group = DispatchGroup()
    let failures = Failures()
    for w in 0..<4 {
        group.enter()
        Thread.detachNewThread {
            defer { group.leave() }
            do {
                for n in 0..<perWriter {
                    let i = w * 1000 + n
                    try s.put(key(i), value(i, version: 2, size: size(n)), sync: true)
                }
            } catch { failures.add("writer \(w): \(error)") }
        }
    }
    group.wait()
    #expect(failures.all.isEmpty, "\(failures.all.prefix(3))")
    let r = try openStore(dev.crashed(), options)
    for w in 0..<4 {
        for n in 0..<perWriter {
            let i = w * 1000 + n
            #expect(try r.get(key(i)) == value(i, version: 2, size: size(n)), "writer \(w) key \(n)")
        }
    }
    try r.close()
    try? s.close()
}
