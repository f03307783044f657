import LSMCommon

/// The value-log garbage one flush, compaction or GC pass makes (docs/format/vlog.md, "Garbage
/// accounting"). Every `valuePointer` entry a job drops — shadowed by a newer version no reader
/// needs, deleted, or under a range tombstone — makes the record it points to garbage. The
/// deltas ride in the job's own version edit (tag 16), so they are durable exactly when its
/// result is, and each pointer entry is dropped, hence counted, once. `Version.vlogGarbage`
/// holds the sums; deltas for a segment GC already freed are ignored there.
package struct GarbageTally: Sendable {
    private var bytes: [UInt64: UInt64] = [:]
    package init() {}

    /// Notes a dropped entry (any kind; only value pointers count).
    package mutating func dropped(_ internalKey: [UInt8], _ value: [UInt8]) {
        guard InternalKey.kind(internalKey) == ValueKind.valuePointer.rawValue,
              let p = ValuePointer.decode(value) else { return }
        bytes[p.segment, default: 0] &+= UInt64(p.length)
    }

    /// Notes `n` bytes of garbage in `segment` directly.
    package mutating func add(segment: UInt64, bytes n: UInt64) {
        if n > 0 { bytes[segment, default: 0] &+= n }
    }

    package var isEmpty: Bool { bytes.isEmpty }
    /// The deltas for `VersionEdit.vlogGarbage`, by segment.
    package var deltas: [(segment: UInt64, bytes: UInt64)] {
        bytes.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    }
}
