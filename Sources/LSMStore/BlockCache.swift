import Synchronization

/// A byte-bounded cache of decoded data blocks keyed by (table, offset), CLOCK eviction.
package final class BlockCache: Sendable {
    struct Key: Hashable { var file: UInt64; var offset: UInt64 }
    /// A cached block and its CLOCK bit, kept in the clock array itself: the hand sweeps it
    /// without hashing, and the map names each key's slot.
    struct Slot { var key: Key; var block: Block; var referenced: Bool }
    struct State {
        var map: [Key: Int] = [:]   // key → index in `slots`
        var slots: [Slot] = []
        var hand = 0
        var bytes = 0
    }
    let capacity: Int
    private let state = Mutex(State())
    package let hits = Atomic<UInt64>(0)
    package let misses = Atomic<UInt64>(0)

    package init(capacityBytes: Int) { capacity = capacityBytes }

    package func get(file: UInt64, offset: UInt64) -> Block? {
        let b = state.withLock { s -> Block? in
            guard let i = s.map[Key(file: file, offset: offset)] else { return nil }
            s.slots[i].referenced = true
            return s.slots[i].block
        }
        if b != nil { hits.add(1, ordering: .relaxed) } else { misses.add(1, ordering: .relaxed) }
        return b
    }

    package func insert(file: UInt64, offset: UInt64, _ block: Block) {
        guard capacity > 0, block.count <= capacity / 4 else { return }
        let evicted = state.withLock { s -> [Block] in
            let k = Key(file: file, offset: offset)
            if s.map[k] != nil { return [] }
            s.map[k] = s.slots.count
            s.slots.append(Slot(key: k, block: block, referenced: false))
            s.bytes += block.count
            var evicted: [Block] = []
            while s.bytes > capacity && !s.slots.isEmpty {
                if s.hand >= s.slots.count { s.hand = 0 }
                if s.slots[s.hand].referenced {
                    s.slots[s.hand].referenced = false
                    s.hand += 1
                } else {
                    evicted.append(Self.remove(&s, at: s.hand))
                }
            }
            return evicted
        }
        _ = evicted // blocks freed here, outside the lock
    }

    /// Removes slot `i` (the last slot takes its place) and returns its block.
    private static func remove(_ s: inout State, at i: Int) -> Block {
        let gone = s.slots[i]
        s.map[gone.key] = nil
        s.bytes -= gone.block.count
        let last = s.slots.count - 1
        if i != last {
            s.slots.swapAt(i, last)
            s.map[s.slots[i].key] = i
        }
        s.slots.removeLast()
        return gone.block
    }

    /// Drops every block of `file` (the table was deleted).
    package func evict(file: UInt64) {
        state.withLock { s in
            var i = 0
            while i < s.slots.count {
                if s.slots[i].key.file == file { _ = Self.remove(&s, at: i) } else { i += 1 }
            }
            s.hand = 0
        }
    }
}
