import IMRDisk
import KVIMR
import LSMCommon
import LSMStore
import Testing

/// `LSMStore.scanPlacing`: each live key's value goes where `place` says — skipped (not read),
/// visited (as an array), copied whole or in part into a caller's buffer — for values inline in
/// the tree and values in the value log alike. A `.visit` entry sees every value placed before
/// it (in key order) already in place. A damaged value-log record is `.corrupt` (counted),
/// whether its value was placed whole or in part.
@Suite struct ScanPlacingTests {
    enum Mode { case skip, visit, whole, part }

    /// One placement the scan was asked to make: the key's index, the expected bytes, where.
    struct Placed {
        var index: Int
        var expected: ArraySlice<UInt8>
        var buffer: UnsafeMutableRawBufferPointer
        var isInPlace: Bool { Array(buffer) == Array(expected) }
    }

    /// What one scan did.
    struct Outcome {
        var asked: [(index: Int, length: Int)] = []
        var visited: [(index: Int, value: [UInt8])] = []
        var placed: [Placed] = []
        var orderViolations: [String] = []
    }

    func index(of k: [UInt8]) -> Int { Int(String(decoding: k.dropFirst(3), as: UTF8.self))! }

    /// Runs `scanPlacing` over [from, to) with `mode(i)` choosing each key's placement;
    /// `model` gives the expected values (to size the partial placements and check order).
    /// Every placement buffer starts filled with 0xEE; they are freed after `check`.
    func run(_ s: LSMStore, from: [UInt8] = [], to: [UInt8]? = nil, model: [Int: [UInt8]],
                    stopAfterVisits: Int = .max, mode: (Int) -> Mode,
                    check: (Outcome) throws -> Void = { _ in }) throws {
        var out = Outcome()
        defer { out.placed.forEach { $0.buffer.deallocate() } }
        try s.scanPlacing(from: from, to: to, place: { k, length in
            let i = index(of: k)
            out.asked.append((i, length))
            let v = model[i] ?? []
            switch mode(i) {
            case .skip: return .skip
            case .visit: return .visit
            case .whole, .part:
                let r: Range<Int> = mode(i) == .whole ? 0..<length : (length / 3)..<(length / 3 + max(1, length / 4))
                let b = UnsafeMutableRawBufferPointer.allocate(byteCount: r.count, alignment: 1)
                b.initializeMemory(as: UInt8.self, repeating: 0xEE)
                out.placed.append(Placed(index: i, expected: v.count >= r.upperBound ? v[r] : [], buffer: b))
                return .copy(from: r.lowerBound, into: b)
            }
        }, visit: { k, value in
            let i = index(of: k)
            for p in out.placed where p.index < i && !p.isInPlace {
                out.orderViolations.append("key \(p.index) not in place when \(i) was visited")
            }
            out.visited.append((i, value))
            return out.visited.count < stopAfterVisits
        })
        try check(out)
    }

    /// Values of mixed sizes: inline (< 200 bytes), just over the threshold, and large (tens of
    /// KiB, several to a segment); some keys overwritten, some deleted.
    func build(_ s: LSMStore, count: Int) throws -> [Int: [UInt8]] {
        var model: [Int: [UInt8]] = [:]
        for i in 0..<count {
            let size = switch i % 5 { case 0: 50 + i % 100; case 1: 210 + i; case 2: 3000 + i * 13; case 3: 40_000 + i * 101; default: 120 }
            model[i] = value(i, version: 1, size: size)
            try s.put(key(i), model[i]!)
        }
        for i in stride(from: 3, to: count, by: 11) {
            model[i] = value(i, version: 2, size: i % 2 == 0 ? 90 : 5000 + i)
            try s.put(key(i), model[i]!)
        }
        for i in stride(from: 7, to: count, by: 13) { model[i] = nil; try s.delete(key(i)) }
        return model
    }

    func modes(_ i: Int) -> Mode { [Mode.whole, .visit, .part, .skip, .whole, .part, .visit][i % 7] }

    /// Checks a full run against the model: every live key asked once with its length, the
    /// chosen ones visited with their values, placements filled, no order violation.
    func verify(_ out: Outcome, model: [Int: [UInt8]], range: Range<Int>, mode: (Int) -> Mode) {
        let live = model.keys.filter { range.contains($0) }.sorted()
        #expect(out.asked.map(\.index) == live)
        for (i, length) in out.asked { #expect(length == model[i]?.count, "length of \(i)") }
        let visits = live.filter { mode($0) == .visit }
        #expect(out.visited.map(\.index) == visits)
        for (i, v) in out.visited { #expect(v == model[i], "visited value of \(i)") }
        #expect(out.placed.map(\.index) == live.filter { mode($0) == .whole || mode($0) == .part })
        for p in out.placed { #expect(p.isInPlace, "placed value of \(p.index)") }
        #expect(out.orderViolations.isEmpty, "\(out.orderViolations.prefix(5))")
    }

    @Test func placesInlineAndValueLogValues() throws {
        let dev = try freshDevice()
        let o = vlogOptions(threshold: 200, segmentBytes: 512 << 10)
        var s = try openStore(dev, o)
        let model = try build(s, count: 260)
        #expect(s.stats().vlog.segments >= 2)
        // In the memtable(s) and tables as written; then all flushed; then after a reopen.
        for phase in 0..<3 {
            if phase == 1 { try s.flush(); s.waitForBackgroundWork() }
            if phase == 2 { try s.close(); s = try openStore(dev.reopened(), o) }
            try run(s, model: model, mode: modes) { out in
                verify(out, model: model, range: 0..<260, mode: modes)
            }
            // A sub-range, and every placement of one kind.
            try run(s, from: key(40), to: key(171), model: model, mode: modes) { out in
                verify(out, model: model, range: 40..<171, mode: modes)
            }
            for m in [Mode.whole, .part, .visit, .skip] {
                try run(s, model: model, mode: { _ in m }) { out in
                    verify(out, model: model, range: 0..<260, mode: { _ in m })
                    if m == .skip { #expect(out.visited.isEmpty && out.placed.isEmpty) }
                }
            }
        }
        try s.close()
    }

    /// `visit` returning false ends the scan: nothing is visited after it.
    @Test func visitCanStopTheScan() throws {
        let s = try openStore(try freshDevice(), vlogOptions(threshold: 200))
        let model = try build(s, count: 120)
        try run(s, model: model, stopAfterVisits: 3, mode: modes) { out in
            #expect(out.visited.count == 3)
            #expect(out.orderViolations.isEmpty)
            let firstVisits = model.keys.sorted().filter { modes($0) == .visit }.prefix(3)
            #expect(out.visited.map(\.index) == Array(firstVisits))
            for (i, v) in out.visited { #expect(v == model[i]) }
        }
        try s.close()
    }

    /// An empty placement (zero bytes) and placements at the very end of a value.
    @Test func edgePlacements() throws {
        let s = try openStore(try freshDevice(), vlogOptions(threshold: 200))
        let big = value(1, version: 1, size: 70_000), small = value(2, version: 1, size: 40)
        try s.put(key(1), big)
        try s.put(key(2), small)
        for flushed in [false, true] {
            if flushed { try s.flush() }
            var tails: [Int: [UInt8]] = [:]
            var empties = 0
            var buffers: [UnsafeMutableRawBufferPointer] = []
            defer { buffers.forEach { $0.deallocate() } }
            try s.scanPlacing(from: [], to: nil, place: { k, length in
                let i = index(of: k)
                if empties < 2 { empties += 1; return .copy(from: length, into: UnsafeMutableRawBufferPointer(start: nil, count: 0)) }
                let b = UnsafeMutableRawBufferPointer.allocate(byteCount: 7, alignment: 1)
                buffers.append(b)
                tails[i] = []
                return .copy(from: length - 7, into: b)
            }, visit: { _, _ in Issue.record("nothing to visit"); return true })
            #expect(tails.isEmpty, "both were empty placements")
            empties = 2
            try s.scanPlacing(from: [], to: nil, place: { k, length in
                let b = UnsafeMutableRawBufferPointer.allocate(byteCount: 7, alignment: 1)
                buffers.append(b)
                tails[index(of: k)] = []
                return .copy(from: length - 7, into: b)
            }, visit: { _, _ in true })
            #expect(Array(buffers[0]) == Array(big.suffix(7)))
            #expect(Array(buffers[1]) == Array(small.suffix(7)))
        }
        try s.close()
    }

    /// A flipped bit in a value-log record: a whole placement, a partial placement (even of
    /// bytes away from the flip) and a visit of that value all fail with `.corrupt` and are
    /// counted; skipping it, or scanning around it, still works.
    @Test(arguments: [0, 1, 2])   // the flip: in the value's tail, in its head, in the key
    func damagedRecordIsCorrupt(where flip: Int) throws {
        let dev = try freshDevice()
        let o = vlogOptions(threshold: 200, segmentBytes: 1 << 20)
        var s = try openStore(dev, o)
        var model: [Int: [UInt8]] = [:]
        for i in 0..<60 { model[i] = value(i, version: 1, size: i % 3 == 0 ? 100 : 9000 + i); try s.put(key(i), model[i]!) }
        let p = try #require(try s.valuePointer(key(22)))
        try s.close()
        let at: UInt64 = switch flip {
        case 0: p.offset + UInt64(p.length) - 5
        case 1: p.offset + UInt64(p.length) - 8000
        default: p.offset + UInt64(VLogFormat.headerSize) + 1 }
        s = try openStore(try flipBit(dev, file: p.segment, at: at), o)
        for m in [Mode.whole, .part, .visit] {
            let before = s.stats().vlog.checksumErrors
            // Partial placement of bytes well away from the flip (the value's first bytes).
            let e = lsmError {
                try run(s, model: model, mode: { $0 == 22 ? m : ($0 % 2 == 0 ? .whole : .part) })
            }
            #expect(e?.kind == .corrupt, "mode \(m)")
            #expect(s.stats().vlog.checksumErrors > before, "mode \(m) counted")
        }
        // A first-bytes partial placement (not overlapping a tail flip) is still checked.
        let before = s.stats().vlog.checksumErrors
        var buffer = [UInt8](repeating: 0, count: 16)
        let e = buffer.withUnsafeMutableBytes { b in
            lsmError {
                try s.scanPlacing(from: key(22), to: key(23), place: { _, _ in .copy(from: 0, into: b) }, visit: { _, _ in true })
            }
        }
        #expect(e?.kind == .corrupt)
        #expect(s.stats().vlog.checksumErrors > before)
        // Skipped, it is never read; the rest of the store still places right.
        let skip22: (Int) -> Mode = { $0 == 22 ? .skip : modes($0) }
        try run(s, model: model, mode: skip22) { out in
            verify(out, model: model, range: 0..<60, mode: skip22)
        }
        try run(s, from: key(23), model: model, mode: modes) { out in
            verify(out, model: model, range: 23..<60, mode: modes)
        }
        try s.close()
    }

    /// `VLogFormat.verify(head:value:expectedKey:)` accepts a record split into its head (header
    /// and key) and value, and rejects any flipped bit, a wrong key and wrong lengths.
    @Test func verifySplitRecord() throws {
        let key: [UInt8] = [9, 8, 7, 6]
        let rec = VLogFormat.encodeRecord(key: key, value: (0..<500).map { UInt8(truncatingIfNeeded: $0 * 7) })
        let headCount = VLogFormat.headerSize + key.count
        func check(_ r: [UInt8], key: [UInt8] = key, head: Int = headCount) -> Result<VLogFormat.Header, VLogFormat.Damage> {
            r.withUnsafeBytes { b in
                VLogFormat.verify(head: UnsafeRawBufferPointer(rebasing: b[0..<head]),
                                  value: UnsafeRawBufferPointer(rebasing: b[head...]), expectedKey: key)
            }
        }
        let h = try check(rec).get()
        #expect(h.valueLength == 500 && h.keyLength == 4)
        for i in rec.indices {
            var bad = rec
            bad[i] ^= 0x01
            #expect((try? check(bad).get()) == nil, "flip at \(i) undetected")
        }
        #expect(throws: VLogFormat.Damage.keyMismatch) { try check(rec, key: [9, 8, 7, 5]).get() }
        #expect((try? check(rec, head: headCount - 1).get()) == nil)
        #expect((try? check(rec, head: headCount + 1).get()) == nil)
        #expect((try? check(Array(rec.dropLast())).get()) == nil)
        #expect((try? check(Array(rec.prefix(10)), head: 10).get()) == nil)
    }
}
