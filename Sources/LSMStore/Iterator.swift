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

/// Pages through a memtable, `pageSize` entries at a time (see `Memtable.entries`).
package final class MemtableIterator: InternalIterator {
    let mem: Memtable
    private var page: [([UInt8], [UInt8])] = []
    private var index = 0
    private var exhausted = false
    static let pageSize = 64

    package init(_ mem: Memtable) { self.mem = mem }

    package var isValid: Bool { index < page.count }
    package var key: [UInt8] { page[index].0 }
    package var value: [UInt8] { page[index].1 }

    private func load(from: [UInt8]?, exclusive: Bool) {
        page = mem.entries(from: from, exclusive: exclusive, limit: MemtableIterator.pageSize)
        index = 0
    }
    package func seekToFirst() { load(from: nil, exclusive: false) }
    package func seek(_ target: [UInt8]) { load(from: target, exclusive: false) }
    package func next() {
        guard isValid else { return }
        index += 1
        if index == page.count && page.count == MemtableIterator.pageSize {
            load(from: page[page.count - 1].0, exclusive: true)
        }
    }
}
