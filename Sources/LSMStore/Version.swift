import LSMCommon
import Synchronization

/// Deletes table files once nothing can read them any more (see `FileMeta.deinit`).
package final class FileReclaimer: Sendable {
    let deleteFile: @Sendable (UInt64) -> Void
    package init(_ deleteFile: @escaping @Sendable (UInt64) -> Void) { self.deleteFile = deleteFile }
}

/// One SSTable as the versions see it. Shared by every version that contains it; when the
/// manifest edit dropping it is durable the file is marked obsolete, and the last version to
/// let go of it (readers hold versions) deletes the file.
package final class FileMeta: Sendable {
    package let number: UInt64
    package let size: UInt64
    package let smallest: [UInt8]   // internal keys
    package let largest: [UInt8]
    let obsolete = Atomic<Bool>(false)
    let reclaimer: FileReclaimer?
    /// Learned when the table is first asked for range tombstones: 0 unknown, 1 it has none,
    /// 2 it has some. Scans skip tables known to have none without opening them.
    let rangeTombstones = Atomic<UInt8>(0)

    package init(number: UInt64, size: UInt64, smallest: [UInt8], largest: [UInt8], reclaimer: FileReclaimer?) {
        self.number = number; self.size = size; self.smallest = smallest; self.largest = largest
        self.reclaimer = reclaimer
    }
    package var smallestUser: [UInt8] { InternalKey.userKey(smallest) }
    package var largestUser: [UInt8] { InternalKey.userKey(largest) }
    func markObsolete() { obsolete.store(true, ordering: .sequentiallyConsistent) }
    deinit {
        if obsolete.load(ordering: .sequentiallyConsistent) { reclaimer?.deleteFile(number) }
    }

    /// Whether the table ends with a range tombstone's exclusive bound (see `RangeTombstone.endSentinel`).
    var largestIsSentinel: Bool {
        InternalKey.trailer(largest) == (LSMFormat.maxSequence << 8 | UInt64(LSMFormat.seekKind))
    }

    /// Whether `user` lies in the table's key range (points and range tombstones).
    func contains(_ user: [UInt8]) -> Bool {
        guard InternalKey.compareUser(smallest, user) <= 0 else { return false }
        let c = InternalKey.compareUser(largest, user)
        return c > 0 || (c == 0 && !largestIsSentinel)
    }

    /// Whether the file's user-key range intersects [lo, hi] (nil = unbounded).
    func overlaps(_ lo: [UInt8]?, _ hi: [UInt8]?) -> Bool {
        if let lo, InternalKey.compareUser(largest, lo) < 0 { return false }
        if let hi, InternalKey.compareUser(smallest, hi) > 0 { return false }
        return true
    }
}

/// One value-log segment as the versions see it (docs/format/vlog.md). Like `FileMeta`: shared
/// by every version listing it; once the durable edit removing it is applied it is marked
/// obsolete, and the last version to let go of it (readers hold versions, so a snapshot older
/// than a GC pass keeps the segment readable) deletes the file.
package final class VLogSegment: Sendable {
    package let number: UInt64
    let obsolete = Atomic<Bool>(false)
    let reclaimer: FileReclaimer?
    package init(number: UInt64, reclaimer: FileReclaimer?) { self.number = number; self.reclaimer = reclaimer }
    func markObsolete() { obsolete.store(true, ordering: .sequentiallyConsistent) }
    deinit {
        if obsolete.load(ordering: .sequentiallyConsistent) { reclaimer?.deleteFile(number) }
    }
}

/// An immutable snapshot of the tree's files. L0 is ordered newest first (files may
/// overlap); every deeper level is sorted by smallest key. Under leveled compaction a deeper
/// level is one sorted run (its files do not overlap); under tiering it may hold several
/// overlapping runs (`shape`). Either way a level only holds data newer than the levels below.
package final class Version: Sendable {
    package let levels: [[FileMeta]]
    /// The value-log segments the manifest lists, by file number.
    package let segments: [UInt64: VLogSegment]
    /// Garbage bytes per listed segment (sum of the manifest's garbage deltas).
    package let vlogGarbage: [UInt64: UInt64]
    /// Listed segments a GC pass has started on (vlog-gc): the next pass finishes them first.
    package let vlogVictims: Set<UInt64>
    package init(levels: [[FileMeta]], segments: [UInt64: VLogSegment] = [:], vlogGarbage: [UInt64: UInt64] = [:],
                 vlogVictims: Set<UInt64> = []) {
        self.levels = levels; self.segments = segments; self.vlogGarbage = vlogGarbage; self.vlogVictims = vlogVictims
        self.shape = LevelShape(levels)
    }
    /// Which levels hold overlapping sorted runs (tiering), and the runs (LevelShape.swift).
    package let shape: LevelShape
    package static func empty(_ n: Int) -> Version { Version(levels: Array(repeating: [], count: n)) }

    package func bytes(_ level: Int) -> UInt64 { levels[level].reduce(0) { $0 + $1.size } }
    package var fileCount: Int { levels.reduce(0) { $0 + $1.count } }
    /// Every file the version names: tables and value-log segments.
    package var allNumbers: Set<UInt64> { Set(levels.flatMap { $0.map(\.number) }).union(segments.keys) }

    /// Files of `level` whose user-key range intersects [lo, hi].
    package func overlapping(_ level: Int, _ lo: [UInt8]?, _ hi: [UInt8]?) -> [FileMeta] {
        levels[level].filter { $0.overlaps(lo, hi) }
    }

    /// The file of sorted `level` (≥ 1) whose key range holds `user`, if any (at most one).
    func fileContaining(_ level: Int, _ user: [UInt8]) -> FileMeta? {
        let files = levels[level]
        var lo = 0, hi = files.count // first file whose largest user key is >= user
        while lo < hi {
            let mid = (lo + hi) / 2
            if InternalKey.compareUser(files[mid].largest, user) < 0 { lo = mid + 1 } else { hi = mid }
        }
        // A file ending with a tombstone sentinel at `user` does not hold it; the next may.
        for i in lo..<min(lo + 2, files.count) where files[i].contains(user) { return files[i] }
        return nil
    }

    /// nil if the version is well formed: L0 newest first, deeper levels sorted with disjoint
    /// user-key ranges (unless `allowOverlap`: tiering), every file's smallest <= largest;
    /// else what is wrong.
    package func invariantViolation(allowOverlap: Bool = false) -> String? {
        for (l, files) in levels.enumerated() {
            for f in files where InternalKey.compare(f.smallest, f.largest) > 0 { return "L\(l) file \(f.number): smallest > largest" }
            if l == 0 {
                for i in files.indices.dropFirst() where files[i - 1].number < files[i].number { return "L0 not newest first" }
            } else if allowOverlap {
                for i in files.indices.dropFirst() where InternalKey.compare(files[i - 1].smallest, files[i].smallest) > 0 {
                    return "L\(l) not sorted"
                }
            } else {
                for i in files.indices.dropFirst() {
                    let c = InternalKey.compareUser(files[i - 1].largest, files[i].smallestUser)
                    guard c > 0 || (c == 0 && !files[i - 1].largestIsSentinel) else { continue }
                    return "L\(l) files \(files[i - 1].number) and \(files[i].number) overlap"
                }
            }
        }
        return nil
    }

    /// Applies an edit: returns the new version. Added files replace deleted ones; files that
    /// are both deleted and added (a move between levels) keep their `FileMeta`.
    /// Value-log segments the edit removes are marked obsolete here (an edit is applied only
    /// once it is durable, or when a durable manifest is replayed); garbage deltas add up per
    /// listed segment.
    package func applying(_ edit: VersionEdit, reclaimer: FileReclaimer?) -> (Version, obsolete: [FileMeta]) {
        var lv = levels
        var removed: [UInt64: FileMeta] = [:]
        for (level, number) in edit.deleted where level < lv.count {
            if let i = lv[level].firstIndex(where: { $0.number == number }) {
                removed[number] = lv[level].remove(at: i)
            }
        }
        for f in edit.added where f.level < lv.count {
            let meta = removed.removeValue(forKey: f.number)
                ?? FileMeta(number: f.number, size: f.size, smallest: f.smallest, largest: f.largest, reclaimer: reclaimer)
            lv[f.level].append(meta)
        }
        lv[0].sort { $0.number > $1.number }
        for l in 1..<lv.count { lv[l].sort { InternalKey.compare($0.smallest, $1.smallest) < 0 } }
        var segs = segments, garbage = vlogGarbage, victims = vlogVictims
        if !edit.vlogRemoved.isEmpty || !edit.vlogAdded.isEmpty || !edit.vlogGarbage.isEmpty || !edit.vlogGCVictims.isEmpty {
            for n in edit.vlogRemoved {
                segs.removeValue(forKey: n)?.markObsolete()
                garbage[n] = nil
            }
            for n in edit.vlogAdded where segs[n] == nil { segs[n] = VLogSegment(number: n, reclaimer: reclaimer) }
            for g in edit.vlogGarbage where segs[g.segment] != nil { garbage[g.segment, default: 0] += g.bytes }
            for n in edit.vlogRemoved { victims.remove(n) }
            for n in edit.vlogGCVictims where segs[n] != nil { victims.insert(n) }
        }
        return (Version(levels: lv, segments: segs, vlogGarbage: garbage, vlogVictims: victims), Array(removed.values))
    }
}
