import KVIMR

/// `verify()` (fsck) for the value log: every listed segment exists and reads back record by
/// record with good checksums (a torn last record is allowed: the head at a crash), and the
/// newest live entry of every key that holds a pointer points inside a listed segment.
/// (Older, shadowed pointers in tables may point into segments GC has freed: they are dead.)
extension Engine {
    func verifyValueLog(_ v: Version, into r: inout LSMVerifyReport) {
        var sizes: [UInt64: UInt64] = [:]
        for n in v.segments.keys.sorted() {
            r.valueLogSegments += 1
            do throws(LSMError) {
                var reader = try VLogSegmentReader(kvimr: kvimr, segment: n)
                sizes[n] = reader.size
                r.valueLogBytes += reader.size
                while let _ = try reader.next() { r.valueLogRecords += 1 }
            } catch {
                r.problems.append("value-log segment \(n): \(error.message)")
            }
        }
        guard !v.segments.isEmpty else { return }
        do throws(LSMError) {
            let view = try self.view()
            var bad = 0, first = ""
            try forEachLiveEntry(view) { (user, kind, stored) in
                guard kind == ValueKind.valuePointer.rawValue else { return }
                let why: String?
                if let p = ValuePointer.decode(stored) {
                    // A segment started since the walk above: its size now.
                    if let size = sizes[p.segment] ?? (view.version.segments[p.segment] != nil ? kvimr.size(p.segment) : nil) {
                        why = p.end <= size ? nil : "points past the end of segment \(p.segment)"
                    } else {
                        why = "points into segment \(p.segment), which the manifest does not list"
                    }
                } else {
                    why = "holds a malformed value pointer"
                }
                if let why { bad += 1; if first.isEmpty { first = "key \(user.map { String($0, radix: 16) }.joined()) \(why)" } }
            }
            if bad > 0 { r.problems.append("value pointers: \(bad) live entries are dangling (first: \(first))") }
        } catch {
            r.problems.append("value pointers: \(error.message)")
        }
    }

    /// Visits the newest visible entry of each user key of `v` that is not deleted (by a point
    /// or range tombstone), as the tree stores it: (user key, kind, stored value).
    func forEachLiveEntry(_ v: View, _ body: (_ user: [UInt8], _ kind: UInt8, _ stored: [UInt8]) -> Void) throws(LSMError) {
        let frags = TombstoneFragments(try tombstones(v, from: [], to: nil), snapshot: v.sequence)
        let it = try iterator(v)
        try it.seekToFirst()
        var last: [UInt8]? = nil
        while it.isValid {
            let k = it.key
            let trailer = InternalKey.trailer(k)
            if trailer >> 8 > v.sequence { try it.next(); continue } // written after the view
            if let l = last, InternalKey.sameUser(k, l) { try it.next(); continue } // older version
            last = k
            let kind = UInt8(truncatingIfNeeded: trailer)
            if kind == ValueKind.put.rawValue || kind == ValueKind.valuePointer.rawValue {
                let user = InternalKey.userKey(k)
                if frags.isEmpty || frags.coveringSeq(user) < trailer >> 8 { body(user, kind, it.value) }
            }
            try it.next()
        }
    }
}
