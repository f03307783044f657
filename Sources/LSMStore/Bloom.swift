import LSMCommon

/// A Bloom filter over the user keys of one table (LevelDB's double-hashing scheme).
package enum Bloom {
    /// LevelDB's 32-bit Murmur-like hash.
    package static func hash(_ key: [UInt8], seed: UInt32 = LSMFormat.bloomSeed) -> UInt32 {
        let m: UInt32 = 0xC6A4_A793
        var h = seed ^ (UInt32(truncatingIfNeeded: key.count) &* m)
        var i = 0
        while i + 4 <= key.count {
            h = h &+ key.readLE(UInt32.self, at: i)
            h = h &* m
            h ^= h >> 16
            i += 4
        }
        let rest = key.count - i
        if rest > 0 {
            if rest == 3 { h = h &+ UInt32(key[i + 2]) << 16 }
            if rest >= 2 { h = h &+ UInt32(key[i + 1]) << 8 }
            h = h &+ UInt32(key[i])
            h = h &* m
            h ^= h >> 24
        }
        return h
    }

    /// Builds the filter block for the given key hashes.
    /// Byte layout: [bit array: ceil(n × bitsPerKey / 8) bytes, at least 8][k: 1]
    package static func build(hashes: [UInt32], bitsPerKey: Int) -> [UInt8] {
        let bpk = max(1, bitsPerKey)
        let k = min(30, max(1, Int(Double(bpk) * 0.69)))
        let bits = max(64, hashes.count * bpk)
        let bytes = (bits + 7) / 8
        let nbits = UInt32(bytes * 8)
        var out = [UInt8](repeating: 0, count: bytes)
        for var h in hashes {
            let delta = (h >> 17) | (h << 15)
            for _ in 0..<k {
                let pos = Int(h % nbits)
                out[pos / 8] |= 1 << UInt8(pos % 8)
                h = h &+ delta
            }
        }
        out.append(UInt8(k))
        return out
    }

    /// Whether `key` may be in the set the filter was built from (false = definitely absent).
    package static func mayContain(_ filter: [UInt8], hash: UInt32) -> Bool {
        guard filter.count >= 2 else { return true }
        let k = Int(filter[filter.count - 1])
        if k > 30 { return true } // reserved for other encodings: be conservative
        let nbits = UInt32((filter.count - 1) * 8)
        var h = hash
        let delta = (h >> 17) | (h << 15)
        for _ in 0..<k {
            let pos = Int(h % nbits)
            if filter[pos / 8] & (1 << UInt8(pos % 8)) == 0 { return false }
            h = h &+ delta
        }
        return true
    }
}
