/// Track geometry of the simulated Interlaced-Magnetic-Recording drive.
///
/// Tracks alternate bottom (even index, wider, denser) and top (odd index).
/// Image layout (see docs/format/imr.md):
///
///     [0, metaZoneBytes)            meta zone: superblock (first 4 KiB), then KVIMR's track-map checkpoints
///     [metaZoneBytes, ...)          tracks 0, 1, 2, ... back to back; track t starts at byteOffset(of: t)
public struct IMRGeometry: Sendable, Equatable, Hashable {
    public var sectorSize: Int
    public var bottomSectors: Int
    public var topSectors: Int
    public var trackCount: Int
    public var metaZoneBytes: Int

    public static let defaultSectorSize = 4096
    public static let defaultBottomSectors = 568
    public static let defaultTopSectors = 456
    public static let defaultMetaZoneBytes = 16 << 20

    public init(sectorSize: Int = defaultSectorSize, bottomSectors: Int = defaultBottomSectors,
                topSectors: Int = defaultTopSectors, trackCount: Int,
                metaZoneBytes: Int = defaultMetaZoneBytes) {
        self.sectorSize = sectorSize
        self.bottomSectors = bottomSectors
        self.topSectors = topSectors
        self.trackCount = trackCount
        self.metaZoneBytes = metaZoneBytes
    }

    /// The geometry that fits an image of `imageBytes` (whole tracks only; at least 2 tracks).
    public static func fitting(imageBytes: UInt64, sectorSize: Int = defaultSectorSize,
                               bottomSectors: Int = defaultBottomSectors, topSectors: Int = defaultTopSectors,
                               metaZoneBytes: Int = defaultMetaZoneBytes) -> IMRGeometry? {
        guard imageBytes > UInt64(metaZoneBytes) else { return nil }
        let avail = imageBytes - UInt64(metaZoneBytes)
        let pair = UInt64((bottomSectors + topSectors) * sectorSize)
        var tracks = Int(avail / pair) * 2
        if avail % pair >= UInt64(bottomSectors * sectorSize) { tracks += 1 }
        guard tracks >= 2 else { return nil }
        return IMRGeometry(sectorSize: sectorSize, bottomSectors: bottomSectors, topSectors: topSectors,
                           trackCount: tracks, metaZoneBytes: metaZoneBytes)
    }

    @inlinable public func isBottom(_ track: Int) -> Bool { track & 1 == 0 }
    @inlinable public func isTop(_ track: Int) -> Bool { track & 1 == 1 }
    @inlinable public func sectors(of track: Int) -> Int { isBottom(track) ? bottomSectors : topSectors }
    @inlinable public func capacity(of track: Int) -> Int { sectors(of: track) * sectorSize }

    /// Byte offset of the first sector of `track` in the image file.
    @inlinable public func byteOffset(of track: Int) -> UInt64 {
        let pair = UInt64((bottomSectors + topSectors) * sectorSize)
        var off = UInt64(metaZoneBytes) + UInt64(track / 2) * pair
        if isTop(track) { off += UInt64(bottomSectors * sectorSize) }
        return off
    }

    /// Total bytes of the image: meta zone plus every track.
    public var imageBytes: UInt64 {
        trackCount == 0 ? UInt64(metaZoneBytes) : byteOffset(of: trackCount - 1) + UInt64(capacity(of: trackCount - 1))
    }

    /// Bytes of track capacity (what files can occupy).
    public var trackBytes: UInt64 { imageBytes - UInt64(metaZoneBytes) }

    /// The top tracks whose sectors overlap a bottom track (its two neighbours), clipped to the drive.
    public func neighbours(ofBottom track: Int) -> [Int] {
        precondition(isBottom(track))
        return [track - 1, track + 1].filter { $0 >= 0 && $0 < trackCount }
    }
}
