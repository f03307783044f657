import IMRDisk

/// Merged RMW (docs/kvimr.md): a host-managed policy writes a batch's bottom chunks so that the
/// valid top-track sectors they overlap are read once, journaled, and rewritten once:
///
/// 1. read every affected top run (valid data per the track map: a used top's written extent, a
///    pending top — freed but still named by the durable checkpoint — whole);
/// 2. write them to the journal region of the meta zone; device sync;
/// 3. write the bottom chunks (host-managed: the drive damages the overlapped tops);
/// 4. rewrite the saved top runs; device sync;
/// 5. clear the journal (made durable by the next sync: until then a replay rewrites the same
///    bytes the tops already hold; no top named by the journal is written in between without a
///    sync first, because every later merged RMW starts with one).
///
/// A crash before step 2's sync leaves the tops untouched; after it, `replay` at the next open
/// restores every saved run. A batch whose runs do not fit the journal is split; a single bottom
/// chunk that alone does not fit (tiny meta zones only) falls back to a device-managed write.
extension KVIMRCore {
    mutating func flushBatch(_ batch: [PendingWrite], file n: FileNumber, before: FileRecord?) throws(KVIMRError) {
        if batch.isEmpty { return }
        if let rec = map.files[n] { ioCategory = IOBreakdown.category("write", kind: rec.kind, level: rec.level) }
        guard policy.writeMode == .hostManaged, let journal else {
            try writeDeviceManaged(batch[...])
            return
        }
        let owners = map.trackOwners()
        var group: [PendingWrite] = []
        var runs: [Int: [Range<Int>]] = [:]
        var pairs = 0
        // (bottom, valid top) adjacencies count once per track chunk: the drive's RMW works per
        // write command, and a chunk is one (`writeDeviceManaged`), whatever its buffer pages.
        var chunkTops: Set<Int> = []
        for w in batch where geometry.isBottom(w.track) {
            let mine = affected(by: w, file: n, before: before, owners: owners)
            if w.startsChunk { chunkTops = [] }
            let newPairs = mine.keys.filter { !chunkTops.contains($0) }.count
            chunkTops.formUnion(mine.keys)
            var merged = runs
            for (t, rs) in mine { merged[t, default: []].append(contentsOf: rs) }
            merged = merged.mapValues(Self.union)
            if fits(merged, journal) {
                group.append(w); runs = merged; pairs += newPairs
                continue
            }
            try mergedWrite(group, runs: runs, pairs: pairs, journal: journal)
            group = []; runs = [:]; pairs = 0
            let alone = mine.mapValues(Self.union)
            if fits(alone, journal) {
                group = [w]; runs = alone; pairs = mine.count
                chunkTops = Set(mine.keys)
            } else {
                try writeDeviceManaged([w][...])
            }
        }
        try mergedWrite(group, runs: runs, pairs: pairs, journal: journal)
        for w in batch where !geometry.isBottom(w.track) { try write(w, mode: .hostManaged) }
    }

    /// Whether a bottom write of `batch` overlaps valid top sectors: it then needs
    /// `flushBatch` (a merged RMW, or the drive's RMW once per chunk, not per buffer page);
    /// otherwise the batch may be queued piece by piece (`WriteBehind`), under any policy.
    func needsMergedRMW(_ batch: [PendingWrite], file n: FileNumber, before: FileRecord?) -> Bool {
        let bottoms = batch.filter { geometry.isBottom($0.track) }
        if bottoms.isEmpty { return false }
        let owners = map.trackOwners()
        return bottoms.contains { !affected(by: $0, file: n, before: before, owners: owners).isEmpty }
    }

    private func fits(_ runs: [Int: [Range<Int>]], _ journal: RMWJournal) -> Bool {
        let entries = runs.values.reduce(0) { $0 + $1.count }
        let sectors = runs.values.reduce(0) { $0 + $1.reduce(0) { $0 + $1.count } }
        return journal.fits(entries: entries, sectors: sectors)
    }

    /// The valid top sectors (host view) that bottom chunk `w` overlaps.
    private func affected(by w: PendingWrite, file n: FileNumber, before: FileRecord?,
                          owners: [Int: FileNumber]) -> [Int: [Range<Int>]] {
        let count = w.bytes.count / geometry.sectorSize
        let over = DriveModel.overlap(geometry, bottom: w.sector..<(w.sector + count))
        var out: [Int: [Range<Int>]] = [:]
        for t in geometry.neighbours(ofBottom: w.track) {
            var valid: Range<Int>? = nil
            if alloc.isPending(t) {
                valid = 0..<geometry.topSectors
            } else if let owner = owners[t] {
                let rec = owner == n ? before : map.files[owner]
                if let e = rec?.extents.first(where: { $0.track == t }) {
                    valid = e.firstSector..<(e.firstSector + e.sectorCount)
                }
            }
            guard let v = valid else { continue }
            let lo = max(v.lowerBound, over.lowerBound), hi = min(v.upperBound, over.upperBound)
            if lo < hi { out[t] = [lo..<hi] }
        }
        return out
    }

    static func union(_ rs: [Range<Int>]) -> [Range<Int>] {
        var out: [Range<Int>] = []
        for r in rs.sorted(by: { $0.lowerBound < $1.lowerBound }) {
            if let last = out.last, r.lowerBound <= last.upperBound {
                out[out.count - 1] = last.lowerBound..<max(last.upperBound, r.upperBound)
            } else {
                out.append(r)
            }
        }
        return out
    }

    private mutating func mergedWrite(_ group: [PendingWrite], runs: [Int: [Range<Int>]], pairs: Int,
                                      journal: RMWJournal) throws(KVIMRError) {
        if group.isEmpty { return }
        if runs.isEmpty {
            for w in group { try write(w, mode: .hostManaged) }
            return
        }
        if !policy.prefersMergedRMW(pairs: pairs, tops: runs.count) {
            // The drive's own RMW is cheaper here (and atomic): let it do it.
            try writeDeviceManaged(group[...])
            return
        }
        if journalStuck {
            throw KVIMRError(.io, "a merged RMW failed and its journal awaits replay: remount to repair")
        }
        let ss = geometry.sectorSize
        var entries: [JournalEntry] = []
        for t in runs.keys.sorted() {
            for r in runs[t]! { entries.append(JournalEntry(track: t, firstSector: r.lowerBound, sectorCount: r.count)) }
        }
        var before = device.counters()
        // 1. read the affected runs once.
        var data: [UInt8] = []
        for e in entries {
            var part = [UInt8](repeating: 0, count: e.sectorCount * ss)
            do {
                try part.withMutableBytes { p throws(DeviceError) in try device.readTrack(e.track, sector: e.firstSector, into: p) }
            } catch { throw KVIMRError(.io, "merged RMW: reading top track \(e.track): \(error.message)") }
            data.append(contentsOf: part)
        }
        // 2. journal, durable before any bottom write.
        journalSequence += 1
        try journal.write(entries, data: data, sequence: journalSequence, to: device)
        try syncDevice()
        io.charge("RMW merged", bytes: data.count, before: before, after: device.counters())
        // 3.-4. bottoms, then the tops once; then sync.
        do throws(KVIMRError) {
            for w in group { try write(w, mode: .hostManaged) }
            before = device.counters()
            try rewrite(entries, data, journal)
            try syncDevice()
        } catch {
            // Best effort to put the tops back now; else the journal stays for the next open.
            do throws(KVIMRError) {
                try rewrite(entries, data, journal)
                try syncDevice()
                try journal.clear(on: device)
            } catch { journalStuck = true }
            throw error
        }
        // 5. the journal is obsolete; the next sync makes that durable.
        try journal.clear(on: device)
        io.charge("RMW merged", bytes: data.count, before: before, after: device.counters())
        io.entries["RMW merged"]?.ops -= 1   // one merged RMW, charged in two parts
        mergedRmwOps += 1
        hostRmwTracks += UInt64(runs.count)
        hostRmwBytes += UInt64(data.count)
    }

    private func rewrite(_ entries: [JournalEntry], _ data: [UInt8], _ journal: RMWJournal) throws(KVIMRError) {
        try journal.writeRuns(entries, data, on: device) { "merged RMW: rewriting top track \($0)" }
    }

    /// Device-managed writes of `ws` in order; the consecutive pieces of one bottom-track chunk
    /// (a chunk spans several buffer pages) go to the drive as ONE gather write, so its RMW
    /// happens once per chunk, as for a whole-track write. Top pieces need no RMW and go one
    /// by one (back to back on the track: no seek or rotation between them).
    mutating func writeDeviceManaged(_ ws: ArraySlice<PendingWrite>) throws(KVIMRError) {
        let ss = geometry.sectorSize
        var i = ws.startIndex
        while i < ws.endIndex {
            let first = ws[i]
            var j = i + 1
            if geometry.isBottom(first.track) {
                var end = first.sector + first.count / ss
                while j < ws.endIndex, ws[j].track == first.track, ws[j].sector == end, !ws[j].startsChunk {
                    end += ws[j].count / ss
                    j += 1
                }
            }
            if j == i + 1 {
                try write(first, mode: .deviceManaged)
            } else {
                let pieces = ws[i..<j]
                let before = device.counters()
                let bytes = pieces.reduce(0) { $0 + $1.count }
                defer {
                    io.charge(ioCategory, bytes: bytes, before: before, after: device.counters())
                    if !first.startsChunk { io.entries[ioCategory]?.ops -= 1 }
                }
                do {
                    try device.writeTrack(first.track, sector: first.sector, pieces: pieces.map(\.bytes), mode: .deviceManaged)
                } catch {
                    throw KVIMRError(.io, "writing track \(first.track) sectors \(first.sector)+\(bytes / ss): \(error.message)")
                }
            }
            i = j
        }
    }

    mutating func write(_ w: PendingWrite, mode: WriteMode) throws(KVIMRError) {
        let before = device.counters()
        defer {
            io.charge(ioCategory, bytes: w.bytes.count, before: before, after: device.counters())
            if !w.startsChunk { io.entries[ioCategory]?.ops -= 1 }   // one operation per chunk
        }
        do {
            try device.writeTrack(w.track, sector: w.sector, from: w.bytes, mode: mode)
        } catch {
            throw KVIMRError(.io, "writing track \(w.track) sectors \(w.sector)+\(w.bytes.count / geometry.sectorSize): \(error.message)")
        }
    }
}
