import LSMCommon
import LSMStore
import Testing

/// Forward and reverse iteration of every iterator kind against a sorted list of the entries.
private func ikey(_ i: Int, seq: UInt64 = 1) -> [UInt8] { InternalKey.make(key(i), seq, ValueKind.put.rawValue) }

/// Every entry of `it` walking forward from the first, then backward from the last.
private func walk(_ it: any InternalIterator) throws -> (forward: [[UInt8]], backward: [[UInt8]]) {
    var f: [[UInt8]] = [], b: [[UInt8]] = []
    try it.seekToFirst()
    while it.isValid { f.append(it.key); try it.next() }
    try it.seekToLast()
    while it.isValid { b.append(it.key); try it.prev() }
    return (f, b)
}

/// Seeks, seekForPrev and direction changes at random points, checked against `sorted`.
private func checkPositioning(_ it: any InternalIterator, _ sorted: [[UInt8]], probes: [[UInt8]], seed: UInt64) throws {
    var rng = RNG(seed: seed)
    for target in probes {
        let ge = sorted.firstIndex { InternalKey.compare($0, target) >= 0 }
        try it.seek(target)
        #expect(it.isValid == (ge != nil))
        if let ge, it.isValid { #expect(it.key == sorted[ge]) }
        let le = sorted.lastIndex { InternalKey.compare($0, target) <= 0 }
        try it.seekForPrev(target)
        #expect(it.isValid == (le != nil))
        guard var pos = le, it.isValid else { continue }
        #expect(it.key == sorted[pos])
        // A random walk mixing next and prev.
        for _ in 0..<rng.int(1...12) {
            if rng.bool() { try it.next(); pos += 1 } else { try it.prev(); pos -= 1 }
            if pos < 0 || pos >= sorted.count { #expect(!it.isValid); break }
            #expect(it.isValid && it.key == sorted[pos])
        }
    }
}

@Suite struct IteratorTests {
    @Test func blockIteratorBothDirections() throws {
        for (count, interval) in [(1, 16), (2, 1), (17, 4), (500, 16), (500, 1)] {
            var b = BlockBuilder(restartInterval: interval)
            let keys = (0..<count).map { ikey($0 * 2) }
            for (i, k) in keys.enumerated() { b.add(k, value(i, version: 0, size: i % 13)) }
            let block = try Block.verified(Block.withTrailer(b.finish()), what: "test")
            let it = BlockIterator(block, table: 0, blockOffset: 0)
            try it.seekToLast()
            var back: [[UInt8]] = []
            while it.isValid { back.append(it.key); try it.prev() }
            #expect(back == keys.reversed())
            for i in [0, 1, count - 1, count, 2 * count] {
                try it.seek(ikey(i))
                let want = keys.firstIndex { InternalKey.compare($0, ikey(i)) >= 0 }
                #expect(it.isValid == (want != nil))
                if let want, it.isValid {
                    #expect(it.key == keys[want])
                    try it.prev()
                    #expect(want == 0 ? !it.isValid : it.key == keys[want - 1])
                }
            }
        }
    }

    /// One iterator pointed at block after block (`reset`, as `Table.get` does from the index
    /// to a data block and table iterators do across blocks) reads each exactly as a fresh
    /// iterator would: nothing of the previous block (position, key prefix, value bounds)
    /// survives, whatever the sizes, restart intervals and positions involved.
    @Test func blockIteratorResetMatchesFreshIterator() throws {
        func block(_ keys: [[UInt8]], interval: Int, size: Int) throws -> Block {
            var b = BlockBuilder(restartInterval: interval)
            for (i, k) in keys.enumerated() { b.add(k, value(i, version: 0, size: size + i % 7)) }
            return try Block.verified(Block.withTrailer(b.finish()), what: "test")
        }
        func state(_ it: BlockIterator) -> [UInt8]? { it.isValid ? it.key + [0xFF] + it.value : nil }
        // Long keys sharing long prefixes, then short ones: a stale key prefix would show.
        let long = (0..<300).map { InternalKey.make(Array(repeating: 0x61, count: 40) + key($0), UInt64($0 + 1), ValueKind.put.rawValue) }
        let short = (0..<5).map { ikey($0 * 7, seq: 9) }
        let blocks = [try block(long, interval: 16, size: 30), try block(short, interval: 1, size: 3),
                      try block([], interval: 16, size: 0), try block(short + [ikey(99)], interval: 4, size: 200),
                      try block(long.suffix(3).map { $0 }, interval: 2, size: 1)]
        let probes = [ikey(0, seq: 0), ikey(14, seq: 0), ikey(1000, seq: 0), long[150], long[299], [UInt8](repeating: 0, count: 8)]
        var rng = RNG(seed: 5)
        let reused = BlockIterator(blocks[0], table: 1, blockOffset: nil)
        for round in 0..<400 {
            // Leave the reused iterator somewhere in its current block, then move it.
            switch rng.int(0...3) {
            case 0: try reused.seekToLast()
            case 1: try reused.seek(probes[rng.int(0...(probes.count - 1))]); try reused.next()
            case 2: try reused.seekToFirst(); try reused.prev()
            default: break   // positioned by the previous round
            }
            let b = blocks[rng.int(0...(blocks.count - 1))]
            reused.reset(b, blockOffset: UInt64(round))
            #expect(!reused.isValid, "a reset iterator is unpositioned")
            #expect(reused.key.isEmpty && reused.value.isEmpty, "and holds no key or value of the previous block")
            try reused.next(); try reused.prev()
            #expect(!reused.isValid, "next/prev do not position a reset iterator")
            let fresh = BlockIterator(b, table: 1, blockOffset: UInt64(round))
            switch rng.int(0...2) {
            case 0: try reused.seekToFirst(); try fresh.seekToFirst()
            case 1: try reused.seekToLast(); try fresh.seekToLast()
            default:
                let p = probes[rng.int(0...(probes.count - 1))]
                try reused.seek(p); try fresh.seek(p)
            }
            #expect(state(reused) == state(fresh), "round \(round)")
            for _ in 0..<rng.int(0...20) {
                if rng.bool() { try reused.next(); try fresh.next() } else { try reused.prev(); try fresh.prev() }
                #expect(state(reused) == state(fresh), "round \(round)")
                if reused.isValid && fresh.isValid { reused.withValue { r in fresh.withValue { f in #expect(Array(r) == Array(f)) } } }
            }
        }
    }

    @Test func tableIteratorBothDirections() throws {
        let out = Bytes()
        var b = TableBuilder(blockSize: 256, bitsPerKey: 10) { (bytes: [UInt8]) throws(LSMError) in out.data += bytes }
        let keys = (0..<1500).map { ikey($0 * 2, seq: UInt64($0 + 1)) }
        for (i, k) in keys.enumerated() { try b.add(k, value(i, version: 0, size: 10 + i % 40)) }
        _ = try b.finish()
        let bytes = out.data
        let t = try Table(number: 1, size: UInt64(bytes.count), cache: BlockCache(capacityBytes: 1 << 16)) {
            (offset: UInt64, count: Int) throws(LSMError) -> [UInt8] in Array(bytes[Int(offset)..<(Int(offset) + count)])
        }
        let (f, back) = try walk(t.iterator())
        #expect(f == keys)
        #expect(back == keys.reversed())
        let probes = [0, 1, 777, 1500, 2998, 2999, 5000].map { ikey($0, seq: 0) }
        try checkPositioning(t.iterator(), keys, probes: probes, seed: 1)
    }

    @Test func memtableIteratorBothDirections() throws {
        let mem = Memtable(walNumber: 1)
        var rng = RNG(seed: 7)
        var all: [[UInt8]] = []
        for seq in 1...800 as ClosedRange<UInt64> {
            let i = rng.int(0...300)
            mem.add(seq, .put, key(i), value(i, version: Int(seq), size: 8))
            all.append(InternalKey.make(key(i), seq, ValueKind.put.rawValue))
        }
        all.sort { InternalKey.compare($0, $1) < 0 }
        let (f, back) = try walk(MemtableIterator(mem))
        #expect(f == all)
        #expect(back == all.reversed())
        let probes = (0..<40).map { _ in InternalKey.make(key(rng.int(0...310)), UInt64(rng.int(0...900)), LSMFormat.seekKind) }
        try checkPositioning(MemtableIterator(mem), all, probes: probes, seed: 2)
        #expect(try walk(MemtableIterator(Memtable(walNumber: 2))).backward.isEmpty)
    }

    @Test func mergingIteratorChangesDirection() throws {
        // Three memtables with interleaved keys and several versions per key.
        var rng = RNG(seed: 11)
        let mems = (0..<3).map { Memtable(walNumber: UInt64($0)) }
        var all: [[UInt8]] = []
        for seq in 1...900 as ClosedRange<UInt64> {
            let i = rng.int(0...200), m = rng.int(0...2)
            mems[m].add(seq, .put, key(i), [UInt8(m)])
            all.append(InternalKey.make(key(i), seq, ValueKind.put.rawValue))
        }
        all.sort { InternalKey.compare($0, $1) < 0 }
        let merged = MergingIterator(mems.map { MemtableIterator($0) })
        let (f, back) = try walk(merged)
        #expect(f == all)
        #expect(back == all.reversed())
        let probes = (0..<60).map { _ in InternalKey.make(key(rng.int(0...205)), UInt64(rng.int(0...950)), LSMFormat.seekKind) }
        try checkPositioning(merged, all, probes: probes, seed: 3)
        let empty = MergingIterator([])
        try empty.seekToLast()
        #expect(!empty.isValid)
    }
}

@Suite struct ReverseScanTests {
    @Test func reverseScanHonoursSnapshotsAndRangeTombstones() throws {
        let dev = try freshDevice()
        let s = try openStore(dev)
        for i in 0..<400 { try s.put(key(i), value(i, version: 0, size: 40)) }
        try s.flush()
        let snap = try s.snapshot()
        for i in stride(from: 0, to: 400, by: 3) { try s.put(key(i), value(i, version: 1, size: 40)) }
        try s.deleteRange(key(100), key(200))
        try s.delete(key(301))
        s.waitForBackgroundWork()
        var got: [[UInt8]] = []
        try s.scan(from: key(50), to: key(320), reverse: true) { k, v in
            let i = Int(String(decoding: k.dropFirst(3), as: UTF8.self))!
            #expect(v == value(i, version: i % 3 == 0 ? 1 : 0, size: 40))
            got.append(k); return true
        }
        let want = (50..<320).filter { !(100..<200).contains($0) && $0 != 301 }.reversed().map(key)
        #expect(got == Array(want))
        // The snapshot sees neither the overwrites nor the deletes, in both directions.
        var old: [[UInt8]] = []
        try snap.scan(from: [], to: nil, reverse: true) { k, v in
            let i = Int(String(decoding: k.dropFirst(3), as: UTF8.self))!
            #expect(v == value(i, version: 0, size: 40))
            old.append(k); return true
        }
        #expect(old == (0..<400).reversed().map(key))
        try s.close()
    }
}
