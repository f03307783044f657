import Synchronization

/// A Bloom filter over the user keys of a memtable's point entries, so a point lookup of a key
/// the memtable does not hold (most lookups, once the data outgrows the memtables) costs one
/// cache miss instead of a skiplist descent of 20–30 (RocksDB has the same option,
/// `memtable_prefix_bloom_size_ratio`). Blocked: each key sets 6 bits of one 64-bit word.
/// One bit per 16 bytes of memtable capacity: about 10 bits per entry of a 100-byte value.
///
/// The writer sets a key's bits before inserting its node; a reader only needs the bits of
/// entries its view can see, published (with the sequence, under the engine's state lock)
/// before it took the view — so relaxed atomics suffice and there are no false negatives.
final class MemtableFilter: @unchecked Sendable { // the words are atomics
    private let words: UnsafeMutablePointer<Atomic<UInt64>>
    private let mask: Int
    /// The filter's memory.
    let bytes: Int

    /// Bytes of the filter of a memtable of `capacity` bytes.
    static func bytes(forCapacity capacity: Int) -> Int { 8 * wordCount(capacity) }

    /// A power of two, at least 64 words.
    private static func wordCount(_ capacity: Int) -> Int {
        var n = 64
        while n * 64 < capacity / 16 { n <<= 1 }
        return n
    }

    init(capacity: Int) {
        let n = MemtableFilter.wordCount(capacity)
        words = .allocate(capacity: n)
        for i in 0..<n { (words + i).initialize(to: Atomic<UInt64>(0)) }
        mask = n - 1
        bytes = 8 * n
    }

    deinit { words.deallocate() }

    /// The word and the 6-bit mask of a key's Bloom hash (`Bloom.hash`).
    @inline(__always)
    private func probe(_ hash: UInt32) -> (Int, UInt64) {
        let x = UInt64(hash) &* 0x9E37_79B9_7F4A_7C15
        var m: UInt64 = 0
        for i in 0..<6 { m |= 1 << ((x >> UInt64(6 * i)) & 63) }
        return (Int(truncatingIfNeeded: x >> 40) & mask, m)
    }

    func add(hash: UInt32) {
        let (w, m) = probe(hash)
        _ = words[w].bitwiseOr(m, ordering: .relaxed)
    }

    func mayContain(hash: UInt32) -> Bool {
        let (w, m) = probe(hash)
        return words[w].load(ordering: .relaxed) & m == m
    }
}
