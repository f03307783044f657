import Synchronization

/// A byte-bounded cache of decoded data blocks keyed by (table, offset), CLOCK eviction.
package final class BlockCache: Sendable {
    struct Key: Hashable { var file: UInt64; var offset: UInt64 }
    struct Slot { var block: Block; var referenced: Bool }
    struct State {
        var map: [Key: Slot] = [:]
        var clock: [Key] = []
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
            let k = Key(file: file, offset: offset)
            guard var slot = s.map[k] else { return nil }
            if !slot.referenced { slot.referenced = true; s.map[k] = slot }
            return slot.block
        }
        if b != nil { hits.add(1, ordering: .relaxed) } else { misses.add(1, ordering: .relaxed) }
        return b
    }

    package func insert(file: UInt64, offset: UInt64, _ block: Block) {
        guard capacity > 0, block.count <= capacity / 4 else { return }
        state.withLock { s in
            let k = Key(file: file, offset: offset)
            if s.map[k] != nil { return }
            s.map[k] = Slot(block: block, referenced: false)
            s.clock.append(k)
            s.bytes += block.count
            while s.bytes > capacity && !s.clock.isEmpty {
                if s.hand >= s.clock.count { s.hand = 0 }
                let victim = s.clock[s.hand]
                guard var slot = s.map[victim] else { s.clock.remove(at: s.hand); continue }
                if slot.referenced {
                    slot.referenced = false; s.map[victim] = slot; s.hand += 1
                } else {
                    s.map[victim] = nil
                    s.bytes -= slot.block.count
                    s.clock.swapAt(s.hand, s.clock.count - 1)
                    s.clock.removeLast()
                }
            }
        }
    }

    /// Drops every block of `file` (the table was deleted).
    package func evict(file: UInt64) {
        state.withLock { s in
            var kept: [Key] = []
            kept.reserveCapacity(s.clock.count)
            for k in s.clock {
                if k.file == file {
                    if let slot = s.map.removeValue(forKey: k) { s.bytes -= slot.block.count }
                } else {
                    kept.append(k)
                }
            }
            s.clock = kept
            s.hand = 0
        }
    }
}
