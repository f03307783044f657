import Synchronization

/// A node of the memtable's skiplist: one internal entry. `key`, `value` and `height` never
/// change; the forward pointers are atomics, published with release stores so a reader that
/// reaches a node (acquire loads) sees it fully built. Nodes are owned by their list's arena;
/// the pointers themselves are unretained.
final class SkipNode: @unchecked Sendable {
    let key: [UInt8]      // internal key
    let value: [UInt8]
    let height: Int
    /// The first 8 bytes of the user key, big-endian, zero-padded: searches decide most
    /// comparisons on it without touching `keyBytes` (one cache miss less per step).
    let prefix: UInt64
    /// A private copy of `key` that searches compare without retaining the array.
    let keyBytes: UnsafeRawBufferPointer
    private let n0 = Atomic<Unmanaged<SkipNode>?>(nil), n1 = Atomic<Unmanaged<SkipNode>?>(nil)
    private let n2 = Atomic<Unmanaged<SkipNode>?>(nil), n3 = Atomic<Unmanaged<SkipNode>?>(nil)
    private let n4 = Atomic<Unmanaged<SkipNode>?>(nil), n5 = Atomic<Unmanaged<SkipNode>?>(nil)
    private let n6 = Atomic<Unmanaged<SkipNode>?>(nil), n7 = Atomic<Unmanaged<SkipNode>?>(nil)
    private let n8 = Atomic<Unmanaged<SkipNode>?>(nil), n9 = Atomic<Unmanaged<SkipNode>?>(nil)
    private let n10 = Atomic<Unmanaged<SkipNode>?>(nil), n11 = Atomic<Unmanaged<SkipNode>?>(nil)

    init(key: [UInt8], value: [UInt8], height: Int) {
        precondition(height >= 1 && height <= SkipList.maxHeight)
        self.key = key; self.value = value; self.height = height
        let p = UnsafeMutableRawPointer.allocate(byteCount: max(1, key.count), alignment: 8)
        key.withUnsafeBytes { if let b = $0.baseAddress { p.copyMemory(from: b, byteCount: $0.count) } }
        keyBytes = UnsafeRawBufferPointer(start: p, count: key.count)
        prefix = SkipNode.prefix(of: keyBytes)
    }

    /// The user key's first 8 bytes as a big-endian number, zero-padded. Two different
    /// prefixes order their keys as the keys themselves are ordered (a shorter key padded with
    /// zeros differs from a longer one only past its end, where it is a proper prefix).
    @inline(__always)
    static func prefix(of ikey: UnsafeRawBufferPointer) -> UInt64 {
        let n = ikey.count - 8   // user key bytes
        if n >= 8 { return UInt64(bigEndian: ikey.loadUnaligned(as: UInt64.self)) }
        var v: UInt64 = 0
        for i in 0..<max(n, 0) { v |= UInt64(ikey[i]) << (56 - 8 * i) }
        return v
    }

    /// Whether this node's key is < `target` (whose prefix is `tp`).
    @inline(__always)
    func isBefore(_ target: UnsafeRawBufferPointer, _ tp: UInt64) -> Bool {
        if prefix != tp { return prefix < tp }
        return InternalKey.compare(keyBytes, target) < 0
    }

    deinit { UnsafeMutableRawPointer(mutating: keyBytes.baseAddress!).deallocate() }

    private func slot<R>(_ level: Int, _ body: (borrowing Atomic<Unmanaged<SkipNode>?>) -> R) -> R {
        switch level {
        case 0: return body(n0)
        case 1: return body(n1)
        case 2: return body(n2)
        case 3: return body(n3)
        case 4: return body(n4)
        case 5: return body(n5)
        case 6: return body(n6)
        case 7: return body(n7)
        case 8: return body(n8)
        case 9: return body(n9)
        case 10: return body(n10)
        default: return body(n11)
        }
    }

    /// The successor at `level` without retaining it (nodes live as long as their list).
    func nextUnmanaged(_ level: Int) -> Unmanaged<SkipNode>? {
        slot(level) { $0.load(ordering: .acquiring) }
    }
    func next(_ level: Int) -> SkipNode? {
        slot(level) { $0.load(ordering: .acquiring) }?.takeUnretainedValue()
    }
    func setNext(_ level: Int, _ node: SkipNode?) {
        let u = node.map { Unmanaged.passUnretained($0) }
        slot(level) { $0.store(u, ordering: .releasing) }
    }
}

/// A skiplist ordered by internal key: one writer at a time (callers serialize inserts),
/// any number of lock-free readers (LevelDB's memtable design). Nodes are never removed.
final class SkipList: Sendable {
    static let maxHeight = 12
    let head = SkipNode(key: [], value: [], height: SkipList.maxHeight)
    private let height = Atomic<Int>(1)
    private let entryCount = Atomic<Int>(0)
    /// Writer side: keeps every node alive (the links are unretained) and the height RNG.
    private struct Arena { var nodes: [SkipNode] = []; var rng: UInt64 = 0x9E37_79B9_7F4A_7C15 }
    private let arena = Mutex(Arena())

    var count: Int { entryCount.load(ordering: .relaxed) }

    /// The first node whose key is >= `key`; records the predecessor at each level in `prev`
    /// when it is not empty.
    func seek(_ key: [UInt8], prev: inout [SkipNode]) -> SkipNode? {
        let x = descend(key, prev: &prev)
        // A writer may have linked nodes after `x` since the descent compared its successor:
        // they can still sort before `key` (a newer version of the same user key does), so
        // walk past them. Returning one would hand a reader a version newer than its sequence.
        return key.withUnsafeBytes { target -> SkipNode? in
            let tp = SkipNode.prefix(of: target)
            var n = x._withUnsafeGuaranteedRef { $0.nextUnmanaged(0) }
            while let m = n, m._withUnsafeGuaranteedRef({ $0.isBefore(target, tp) }) {
                n = m._withUnsafeGuaranteedRef { $0.nextUnmanaged(0) }
            }
            return n?.takeUnretainedValue()
        }
    }

    /// The last node whose key is < `key` (nil if none).
    func lastBefore(_ key: [UInt8]) -> SkipNode? {
        var none: [SkipNode] = []
        let x = descend(key, prev: &none)
        return x.toOpaque() == Unmanaged.passUnretained(head).toOpaque() ? nil : x.takeUnretainedValue()
    }

    /// Walks down from the top level to the last node whose key is < `key` (`head` if none),
    /// recording the predecessor at each level in `prev` when it is not empty. Walks unretained
    /// references and compares raw key copies: no reference counting per step (the list keeps
    /// every node alive while it is reachable).
    private func descend(_ key: [UInt8], prev: inout [SkipNode]) -> Unmanaged<SkipNode> {
        let record = !prev.isEmpty
        return key.withUnsafeBytes { target -> Unmanaged<SkipNode> in
            let tp = SkipNode.prefix(of: target)
            var x = Unmanaged.passUnretained(head)
            var level = height.load(ordering: .acquiring) - 1
            while true {
                let nx = x._withUnsafeGuaranteedRef { $0.nextUnmanaged(level) }
                if let n = nx, n._withUnsafeGuaranteedRef({ $0.isBefore(target, tp) }) {
                    x = n
                } else {
                    if record { prev[level] = x.takeUnretainedValue() }
                    if level == 0 { return x }
                    level -= 1
                }
            }
        }
    }

    func first() -> SkipNode? { head.next(0) }

    /// The last node (nil if the list is empty).
    func last() -> SkipNode? {
        var x = Unmanaged.passUnretained(head)
        var level = height.load(ordering: .acquiring) - 1
        while true {
            if let n = x._withUnsafeGuaranteedRef({ $0.nextUnmanaged(level) }) {
                x = n
            } else if level == 0 {
                return x.toOpaque() == Unmanaged.passUnretained(head).toOpaque() ? nil : x.takeUnretainedValue()
            } else {
                level -= 1
            }
        }
    }

    func insert(_ key: [UInt8], _ value: [UInt8]) {
        arena.withLock { a in
            var prev = [SkipNode](repeating: head, count: SkipList.maxHeight)
            _ = seek(key, prev: &prev)
            var h = 1
            while h < SkipList.maxHeight {
                a.rng ^= a.rng << 13; a.rng ^= a.rng >> 7; a.rng ^= a.rng << 17
                if a.rng & 3 != 0 { break } // branching factor 4
                h += 1
            }
            // Levels above the old height have `head` as predecessor (prev's initial value).
            if h > height.load(ordering: .relaxed) { height.store(h, ordering: .releasing) }
            let node = SkipNode(key: key, value: value, height: h)
            for i in 0..<h { node.setNext(i, prev[i].next(i)) }
            for i in 0..<h { prev[i].setNext(i, node) } // publish, bottom level first
            a.nodes.append(node)
        }
        entryCount.add(1, ordering: .relaxed)
    }
}
