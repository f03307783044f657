/// The mutable state of a `MemoryTrackDevice` (guarded by its Mutex): sparse sector storage,
/// the undo log of unsynced writes, and the drive model.
struct MemoryDriveState: Sendable {
    /// One entry per unsynced write, in order: the sectors it changed and what they held
    /// before (nil: never written). Entries are in write order — for a torn write the first
    /// `k` entries survive.
    struct UndoRecord: Sendable {
        var meta: Bool
        var entries: [(key: Int, old: [UInt8]?)]
    }

    let geometry: IMRGeometry
    /// Track sectors, keyed by `track * stride + sector`.
    var tracks: [Int: [UInt8]] = [:]
    /// Meta-zone sectors after the superblock, keyed by sector index.
    var meta: [Int: [UInt8]] = [:]
    var log: [UndoRecord] = []
    var model: DriveModel
    var closed = false
    let stride: Int

    init(geometry: IMRGeometry) {
        self.geometry = geometry
        self.model = DriveModel(geometry: geometry)
        self.stride = max(geometry.bottomSectors, geometry.topSectors)
    }

    func readSectors(track: Int, sector: Int, count: Int, into buffer: UnsafeMutableRawBufferPointer) {
        let ss = geometry.sectorSize
        for i in 0..<count {
            let dst = UnsafeMutableRawBufferPointer(rebasing: buffer[(i * ss)..<((i + 1) * ss)])
            if let data = tracks[track * stride + sector + i] {
                data.withUnsafeBytes { dst.copyMemory(from: $0) }
            } else {
                dst.initializeMemory(as: UInt8.self, repeating: 0)
            }
        }
    }

    mutating func writeTrack(track: Int, sector: Int, count: Int, from buffer: UnsafeRawBufferPointer, mode: WriteMode) {
        let ss = geometry.sectorSize
        var rec = UndoRecord(meta: false, entries: [])
        rec.entries.reserveCapacity(count)
        for i in 0..<count {
            let data = Array(UnsafeRawBufferPointer(rebasing: buffer[(i * ss)..<((i + 1) * ss)]))
            let key = track * stride + sector + i
            rec.entries.append((key, tracks.updateValue(data, forKey: key)))
        }
        let damaged = model.write(track: track, range: sector..<(sector + count), mode: mode)
        let garbage = [UInt8](repeating: IMRFormat.damagePattern, count: ss)
        for d in damaged {
            for s in d.range {
                let key = d.track * stride + s
                rec.entries.append((key, tracks.updateValue(garbage, forKey: key)))
            }
        }
        log.append(rec)
    }

    func readMeta(offset: Int, into buffer: UnsafeMutableRawBufferPointer) {
        let ss = geometry.sectorSize
        let first = offset / ss
        for i in 0..<(buffer.count / ss) {
            let dst = UnsafeMutableRawBufferPointer(rebasing: buffer[(i * ss)..<((i + 1) * ss)])
            if let data = meta[first + i] {
                data.withUnsafeBytes { dst.copyMemory(from: $0) }
            } else {
                dst.initializeMemory(as: UInt8.self, repeating: 0)
            }
        }
    }

    mutating func writeMeta(offset: Int, from buffer: UnsafeRawBufferPointer) {
        let ss = geometry.sectorSize
        let first = offset / ss
        var rec = UndoRecord(meta: true, entries: [])
        for i in 0..<(buffer.count / ss) {
            let data = Array(UnsafeRawBufferPointer(rebasing: buffer[(i * ss)..<((i + 1) * ss)]))
            rec.entries.append((first + i, meta.updateValue(data, forKey: first + i)))
        }
        log.append(rec)
    }

    /// How the last surviving write of a crash is torn.
    enum Tear {
        case none
        case half
        case after(Int)          // keep this many sectors
        case random(UInt64)      // keep a number of sectors drawn from this value
    }

    /// The state a crash leaves: all synced data, the first `keep` unsynced writes, the last of
    /// them torn as `tear` says. Counters start at zero; validity is rebuilt as "every stored
    /// sector is valid" (conservative: never under-reports live data).
    func afterCrash(keep: Int, tear: Tear) -> MemoryDriveState {
        var c = MemoryDriveState(geometry: geometry)
        c.tracks = tracks; c.meta = meta   // copy-on-write: shares every sector buffer
        let keep = max(0, min(keep, log.count))
        func undo(_ e: (key: Int, old: [UInt8]?), meta isMeta: Bool) {
            if isMeta { c.meta[e.key] = e.old } else { c.tracks[e.key] = e.old }
        }
        for rec in log[keep...].reversed() {
            for e in rec.entries.reversed() { undo(e, meta: rec.meta) }
        }
        if keep > 0 {
            let rec = log[keep - 1], n = rec.entries.count
            let k: Int
            switch tear {
            case .none: k = n
            case .half: k = n / 2
            case .after(let s): k = max(0, min(s, n))
            case .random(let r): k = Int(r % UInt64(n + 1))
            }
            for e in rec.entries[k...].reversed() { undo(e, meta: rec.meta) }
        }
        c.rebuildValidity()
        return c
    }

    mutating func rebuildValidity() {
        model.validity.removeAll()
        var perTrack: [Int: [Int]] = [:]
        for key in tracks.keys { perTrack[key / stride, default: []].append(key % stride) }
        for (t, sectors) in perTrack {
            for s in sectors { model.validity.set(t, s..<(s + 1), valid: true) }
        }
    }
}
