import LSMCommon
import LSMStore

/// One benchmark thread: db_bench's workloads on the shared store. Keys are db_bench's
/// (RocksDB's GenerateKeyFromInt): the 8-byte big-endian key number padded with '0' to
/// `key_size`; random keys are uniform in [0, num) with repetition, as in db_bench.
struct BenchKVWorker {
    let config: BenchKVConfig
    let store: LSMStore
    let live: BenchKVLiveKeys
    let thread: Int
    var rng: UInt64
    /// Random value bytes; values are consecutive slices (db_bench's RandomGenerator).
    let valueSource: [UInt8]
    var valuePos = 0

    init(config: BenchKVConfig, store: LSMStore, live: BenchKVLiveKeys, thread: Int, stream: Int) {
        self.config = config; self.store = store; self.live = live; self.thread = thread
        // SplitMix64's output for state seed + k·γ, k = this thread's stream index.
        var g = SplitMix64(seed: config.seed &+ (UInt64(stream &* 64 &+ thread) &- 1) &* 0x9E37_79B9_7F4A_7C15)
        rng = g.next() | 1
        var r = rng ^ 0xDEAD_BEEF
        valueSource = (0..<(1 << 20)).map { _ in
            r ^= r << 13; r ^= r >> 7; r ^= r << 17
            return UInt8(truncatingIfNeeded: r)
        }
    }

    mutating func next() -> UInt64 {
        rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17
        return rng
    }

    func key(_ n: Int) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: config.keySize) { buf, count in
            let v = UInt64(n).bigEndian
            withUnsafeBytes(of: v) { b in
                for i in 0..<min(8, config.keySize) { buf[i] = b[i] }
            }
            if config.keySize > 8 { for i in 8..<config.keySize { buf[i] = 0x30 } }
            count = config.keySize
        }
    }

    /// The array of each value position, built on first use: db_bench hands out slices of its
    /// buffer without copying, so ours does not copy per operation either (a 16 KiB copy and
    /// allocation per put were 5% of a large-value fillrandom's samples). Positions are
    /// multiples of the value size, so at most ~1 MiB of values is held.
    var valueArrays: [[UInt8]] = []

    mutating func value() -> [UInt8] {
        let n = config.valueSize
        if valuePos + n > valueSource.count { valuePos = 0 }
        defer { valuePos += n }
        let slot = n == 0 ? 0 : valuePos / n
        if slot < valueArrays.count { return valueArrays[slot] }
        let v = Array(valueSource[valuePos..<(valuePos + n)])
        if slot == valueArrays.count { valueArrays.append(v) }
        return v
    }

    mutating func randomKeyNumber() -> Int { Int(next() % UInt64(config.num)) }

    /// Runs `name`: (operations, bytes moved, keys found).
    mutating func run(_ name: String) throws(LSMError) -> (Int, Int, Int) {
        let c = config
        let entry = c.keySize + c.valueSize
        switch name {
        case "fillseq":
            for i in 0..<c.num { try store.put(key(i), value(), sync: c.sync); live.insert(i) }
            return (c.num, c.num * entry, 0)
        case "fillrandom", "overwrite":
            for _ in 0..<c.num {
                let n = randomKeyNumber()
                try store.put(key(n), value(), sync: c.sync)
                live.insert(n)
            }
            return (c.num, c.num * entry, 0)
        case "deleterandom":
            for _ in 0..<c.num {
                let n = randomKeyNumber()
                try store.delete(key(n), sync: c.sync)
                live.remove(n)
            }
            return (c.num, 0, 0)
        case "readrandom":
            var found = 0, bytes = 0
            for _ in 0..<c.readCount {
                let k = key(randomKeyNumber())
                if let v = try store.get(k) { found += 1; bytes += k.count + v.count }
            }
            return (c.readCount, bytes, found)
        case "readseq":
            var n = 0, bytes = 0
            let limit = c.readCount
            try store.scan(from: [], to: nil) { k, v in
                n += 1; bytes += k.count + v.count
                return n < limit
            }
            return (n, bytes, n)
        case "seekrandom":
            var found = 0, bytes = 0
            for _ in 0..<c.readCount {
                let k = key(randomKeyNumber())
                var seen = 0
                try store.scan(from: k, to: nil) { key, v in
                    if seen == 0 && key == k { found += 1 }
                    bytes += key.count + v.count
                    seen += 1
                    return seen <= c.seekNexts
                }
            }
            return (c.readCount, bytes, found)
        default:
            return (0, 0, 0)
        }
    }
}
