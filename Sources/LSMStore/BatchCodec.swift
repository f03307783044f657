import LSMCommon

/// One resolved update of a batch as it is logged and inserted: range deletes have already
/// been expanded into point tombstones by the write path.
package struct BatchEntry: Sendable, Equatable {
    package var kind: ValueKind
    package var key: [UInt8]
    package var value: [UInt8]
    package init(kind: ValueKind, key: [UInt8], value: [UInt8] = []) {
        self.kind = kind; self.key = key; self.value = value
    }
}

/// The WAL payload of one write (docs/format/wal.md, "Batch").
package enum BatchCodec {
    /// Byte layout:
    ///   [sequence of the first entry: 8 LE][count: 4 LE]
    ///   count × ( [kind: 1][varint key length][key] ( [varint value length][value] if kind has a value ) )
    /// Entry i gets sequence `sequence + i`.
    package static func encode(sequence: UInt64, _ entries: [BatchEntry]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(LSMFormat.batchHeaderSize + entries.reduce(0) { $0 + $1.key.count + $1.value.count + 11 })
        out.appendLE(sequence)
        out.appendLE(UInt32(entries.count))
        for e in entries {
            out.append(e.kind.rawValue)
            out.appendLengthPrefixed(e.key)
            if e.kind != .delete { out.appendLengthPrefixed(e.value) }
        }
        return out
    }

    package static func decode(_ bytes: [UInt8]) throws(LSMError) -> (sequence: UInt64, entries: [BatchEntry]) {
        var r = ByteReader(bytes)
        guard let seq = r.u64(), let count = r.u32() else { throw LSMError.corrupt("WAL batch: short header") }
        guard Int(count) <= bytes.count else { throw LSMError.corrupt("WAL batch: implausible count \(count)") }
        var entries: [BatchEntry] = []
        entries.reserveCapacity(Int(count))
        for i in 0..<Int(count) {
            guard let k = r.u8(), let kind = ValueKind(rawValue: k), let key = r.lengthPrefixed() else {
                throw LSMError.corrupt("WAL batch: bad entry \(i)")
            }
            var value: [UInt8] = []
            if kind != .delete {
                guard let v = r.lengthPrefixed() else { throw LSMError.corrupt("WAL batch: bad value of entry \(i)") }
                value = v
            }
            entries.append(BatchEntry(kind: kind, key: key, value: value))
        }
        guard r.atEnd else { throw LSMError.corrupt("WAL batch: \(r.remaining) trailing bytes") }
        guard seq &+ UInt64(count) <= LSMFormat.maxSequence else { throw LSMError.corrupt("WAL batch: sequence overflow") }
        return (seq, entries)
    }
}
