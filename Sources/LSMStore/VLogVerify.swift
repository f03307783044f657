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
            _ = try forEachLiveEntry(view, from: [], to: nil) { (user, kind, stored) -> Bool in
                guard kind == ValueKind.valuePointer.rawValue else { return true }
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
                return true
            }
            if bad > 0 { r.problems.append("value pointers: \(bad) live entries are dangling (first: \(first))") }
        } catch {
            r.problems.append("value pointers: \(error.message)")
        }
    }
}
