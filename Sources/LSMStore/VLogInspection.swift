/// Package-level access to the value log for tests, fsck and tools.
extension LSMStore {
    /// The value pointer the tree holds for `key` now (nil: no live entry, or the value is
    /// stored in the tree).
    package func valuePointer(_ key: [UInt8]) throws(LSMError) -> ValuePointer? {
        let v = try engine.view()
        let it = try engine.iterator(v)
        try it.seek(InternalKey.make(key, v.sequence, LSMFormat.seekKind))
        guard it.isValid, InternalKey.compareUser(it.key, key) == 0,
              InternalKey.kind(it.key) == ValueKind.valuePointer.rawValue else { return nil }
        return ValuePointer.decode(it.value)
    }

    /// Makes the tree hold `pointer` for `key` (a WAL batch of one `.valuePointer` entry), as
    /// a bug or a corrupted table would. For tests of the read path's checks.
    package func putPointer(_ key: [UInt8], _ pointer: ValuePointer, sync: Bool = false) throws(LSMError) {
        try engine.write(WriteBatch(), sync: sync, raw: [BatchEntry(kind: .valuePointer, key: key, value: pointer.encode())])
    }

    /// The value-log segments the current version lists, in number order.
    package var valueLogSegments: [UInt64] { engine.state.withLock { $0.version.segments.keys.sorted() } }

    /// Reads the record `pointer` addresses, checked against `key` (see `Engine.readValue`).
    package func readValue(_ pointer: ValuePointer, key: [UInt8]) throws(LSMError) -> [UInt8] {
        try engine.readValue(pointer, key: key)
    }
}

extension LSMStore {
    /// For tests: runs a garbage probe now (VLogGCProbe.swift) and returns every measurement
    /// held (segment → garbage bytes, a lower bound).
    package func probeVLogGarbage() throws(LSMError) -> [UInt64: UInt64] {
        let e = engine
        try e.withCollector { () throws(LSMError) in try e.probeGarbage() }
        return e.gc.state.withLock { $0.measured }
    }

    /// For tests: `segment`'s record bytes the tree points to now and its size, by reading
    /// every record (nil: unreadable).
    package func vlogSegmentLiveBytes(_ segment: UInt64) throws(LSMError) -> (live: UInt64, total: UInt64)? {
        try engine.measureLive(segment)
    }

    /// For tests: garbage probes run since open.
    package var vlogGarbageProbes: UInt64 { engine.gc.probes.value }
}
