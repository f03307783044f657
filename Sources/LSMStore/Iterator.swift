/// An ordered cursor over internal entries (internal key → value), forward and reverse.
package protocol InternalIterator: AnyObject {
    var isValid: Bool { get }
    /// The current internal key (valid only while `isValid`).
    var key: [UInt8] { get }
    var value: [UInt8] { get }
    func seekToFirst() throws(LSMError)
    /// Positions at the last entry.
    func seekToLast() throws(LSMError)
    /// Positions at the first entry with internal key >= target.
    func seek(_ target: [UInt8]) throws(LSMError)
    func next() throws(LSMError)
    /// Moves to the previous entry (invalid before the first).
    func prev() throws(LSMError)
}

extension InternalIterator {
    /// Positions at the last entry with internal key <= target.
    package func seekForPrev(_ target: [UInt8]) throws(LSMError) {
        try seek(target)
        if !isValid {
            try seekToLast()
        } else if InternalKey.compare(key, target) > 0 {
            try prev()
        }
    }
}

/// Merges children into one ordered stream; on equal internal keys the earlier child wins
/// (children are passed newest first). Linear selection: the fan-in is small
/// (memtables + L0 tables + one cursor per level). Changing direction repositions every
/// other child around the current key (LevelDB's MergingIterator).
package final class MergingIterator: InternalIterator {
    let children: [any InternalIterator]
    private var current: Int = -1
    private var forward = true

    package init(_ children: [any InternalIterator]) { self.children = children }

    package var isValid: Bool { current >= 0 }
    package var key: [UInt8] { children[current].key }
    package var value: [UInt8] { children[current].value }

    /// The smallest child (forward) or the largest (reverse); ties go to the earlier child.
    private func pick(largest: Bool = false) {
        current = -1
        var best: [UInt8] = []
        for i in children.indices {
            let c = children[i]
            guard c.isValid else { continue }
            let k = c.key
            if current < 0 { current = i; best = k; continue }
            let order = InternalKey.compare(k, best)
            if largest ? order > 0 : order < 0 { current = i; best = k }
        }
    }
    package func seekToFirst() throws(LSMError) {
        for c in children { try c.seekToFirst() }
        forward = true
        pick()
    }
    package func seekToLast() throws(LSMError) {
        for c in children { try c.seekToLast() }
        forward = false
        pick(largest: true)
    }
    package func seek(_ target: [UInt8]) throws(LSMError) {
        for c in children { try c.seek(target) }
        forward = true
        pick()
    }
    package func next() throws(LSMError) {
        guard current >= 0 else { return }
        if !forward {
            // Every other child is at its last entry < key (or invalid): move each to its
            // first entry > key.
            let k = key
            for (i, c) in children.enumerated() where i != current {
                try c.seek(k)
                if c.isValid && InternalKey.compare(c.key, k) == 0 { try c.next() }
            }
            forward = true
        }
        try children[current].next()
        pick()
    }
    package func prev() throws(LSMError) {
        guard current >= 0 else { return }
        if forward {
            // Every other child is at its first entry >= key (> key for earlier children on a
            // tie): move each to its last entry < key.
            let k = key
            for (i, c) in children.enumerated() where i != current {
                try c.seek(k)
                if c.isValid { try c.prev() } else { try c.seekToLast() }
            }
            forward = false
        }
        try children[current].prev()
        pick(largest: true)
    }
}

/// Walks a memtable's skiplist (lock-free; entries inserted meanwhile may or may not be
/// seen, and readers filter them out by sequence anyway). `prev` searches from the top
/// (the list has no back links), as LevelDB's memtable iterator does.
package final class MemtableIterator: InternalIterator {
    let mem: Memtable
    private var node: SkipList.Node?
    /// The current node's key, copied once per move (merging iterators read it repeatedly).
    package private(set) var key: [UInt8] = []

    package init(_ mem: Memtable) { self.mem = mem }

    package var isValid: Bool { node != nil }
    package var value: [UInt8] { node!.value }

    private func moved(_ n: SkipList.Node?) {
        node = n
        guard let n else { return }
        key.removeAll(keepingCapacity: true)
        key.append(contentsOf: n.keyBytes)
    }
    package func seekToFirst() { moved(mem.list.first()) }
    package func seekToLast() { moved(mem.list.last()) }
    package func seek(_ target: [UInt8]) { moved(mem.list.seek(target)) }
    package func next() { if let n = node { moved(n.next(0)) } }
    package func prev() {
        guard let n = node else { return }
        moved(mem.list.lastBefore(n.keyBytes))
    }
}
