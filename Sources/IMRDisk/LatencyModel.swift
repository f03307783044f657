/// Simulated service time of each I/O on a 7200 rpm drive (DESIGN.md §2). Time is accounted,
/// never slept.
///
/// - seek: 0 on the same track; otherwise `settle + (fullStroke - settle) * sqrt(d / (tracks-1))`
///   for a distance of `d` tracks (the usual square-root seek curve);
/// - rotation: 0 when the I/O starts exactly where the previous one ended (same track, next
///   sector; or sector 0 of the next track after the end of the previous one, assuming track
///   skew hides the head switch), otherwise half a revolution on average;
/// - transfer: `count / sectorsOnTrack` revolutions, so a bottom track (568 sectors) moves
///   ~1.25x more bytes per revolution than a top track (456).
public struct LatencyModel: Sendable, Equatable {
    public static let rpm: UInt64 = 7200
    public static let revolutionNanos: UInt64 = 60_000_000_000 / rpm   // 8.33 ms
    /// Track-to-track seek including settle.
    public var settleNanos: UInt64 = 1_000_000
    /// Seek across the whole stroke.
    public var fullStrokeNanos: UInt64 = 15_000_000

    public let geometry: IMRGeometry
    public private(set) var headTrack = 0
    /// -1 until the first access: the first I/O always pays rotation.
    public private(set) var headSector = -1
    /// Running totals of the time priced so far, split into its parts (for the per-operation
    /// breakdown of `lsmfs bench imr`): seek, rotational latency, media transfer.
    public private(set) var totalSeekNanos: UInt64 = 0
    public private(set) var totalRotationNanos: UInt64 = 0
    public private(set) var totalTransferNanos: UInt64 = 0

    public init(geometry: IMRGeometry) { self.geometry = geometry }

    /// Seek time between two tracks.
    public func seekNanos(from: Int, to: Int) -> UInt64 {
        let d = from > to ? from - to : to - from
        if d == 0 { return 0 }
        let span = max(geometry.trackCount - 1, 1)
        let frac = min(Double(d) / Double(span), 1).squareRoot()
        return settleNanos + UInt64(Double(fullStrokeNanos - settleNanos) * frac)
    }

    /// Pure transfer time of `count` sectors of `track`.
    public func transferNanos(track: Int, count: Int) -> UInt64 {
        UInt64(count) * LatencyModel.revolutionNanos / UInt64(geometry.sectors(of: track))
    }

    /// Service time of a meta-zone access of `count` sectors at sector `sector` of the zone. The
    /// meta zone lies just inside track 0 (the model calls its position track -1) and is priced
    /// at bottom-track density; contiguous meta accesses pay no rotation.
    public mutating func accessMeta(sector: Int, count: Int) -> UInt64 {
        var seek: UInt64 = 0, rotation: UInt64 = 0
        if headTrack != -1 {
            seek = settleNanos + UInt64(Double(fullStrokeNanos - settleNanos)
                * min(Double(headTrack + 1) / Double(max(geometry.trackCount - 1, 1)), 1).squareRoot())
        }
        if !(headTrack == -1 && sector == headSector) { rotation = LatencyModel.revolutionNanos / 2 }
        let transfer = UInt64(count) * LatencyModel.revolutionNanos / UInt64(geometry.bottomSectors)
        headTrack = -1
        headSector = sector + count
        return account(seek, rotation, transfer)
    }

    /// Service time of an access to `count` sectors at `sector` of `track`; moves the head there.
    public mutating func access(track: Int, sector: Int, count: Int) -> UInt64 {
        let sequentialSameTrack = track == headTrack && sector == headSector
        let sequentialNextTrack = track == headTrack + 1 && sector == 0 && headTrack >= 0
            && headSector == geometry.sectors(of: headTrack)
        let seek = seekNanos(from: headTrack, to: track)
        let rotation = !sequentialSameTrack && !sequentialNextTrack ? LatencyModel.revolutionNanos / 2 : 0
        let transfer = transferNanos(track: track, count: count)
        headTrack = track
        headSector = sector + count
        return account(seek, rotation, transfer)
    }

    private mutating func account(_ seek: UInt64, _ rotation: UInt64, _ transfer: UInt64) -> UInt64 {
        totalSeekNanos += seek; totalRotationNanos += rotation; totalTransferNanos += transfer
        return seek + rotation + transfer
    }
}
