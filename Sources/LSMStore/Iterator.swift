/// An ordered cursor over internal entries (internal key → value).
package protocol InternalIterator: AnyObject {
    var isValid: Bool { get }
    /// The current internal key (valid only while `isValid`).
    var key: [UInt8] { get }
    var value: [UInt8] { get }
    func seekToFirst() throws(LSMError)
    /// Positions at the first entry with internal key >= target.
    func seek(_ target: [UInt8]) throws(LSMError)
    func next() throws(LSMError)
}

/// Merges children into one ordered stream; on equal internal keys the earlier child wins
/// (children are passed newest first). Linear selection: the fan-in is small
/// (memtables + L0 tables + one cursor per level).
package final class MergingIterator: InternalIterator {
    let children: [any InternalIterator]
    private var current: Int = -1

    package init(_ children: [any InternalIterator]) { self.children = children }

    package var isValid: Bool { current >= 0 }
    package var key: [UInt8] { children[current].key }
    package var value: [UInt8] { children[current].value }

    private func pick() {
        current = -1
        for (i, c) in children.enumerated() where c.isValid {
            if current < 0 || InternalKey.compare(c.key, children[current].key) < 0 { current = i }
        }
    }
    package func seekToFirst() throws(LSMError) {
        for c in children { try c.seekToFirst() }
        pick()
    }
    package func seek(_ target: [UInt8]) throws(LSMError) {
        for c in children { try c.seek(target) }
        pick()
    }
    package func next() throws(LSMError) {
        guard current >= 0 else { return }
        try children[current].next()
        pick()
    }
}

/// Walks a memtable's skiplist (lock-free; entries inserted meanwhile may or may not be
/// seen, and readers filter them out by sequence anyway).
package final class MemtableIterator: InternalIterator {
    let mem: Memtable
    private var node: SkipNode?

    package init(_ mem: Memtable) { self.mem = mem }

    package var isValid: Bool { node != nil }
    package var key: [UInt8] { node!.key }
    package var value: [UInt8] { node!.value }

    package func seekToFirst() { node = mem.list.first() }
    package func seek(_ target: [UInt8]) {
        var none: [SkipNode] = []
        node = mem.list.seek(target, prev: &none)
    }
    package func next() { node = node?.next(0) }
}
