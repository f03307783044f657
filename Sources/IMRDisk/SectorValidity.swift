/// Which sectors of the drive hold valid data: a bitmap per track, allocated on first use,
/// so memory follows what was written, not the drive's size.
///
/// A write marks sectors valid; `trim` clears them. Counts per track kind are kept exact.
package struct SectorValidity: Sendable {
    package let geometry: IMRGeometry
    private var bits: [Int: [UInt64]] = [:]
    package private(set) var validBottom: UInt64 = 0
    package private(set) var validTop: UInt64 = 0

    package init(geometry: IMRGeometry) { self.geometry = geometry }

    package func isValid(_ track: Int, _ sector: Int) -> Bool {
        guard let w = bits[track] else { return false }
        return w[sector >> 6] & (1 << UInt64(sector & 63)) != 0
    }

    package mutating func set(_ track: Int, _ range: Range<Int>, valid: Bool) {
        if range.isEmpty { return }
        if !valid && bits[track] == nil { return }
        let words = (geometry.sectors(of: track) + 63) / 64
        var changed = 0
        var w = bits.removeValue(forKey: track) ?? [UInt64](repeating: 0, count: words)
        for s in range {
            let mask: UInt64 = 1 << UInt64(s & 63)
            let was = w[s >> 6] & mask != 0
            if was != valid {
                if valid { w[s >> 6] |= mask } else { w[s >> 6] &= ~mask }
                changed += 1
            }
        }
        if w.contains(where: { $0 != 0 }) { bits[track] = w }
        let delta = UInt64(changed)
        if geometry.isBottom(track) {
            validBottom = valid ? validBottom + delta : validBottom - delta
        } else {
            validTop = valid ? validTop + delta : validTop - delta
        }
    }

    /// The maximal runs of valid sectors of `track` inside `range`.
    package func validRuns(_ track: Int, in range: Range<Int>) -> [Range<Int>] {
        guard bits[track] != nil else { return [] }
        var runs: [Range<Int>] = []
        var start: Int? = nil
        for s in range {
            if isValid(track, s) {
                if start == nil { start = s }
            } else if let st = start {
                runs.append(st..<s); start = nil
            }
        }
        if let st = start { runs.append(st..<range.upperBound) }
        return runs
    }

    package func validCount(_ track: Int) -> Int {
        guard let w = bits[track] else { return 0 }
        return w.reduce(0) { $0 + $1.nonzeroBitCount }
    }

    package mutating func removeAll() {
        bits.removeAll(); validBottom = 0; validTop = 0
    }
}
