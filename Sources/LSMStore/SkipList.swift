import Synchronization

/// The memtable's skiplist, LevelDB's design: one writer at a time (the engine serializes
/// inserts), any number of lock-free readers, nodes never removed — and every node, key and
/// value bump-allocated in an arena of raw chunks the list frees when it dies. The arena is
/// the memtable's whole footprint (`footprintBytes`), so the memory budget counts what the
/// process really holds (a node of 16-byte key and 100-byte value takes ~150 bytes, where a
/// node object with its key and value arrays took ~420).
///
/// Node layout in the arena (8-byte aligned; `SkipList.Node` is its address):
///
///     [key length: 4][value length: 4][user-key prefix: 8 (see `prefix(of:)`)][height: 8]
///     [next pointer: 8 (an atomic address, 0 = none)] × height
///     [internal key: key length][value: value length]
///
/// A writer fills a node completely, then links it bottom level first with release stores;
/// readers follow links with acquire loads, so a node reached is fully built.
final class SkipList: @unchecked Sendable {
    static let maxHeight = 12
    static let headerSize = 24

    /// A node: its address in the arena. Valid as long as the list lives.
    struct Node: Equatable, @unchecked Sendable {
        let base: UnsafeMutableRawPointer

        var keyCount: Int { Int(base.load(as: UInt32.self)) }
        var valueCount: Int { Int(base.load(fromByteOffset: 4, as: UInt32.self)) }
        var prefix: UInt64 { base.load(fromByteOffset: 8, as: UInt64.self) }
        var height: Int { base.load(fromByteOffset: 16, as: Int.self) }
        private var links: UnsafeMutablePointer<Atomic<Int>> {
            (base + SkipList.headerSize).assumingMemoryBound(to: Atomic<Int>.self)
        }
        /// The internal key, in place.
        var keyBytes: UnsafeRawBufferPointer {
            UnsafeRawBufferPointer(start: base + SkipList.headerSize + 8 * height, count: keyCount)
        }
        /// The value, in place.
        var valueBytes: UnsafeRawBufferPointer {
            UnsafeRawBufferPointer(start: base + SkipList.headerSize + 8 * height + keyCount, count: valueCount)
        }
        var key: [UInt8] { Array(keyBytes) }
        var value: [UInt8] { Array(valueBytes) }

        @inline(__always)
        func next(_ level: Int) -> Node? {
            let a = links[level].load(ordering: .acquiring)
            return a == 0 ? nil : Node(base: UnsafeMutableRawPointer(bitPattern: a)!)
        }
        @inline(__always)
        func setNext(_ level: Int, _ n: Node?) {
            links[level].store(n.map { Int(bitPattern: $0.base) } ?? 0, ordering: .releasing)
        }

        /// Whether this node's key is < `target` (whose prefix is `tp`).
        @inline(__always)
        func isBefore(_ target: UnsafeRawBufferPointer, _ tp: UInt64) -> Bool {
            let p = prefix
            if p != tp { return p < tp }
            return InternalKey.compare(keyBytes, target) < 0
        }
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

    let head: Node
    private let height = Atomic<Int>(1)
    private let entryCount = Atomic<Int>(0)
    /// Bytes of arena chunks held (the list's memory besides this object).
    private let reserved = Atomic<Int>(0)
    /// Bytes of the nodes in the arena (`reserved` less the unused tail of the last chunk and
    /// the ends of earlier chunks too short for the node that followed).
    private let used = Atomic<Int>(0)

    /// Writer side, under `writer`: the chunks, the bump pointer, the height RNG and the
    /// predecessors of the insert in progress.
    private struct Arena: @unchecked Sendable {
        var chunks: [UnsafeMutableRawPointer] = []
        var next: UnsafeMutableRawPointer? = nil
        var left = 0
        var chunkSize = SkipList.firstChunk
        var rng: UInt64 = 0x9E37_79B9_7F4A_7C15
        let prev = UnsafeMutablePointer<Node>.allocate(capacity: SkipList.maxHeight)
    }
    private let writer: Mutex<Arena>
    /// Chunks start small (a small memtable does not hold a big chunk) and double up to `maxChunk`.
    static let firstChunk = 4096
    static let maxChunk = 1 << 20

    init() {
        let size = SkipList.headerSize + 8 * SkipList.maxHeight
        let h = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 8)
        SkipList.build(h, key: UnsafeRawBufferPointer(start: nil, count: 0), UnsafeRawBufferPointer(start: nil, count: 0),
                       height: SkipList.maxHeight)
        head = Node(base: h)
        let a = Arena()
        a.prev.initialize(repeating: head, count: SkipList.maxHeight)
        writer = Mutex(a)
    }

    deinit {
        writer.withLock { a in
            for c in a.chunks { c.deallocate() }
            a.prev.deallocate()
        }
        head.base.deallocate()
    }

    var count: Int { entryCount.load(ordering: .relaxed) }
    /// Bytes the list holds in its arena (chunks, including their unused tails).
    var footprintBytes: Int { reserved.load(ordering: .relaxed) }
    /// Bytes its nodes take (headers, links, keys, values). The footprint passes it by at most
    /// one chunk (`maxChunk`) plus the chunk ends too short for a node (under 1/4 of a chunk,
    /// never more than one node each).
    var usedBytes: Int { used.load(ordering: .relaxed) }

    /// Writes a node's header, cleared links, key and value at `p`.
    /// `prefix`: `prefix(of: key)`, when the caller has it.
    private static func build(_ p: UnsafeMutableRawPointer, key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer,
                              height: Int, prefix kp: UInt64? = nil) {
        p.storeBytes(of: UInt32(key.count), as: UInt32.self)
        p.storeBytes(of: UInt32(value.count), toByteOffset: 4, as: UInt32.self)
        p.storeBytes(of: kp ?? prefix(of: key), toByteOffset: 8, as: UInt64.self)
        p.storeBytes(of: height, toByteOffset: 16, as: Int.self)
        let links = (p + headerSize).bindMemory(to: Atomic<Int>.self, capacity: height)
        for i in 0..<height { (links + i).initialize(to: Atomic<Int>(0)) }
        let k = p + headerSize + 8 * height
        if let b = key.baseAddress { k.copyMemory(from: b, byteCount: key.count) }
        if let b = value.baseAddress { (k + key.count).copyMemory(from: b, byteCount: value.count) }
    }

    /// `bytes` (a multiple of 8) from the arena; a node too big for a chunk gets its own.
    private func allocate(_ a: inout Arena, _ bytes: Int) -> UnsafeMutableRawPointer {
        if bytes > a.left {
            if bytes > a.chunkSize / 4 {
                let c = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 8)
                a.chunks.append(c)
                reserved.add(bytes, ordering: .relaxed)
                return c
            }
            let c = UnsafeMutableRawPointer.allocate(byteCount: a.chunkSize, alignment: 8)
            a.chunks.append(c)
            reserved.add(a.chunkSize, ordering: .relaxed)
            a.next = c; a.left = a.chunkSize
            a.chunkSize = min(a.chunkSize * 2, SkipList.maxChunk)
        }
        let p = a.next!
        a.next = p + bytes; a.left -= bytes
        return p
    }

    /// The first node whose key is >= `key`.
    func seek(_ key: [UInt8]) -> Node? {
        key.withUnsafeBytes { seek(raw: $0, prev: nil) }
    }

    /// The first node whose key is >= `target`; records the predecessor at each level in
    /// `prev` when given.
    func seek(raw target: UnsafeRawBufferPointer, prev: UnsafeMutablePointer<Node>?) -> Node? {
        let tp = SkipList.prefix(of: target)
        let x = descend(target, tp, prev: prev)
        // A writer may have linked nodes after `x` since the descent compared its successor:
        // they can still sort before `key` (a newer version of the same user key does), so
        // walk past them. Returning one would hand a reader a version newer than its sequence.
        var n = x.next(0)
        while let m = n, m.isBefore(target, tp) { n = m.next(0) }
        return n
    }

    /// The last node whose key is < `key` (nil if none).
    func lastBefore(_ key: UnsafeRawBufferPointer) -> Node? {
        let x = descend(key, SkipList.prefix(of: key), prev: nil)
        return x == head ? nil : x
    }

    /// Walks down from the top level to the last node whose key is < `target` (`head` if
    /// none), recording the predecessor at each level in `prev` when given.
    @inline(__always)
    private func descend(_ target: UnsafeRawBufferPointer, _ tp: UInt64, prev: UnsafeMutablePointer<Node>?) -> Node {
        var x = head
        var level = height.load(ordering: .acquiring) - 1
        while true {
            if let n = x.next(level), n.isBefore(target, tp) {
                x = n
            } else {
                prev?[level] = x
                if level == 0 { return x }
                level -= 1
            }
        }
    }

    func first() -> Node? { head.next(0) }

    /// The last node (nil if the list is empty).
    func last() -> Node? {
        var x = head
        var level = height.load(ordering: .acquiring) - 1
        while true {
            if let n = x.next(level) {
                x = n
            } else if level == 0 {
                return x == head ? nil : x
            } else {
                level -= 1
            }
        }
    }

    /// Inserts internal key `key` (with user key prefix as `prefix(of:)` computes) and `value`;
    /// returns the bytes the node took in the arena.
    @discardableResult
    func insert(key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) -> Int {
        let used = writer.withLock { a -> Int in
            // The only writer: nothing can be linked after the predecessors meanwhile, so
            // the descent alone finds them (no walk past newer nodes as `seek` does).
            let tp = SkipList.prefix(of: key)
            _ = descend(key, tp, prev: a.prev)
            var h = 1
            while h < SkipList.maxHeight {
                a.rng ^= a.rng << 13; a.rng ^= a.rng >> 7; a.rng ^= a.rng << 17
                if a.rng & 3 != 0 { break } // branching factor 4
                h += 1
            }
            // Levels above the old height have `head` as predecessor (prev's initial value).
            if h > height.load(ordering: .relaxed) {
                for i in height.load(ordering: .relaxed)..<h { a.prev[i] = head }
                height.store(h, ordering: .releasing)
            }
            let bytes = (SkipList.headerSize + 8 * h + key.count + value.count + 7) & ~7
            let node = Node(base: allocate(&a, bytes))
            SkipList.build(node.base, key: key, value, height: h, prefix: tp)
            for i in 0..<h { node.setNext(i, a.prev[i].next(i)) }
            for i in 0..<h { a.prev[i].setNext(i, node) } // publish, bottom level first
            return bytes
        }
        entryCount.add(1, ordering: .relaxed)
        self.used.add(used, ordering: .relaxed)
        return used
    }
}
