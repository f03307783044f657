/// Descending scans: the merging iterator walked backwards. Going backwards, the versions of
/// one user key arrive oldest first, so the newest visible one is known only once the walk
/// leaves the key (LevelDB's DBIter::FindPrevUserEntry does the same).
extension Engine {
    /// Visits the newest visible live version of each user key in [start, end), in
    /// descending key order.
    func scanReverse(_ v: View, from start: [UInt8], to end: [UInt8]?,
                     _ visit: (_ key: [UInt8], _ value: [UInt8]) -> Bool) throws(LSMError) {
        let frags = TombstoneFragments(try tombstones(v, from: start, to: end), snapshot: v.sequence)
        let it = try iterator(v)
        if let end {
            // The first entry of `end` (any sequence) or later; step back from it.
            try it.seek(InternalKey.make(end, LSMFormat.maxSequence, LSMFormat.seekKind))
            if it.isValid { try it.prev() } else { try it.seekToLast() }
        } else {
            try it.seekToLast()
        }
        // The newest visible entry seen so far of the user key being walked.
        var user: [UInt8]? = nil
        var kind: UInt8 = 0
        var seq: UInt64 = 0
        var stored: [UInt8] = []
        func emit() throws(LSMError) -> Bool {
            guard let u = user else { return true }
            guard kind == ValueKind.put.rawValue || kind == ValueKind.valuePointer.rawValue else { return true }
            if !frags.isEmpty && frags.coveringSeq(u) >= seq { return true }
            return visit(u, try materialize(kind, stored, key: u, in: v))
        }
        while it.isValid {
            let k = it.key
            if InternalKey.compareUser(k, start) < 0 { break }
            let trailer = InternalKey.trailer(k)
            if trailer >> 8 <= v.sequence { // else written after the view
                if let u = user, InternalKey.compareUser(k, u) == 0 {
                    // A newer version of the same key (reverse order: older ones came first).
                } else {
                    if !(try emit()) { return }
                    user = InternalKey.userKey(k)
                }
                kind = UInt8(truncatingIfNeeded: trailer)
                seq = trailer >> 8
                stored = it.value
            }
            try it.prev()
        }
        _ = try emit()
    }
}

extension LSMStore {
    /// Like `scan(from:to:_:)`; `reverse` visits the keys of [start, end) in descending order
    /// (end nil: from the last key down).
    public func scan(from start: [UInt8], to end: [UInt8]?, reverse: Bool,
                     _ visit: (_ key: [UInt8], _ value: [UInt8]) -> Bool) throws(LSMError) {
        if reverse {
            try engine.scanReverse(try engine.view(), from: start, to: end, visit)
        } else {
            try engine.scan(try engine.view(), from: start, to: end, visit)
        }
    }
}

extension LSMSnapshot {
    /// Like `LSMStore.scan(from:to:reverse:_:)`, on the snapshot's view.
    public func scan(from start: [UInt8], to end: [UInt8]?, reverse: Bool,
                     _ visit: (_ key: [UInt8], _ value: [UInt8]) -> Bool) throws(LSMError) {
        if reverse {
            try engine.scanReverse(view, from: start, to: end, visit)
        } else {
            try engine.scan(view, from: start, to: end, visit)
        }
    }
}
