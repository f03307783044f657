/// The simulated drive's bookkeeping shared by every real device: counters, sector validity,
/// the latency model and the IMR write physics (which neighbouring top sectors a bottom write
/// overlaps). Devices call it after the host I/O succeeded; it decides what a bottom write does
/// to its neighbours:
///
/// - `.deviceManaged`: the drive read-modify-writes the valid overlapped top sectors. The data
///   never changes (the model is exact: the drive rewrites what it read), the cost is accounted:
///   `top.rmwOps` += 1 per neighbour track rewritten, `top.rmwBytes` += bytes rewritten, and the
///   simulated time of the top reads and rewrites goes to `top.busyNanos`.
/// - `.hostManaged`: nothing is preserved; `write` returns the valid overlapped top sectors,
///   which the device then really overwrites with `IMRFormat.damagePattern`.
///
/// Host reads/writes counters count only the host's requests, never the drive's own RMW I/O.
package struct DriveModel: Sendable {
    package let geometry: IMRGeometry
    package var counters = DeviceCounters()
    package var validity: SectorValidity
    package var latency: LatencyModel
    /// The drive's read cache: a read that misses reads ahead to the end of its track (priced),
    /// and later reads inside that range cost no media time. Writes invalidate the tracks they
    /// change (and a bottom write its neighbours). `cacheTracks` tracks, least recently used out.
    package var cache: [(track: Int, from: Int)] = []
    package static let cacheTracks = 16

    package init(geometry: IMRGeometry) {
        self.geometry = geometry
        self.validity = SectorValidity(geometry: geometry)
        self.latency = LatencyModel(geometry: geometry)
    }

    /// The sectors of top track `top` that bottom sectors `range` overlap: bottom sector s spans
    /// the angular fraction [s/B, (s+1)/B) of a revolution, top sector t spans [t/T, (t+1)/T).
    package static func overlap(_ g: IMRGeometry, bottom range: Range<Int>) -> Range<Int> {
        let b = g.bottomSectors, t = g.topSectors
        if range.isEmpty { return 0..<0 }
        let lo = range.lowerBound * t / b
        let hi = min((range.upperBound * t + b - 1) / b, t)
        return lo..<max(lo, hi)
    }

    package mutating func read(track: Int, range: Range<Int>) {
        var ns: UInt64 = 0
        if let i = cache.firstIndex(where: { $0.track == track && $0.from <= range.lowerBound }) {
            cache.append(cache.remove(at: i))           // hit: served from the drive's buffer
        } else if !range.isEmpty {
            let end = geometry.sectors(of: track)
            ns = latency.access(track: track, sector: range.lowerBound, count: end - range.lowerBound)
            cache.removeAll { $0.track == track }
            cache.append((track, range.lowerBound))
            if cache.count > DriveModel.cacheTracks { cache.removeFirst() }
        }
        let bytes = UInt64(range.count * geometry.sectorSize)
        if geometry.isBottom(track) {
            counters.bottom.reads += 1; counters.bottom.bytesRead += bytes; counters.bottom.busyNanos += ns
        } else {
            counters.top.reads += 1; counters.top.bytesRead += bytes; counters.top.busyNanos += ns
        }
    }

    /// Accounts a completed host write of `range` on `track`; returns the top-track sectors a
    /// host-managed bottom write damaged (empty for device-managed writes and top writes).
    package mutating func write(track: Int, range: Range<Int>, mode: WriteMode) -> [(track: Int, range: Range<Int>)] {
        if !cache.isEmpty {
            let hit: (Int) -> Bool = geometry.isBottom(track)
                ? { t in t >= track - 1 && t <= track + 1 } : { t in t == track }
            cache.removeAll { hit($0.track) }
        }
        let bytes = UInt64(range.count * geometry.sectorSize)
        guard geometry.isBottom(track), !range.isEmpty else {
            let ns = latency.access(track: track, sector: range.lowerBound, count: range.count)
            if geometry.isBottom(track) {
                counters.bottom.writes += 1; counters.bottom.bytesWritten += bytes; counters.bottom.busyNanos += ns
            } else {
                counters.top.writes += 1; counters.top.bytesWritten += bytes; counters.top.busyNanos += ns
                validity.set(track, range, valid: true)
            }
            return []
        }
        var affected: [(track: Int, range: Range<Int>)] = []
        let over = DriveModel.overlap(geometry, bottom: range)
        for n in geometry.neighbours(ofBottom: track) {
            for run in validity.validRuns(n, in: over) { affected.append((n, run)) }
        }
        if mode == .deviceManaged {
            var rewritten = Set<Int>()
            for a in affected {   // read what the bottom write will damage
                rmwAccess(a.track, a.range)
            }
            counters.bottom.busyNanos += latency.access(track: track, sector: range.lowerBound, count: range.count)
            for a in affected {   // and rewrite it
                rmwAccess(a.track, a.range)
                counters.top.rmwBytes += UInt64(a.range.count * geometry.sectorSize)
                rewritten.insert(a.track)
            }
            counters.top.rmwOps += UInt64(rewritten.count)
        } else {
            counters.bottom.busyNanos += latency.access(track: track, sector: range.lowerBound, count: range.count)
        }
        counters.bottom.writes += 1
        counters.bottom.bytesWritten += bytes
        validity.set(track, range, valid: true)
        return mode == .deviceManaged ? [] : affected
    }

    /// One access of the drive's own RMW (a read or a rewrite of top sectors), priced and
    /// counted apart so reports can show what the firmware's RMW cost.
    private mutating func rmwAccess(_ track: Int, _ range: Range<Int>) {
        let seek = latency.totalSeekNanos, rot = latency.totalRotationNanos
        let ns = latency.access(track: track, sector: range.lowerBound, count: range.count)
        counters.top.busyNanos += ns
        counters.rmwBusyNanos += ns
        counters.rmwSeekNanos += latency.totalSeekNanos - seek
        counters.rmwRotationNanos += latency.totalRotationNanos - rot
    }

    /// Accounts a meta-zone access of `bytes` at byte `offset` of the zone.
    package mutating func meta(write: Bool, offset: Int, bytes: Int) {
        let ss = geometry.sectorSize
        let ns = latency.accessMeta(sector: offset / ss, count: (bytes + ss - 1) / ss)
        counters.metaBusyNanos += ns
        if write {
            counters.metaWrites += 1; counters.metaBytesWritten += UInt64(bytes)
        } else {
            counters.metaReads += 1; counters.metaBytesRead += UInt64(bytes)
        }
    }

    package mutating func trim(track: Int, range: Range<Int>) {
        validity.set(track, range, valid: false)
    }

    package mutating func markValid(track: Int, range: Range<Int>) {
        validity.set(track, range, valid: true)
    }

    package func snapshot() -> DeviceCounters {
        var c = counters
        c.validBottomSectors = validity.validBottom
        c.validTopSectors = validity.validTop
        c.seekNanos = latency.totalSeekNanos
        c.rotationNanos = latency.totalRotationNanos
        c.transferNanos = latency.totalTransferNanos
        return c
    }
}
