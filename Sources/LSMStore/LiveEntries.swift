extension Engine {
    /// Walks the newest visible entry of each user key of `v` in [start, end) (end nil: to the
    /// last key) that is neither deleted nor under a newer range tombstone, as the tree stores
    /// it: (user key, kind — put or valuePointer —, stored value). `body` returns false to stop;
    /// the result is true if the walk reached the end. Scans, `scanSizes` and verify share it.
    func forEachLiveEntry(_ v: View, from start: [UInt8], to end: [UInt8]?,
                          _ body: (_ user: [UInt8], _ kind: UInt8, _ stored: [UInt8]) throws(LSMError) -> Bool) throws(LSMError) -> Bool {
        let frags = TombstoneFragments(try tombstones(v, from: start, to: end), snapshot: v.sequence)
        let pooled = iterators.take(v)
        let token = pooled?.1 ?? iterators.token
        let it: MergingIterator
        if let p = pooled { it = p.0 } else { it = try iterator(v) }
        // Given back for the next scan after a walk without error, if `v` is still current.
        func done(_ completed: Bool) -> Bool {
            if state.withLock({ $0.version === v.version }) { iterators.give(it, v, token: token) }
            return completed
        }
        try it.seek(InternalKey.make(start, v.sequence, LSMFormat.seekKind))
        var last: [UInt8]? = nil
        while it.isValid {
            let k = it.key
            let trailer = InternalKey.trailer(k)
            if trailer >> 8 > v.sequence { try it.next(); continue } // written after the view
            if let l = last, InternalKey.sameUser(k, l) { try it.next(); continue } // older version
            if let end, InternalKey.compareUser(k, end) >= 0 { break }
            last = k
            let kind = UInt8(truncatingIfNeeded: trailer)
            if kind == ValueKind.put.rawValue || kind == ValueKind.valuePointer.rawValue {
                let user = InternalKey.userKey(k)
                if frags.isEmpty || frags.coveringSeq(user) < trailer >> 8 {
                    if !(try body(user, kind, it.value)) { return done(false) }
                }
            }
            try it.next()
        }
        return done(true)
    }
}

extension LSMStore {
    /// Like `scan`, but visits each live key with the size of its value instead of the value:
    /// values in the value log are not read (their size is in the pointer). For callers that
    /// need lengths only (a filesystem truncating a file counts the bytes it frees).
    public func scanSizes(from start: [UInt8], to end: [UInt8]?, _ visit: (_ key: [UInt8], _ valueSize: Int) -> Bool) throws(LSMError) {
        let e = engine
        let v = try e.view()
        _ = try e.forEachLiveEntry(v, from: start, to: end) { (user, kind, stored) throws(LSMError) -> Bool in
            guard kind == ValueKind.valuePointer.rawValue else { return visit(user, stored.count) }
            let p = try e.pointer(stored, key: user, in: v)
            return visit(user, Int(p.length) - VLogFormat.headerSize - user.count)
        }
    }
}
