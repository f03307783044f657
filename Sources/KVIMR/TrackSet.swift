/// A set of track indices in `0..<capacity`, as a bitmap: O(1) insert/remove/contains and a fast
/// ascending search (`first(from:)`), which is what allocation policies ask most.
public struct TrackSet: Sendable, Equatable {
    private var words: [UInt64]
    public let capacity: Int
    public private(set) var count: Int = 0

    public init(capacity: Int) {
        self.capacity = capacity
        words = [UInt64](repeating: 0, count: (capacity + 63) / 64)
    }

    public var isEmpty: Bool { count == 0 }

    public func contains(_ track: Int) -> Bool {
        guard track >= 0 && track < capacity else { return false }
        return words[track >> 6] & (1 << UInt64(track & 63)) != 0
    }

    /// Inserts `track`; returns false if it was already present.
    @discardableResult
    public mutating func insert(_ track: Int) -> Bool {
        precondition(track >= 0 && track < capacity, "track \(track) outside 0..<\(capacity)")
        let bit: UInt64 = 1 << UInt64(track & 63)
        if words[track >> 6] & bit != 0 { return false }
        words[track >> 6] |= bit
        count += 1
        return true
    }

    /// Removes `track`; returns false if it was absent.
    @discardableResult
    public mutating func remove(_ track: Int) -> Bool {
        guard contains(track) else { return false }
        words[track >> 6] &= ~(1 << UInt64(track & 63))
        count -= 1
        return true
    }

    /// The smallest member `>= start`, or nil.
    public func first(from start: Int = 0) -> Int? {
        guard start < capacity else { return nil }
        var w = max(start, 0) >> 6
        var bits = words[w] & (~0 << UInt64(max(start, 0) & 63))
        while true {
            if bits != 0 {
                let t = w << 6 + bits.trailingZeroBitCount
                return t < capacity ? t : nil
            }
            w += 1
            guard w < words.count else { return nil }
            bits = words[w]
        }
    }

    /// Every member in ascending order.
    public var members: [Int] {
        var out: [Int] = []
        out.reserveCapacity(count)
        var t = first()
        while let x = t { out.append(x); t = first(from: x + 1) }
        return out
    }
}
