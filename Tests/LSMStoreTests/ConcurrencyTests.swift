import Foundation
import LSMStore
import Synchronization
import Testing

/// Writers and readers on several threads while small memtables keep flushes and compactions
/// running; checked against a model.
@Suite struct StoreConcurrencyTests {
    final class Shared: Sendable {
        let done = Atomic<Int>(0)
        let problems = Mutex<[String]>([])
        let models: Mutex<[[[UInt8]: [UInt8]]]>
        init(writers: Int) { models = Mutex(Array(repeating: [:], count: writers)) }
        func fail(_ m: String) { problems.withLock { if $0.count < 20 { $0.append(m) } } }
    }

    static func k(_ t: Int, _ name: String) -> [UInt8] { Array("w\(t)/\(name)".utf8) }
    static func counterValue(_ n: Int, pad: Int) -> [UInt8] {
        Array(String(n).utf8) + [UInt8(ascii: ":")] + [UInt8](repeating: UInt8(truncatingIfNeeded: n), count: pad)
    }
    static func counter(_ v: [UInt8]?) -> Int? {
        guard let v, let colon = v.firstIndex(of: UInt8(ascii: ":")) else { return nil }
        return Int(String(decoding: v[..<colon], as: UTF8.self))
    }

    /// Runs `body(i)` on `n` threads and waits for all of them.
    static func onThreads(_ n: Int, _ body: @escaping @Sendable (Int) -> Void) {
        let group = DispatchGroup()
        for i in 0..<n {
            group.enter()
            Thread.detachNewThread { body(i); group.leave() }
        }
        group.wait()
    }

    /// Each writer owns a key range: random puts and deletes of its own keys, and batches that
    /// set its two counter keys `a` and `b` to the same increasing number. Readers check, on
    /// snapshots and on the live store: `a == b` in every snapshot (batches are atomic, views
    /// consistent across flushes and compactions), counters never go backwards, every value
    /// read names its own key, and a snapshot reads the same before and after the background
    /// work that ran meanwhile. At the end the store equals the writers' models, also after
    /// a reopen.
    @Test(arguments: ["leveled", "tiered"])
    func writersReadersAndCompactions(style: String) throws {
        var o = smallOptions()
        if style == "tiered" { o.compactionStyle = .tiered(sizeRatio: 3) }
        let dev = try freshDevice(tracks: 800)
        let s = try openStore(dev, o)
        let writers = 3, readers = 3, opsPerWriter = 1500
        let shared = Shared(writers: writers)
        @Sendable func fail(_ m: String) { shared.fail(m) }

        Self.onThreads(writers + readers) { id in
            do {
                if id < writers {
                    let t = id
                    var rng = RNG(seed: UInt64(t) &+ 99)
                    var model: [[UInt8]: [UInt8]] = [:]
                    var n = 0
                    for step in 0..<opsPerWriter {
                        let i = rng.int(0...150)
                        let key = Self.k(t, "k\(format6(i))")
                        switch rng.int(0...9) {
                        case 0..<6:
                            let v = key + [UInt8(ascii: "=")] + value(i, version: step, size: rng.int(10...200))
                            try s.put(key, v); model[key] = v
                        case 6:
                            try s.delete(key); model[key] = nil
                        default:
                            n += 1
                            var b = WriteBatch()
                            let v = Self.counterValue(n, pad: rng.int(0...100))
                            b.put(Self.k(t, "a"), v); b.put(Self.k(t, "b"), v)
                            try s.write(b)
                            model[Self.k(t, "a")] = v; model[Self.k(t, "b")] = v
                        }
                    }
                    let m = model
                    shared.models.withLock { $0[t] = m }
                    shared.done.add(1, ordering: .sequentiallyConsistent)
                } else {
                    var rng = RNG(seed: UInt64(id) &* 7)
                    var seen = [Int](repeating: 0, count: writers)
                    while shared.done.load(ordering: .sequentiallyConsistent) < writers {
                        let t = rng.int(0...(writers - 1))
                        let snap = try s.snapshot()
                        let a = Self.counter(try snap.get(Self.k(t, "a"))) ?? 0
                        let b = Self.counter(try snap.get(Self.k(t, "b"))) ?? 0
                        if a != b { fail("writer \(t): snapshot sees a=\(a) b=\(b)") }
                        if a < seen[t] { fail("writer \(t): counter went back from \(seen[t]) to \(a)") }
                        seen[t] = max(seen[t], a)
                        let live = Self.counter(try s.get(Self.k(t, "a"))) ?? 0
                        if live < a { fail("writer \(t): live counter \(live) behind snapshot \(a)") }
                        let range = (Self.k(t, "k"), Self.k(t, "l"))
                        let before = try dump(snap, from: range.0, to: range.1)
                        for (key, v) in before where !v.starts(with: key + [UInt8(ascii: "=")]) {
                            fail("value of \(String(decoding: key, as: UTF8.self)) names another key")
                        }
                        if rng.bool(30) { usleep(UInt32(rng.int(100...3000))) } // let background work run
                        let after = try dump(snap, from: range.0, to: range.1)
                        if !same(before, after) { fail("writer \(t): snapshot changed (\(before.count) → \(after.count) keys)") }
                    }
                }
            } catch {
                fail("thread \(id): \(error)")
            }
        }
        let p = shared.problems.withLock { $0 }
        #expect(p.isEmpty, "\(p)")
        let model = shared.models.withLock { $0.reduce(into: [:]) { $0.merge($1) { a, _ in a } } }
        s.waitForBackgroundWork()
        #expect(s.versionInvariantViolation() == nil)
        #expect(same(try dump(s), sortedModel(model)))
        let st = s.stats()
        #expect(st.flushes > 5 && st.compactions > 0, "flushes \(st.flushes), compactions \(st.compactions)")
        try s.close()
        let r = try openStore(dev.reopened(), o)
        #expect(same(try dump(r), sortedModel(model)))
        for key in model.keys.prefix(200) { #expect(try r.get(key) == model[key]) }
        try r.close()
    }
}
