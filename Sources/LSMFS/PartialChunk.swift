/// The written ranges of a chunk buffered without its stored content, and that content's
/// length then (the stored chunk cannot change while the chunk is buffered: every other
/// writer of chunk keys flushes the buffer first).
struct PartialChunk {
    var baseLength: Int
    var ranges: [Range<Int>]
    /// The stored chunk is a hole chunk: an empty base with patches (`ChunkPages`).
    var emptyBase = false

    /// Adds a written range, merging it with the ranges it overlaps or touches.
    mutating func add(_ r: Range<Int>) {
        var lo = r.lowerBound, hi = r.upperBound
        ranges.removeAll { x in
            guard x.lowerBound <= hi && lo <= x.upperBound else { return false }
            lo = min(lo, x.lowerBound); hi = max(hi, x.upperBound)
            return true
        }
        ranges.append(lo..<hi)
    }

    /// Whether the written ranges cover all of the stored content: the chunk is then complete
    /// without it (a chunk rewritten in 16 sequential 4 KiB writes, or from its start past its
    /// stored end, needs no value-log read).
    var coversBase: Bool { ranges.contains { $0.lowerBound == 0 && $0.upperBound >= baseLength } }

    /// `self`, or nil once the written ranges cover the stored content (see `coversBase`).
    var unlessCovering: PartialChunk? { coversBase ? nil : self }

    /// The chunk: `base` (its stored content) with the written ranges of `bytes` over it.
    /// `base` is consumed: pass it without keeping a reference, or it is copied to be changed.
    func compose(base: consuming [UInt8]?, _ bytes: [UInt8]) -> [UInt8] {
        var out = (consume base) ?? []
        out.zeroExtend(to: bytes.count)
        out.withUnsafeMutableBytes { o in
            bytes.withUnsafeBytes { b in
                for r in ranges { (o.baseAddress! + r.lowerBound).copyMemory(from: b.baseAddress! + r.lowerBound, byteCount: r.count) }
            }
        }
        return out
    }
}

extension Array where Element == UInt8 {
    /// Grows to `n` bytes with zeros at the end (no-op if already that long). One memset and
    /// one copy: appending a `repeatElement` goes element by element (9% of a random-write
    /// profile, where a 4 KiB write near a chunk's end pads up to 60 KiB).
    mutating func zeroExtend(to n: Int) {
        guard count < n else { return }
        var out = [UInt8](repeating: 0, count: n)
        if !isEmpty {
            out.withUnsafeMutableBytes { o in withUnsafeBytes { o.baseAddress!.copyMemory(from: $0.baseAddress!, byteCount: $0.count) } }
        }
        self = out
    }
}
