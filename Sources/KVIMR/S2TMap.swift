import IMRDisk

/// One run of sectors of a file on a track. A file's bytes are laid out through its extents
/// in order: extent 0 holds the first `sectorCount * sectorSize` bytes, and so on.
public struct TrackExtent: Sendable, Equatable, Hashable {
    public var track: Int
    public var firstSector: Int
    public var sectorCount: Int
    public init(track: Int, firstSector: Int, sectorCount: Int) {
        self.track = track; self.firstSector = firstSector; self.sectorCount = sectorCount
    }
}

/// What the track map records about one file: enough to find every byte on tracks.
///
/// `size` counts the bytes of the file that are on tracks (written to the device); bytes still
/// in the write buffer are not part of the record. In a checkpoint, `size` is durable: the
/// checkpoint is written only after a device sync that covers every track write before it.
/// Every track named in `extents` belongs to this file as a whole (allocation is by whole
/// tracks); only the last extent may still grow, up to the end of its track.
public struct FileRecord: Sendable, Equatable {
    public var number: FileNumber
    public var kind: FileKind
    public var level: Int
    public var sealed: Bool
    public var size: UInt64
    public var extents: [TrackExtent]

    public init(number: FileNumber, kind: FileKind, level: Int, sealed: Bool = false,
                size: UInt64 = 0, extents: [TrackExtent] = []) {
        self.number = number; self.kind = kind; self.level = level
        self.sealed = sealed; self.size = size; self.extents = extents
    }

    /// Sectors the extents cover.
    public var sectorCount: Int { extents.reduce(0) { $0 + $1.sectorCount } }
}

/// The S2TMap (SSTable-to-track map, here for every file kind): file number → record, plus the
/// next file number (numbers are never reused) and the engine's opaque root record.
public struct S2TMap: Sendable, Equatable {
    public var files: [FileNumber: FileRecord] = [:]
    public var nextFileNumber: FileNumber = TrackMapFormat.firstFileNumber
    public var root: [UInt8] = []

    public init() {}

    /// Files in ascending number order (the encoding order).
    public var sortedFiles: [FileRecord] {
        files.values.sorted { $0.number < $1.number }
    }

    /// Every track some file owns, with its owner.
    public func trackOwners() -> [Int: FileNumber] {
        var owners: [Int: FileNumber] = [:]
        for rec in files.values { for e in rec.extents { owners[e.track] = rec.number } }
        return owners
    }

    /// Checks the structural rules a decoded map must satisfy on `geometry`; returns a
    /// one-line reason for the first violation, or nil.
    public func violation(on geometry: IMRGeometry) -> String? {
        var owner: [Int: FileNumber] = [:]
        for rec in sortedFiles {
            if rec.number >= nextFileNumber {
                return "file \(rec.number) is not below the next file number \(nextFileNumber)"
            }
            if rec.level < 0 || rec.level > TrackMapFormat.maxLevel {
                return "file \(rec.number) has level \(rec.level)"
            }
            for (i, e) in rec.extents.enumerated() {
                guard e.track >= 0 && e.track < geometry.trackCount else {
                    return "file \(rec.number) names track \(e.track) beyond the drive's \(geometry.trackCount)"
                }
                let sectors = geometry.sectors(of: e.track)
                guard e.firstSector >= 0, e.sectorCount >= 0, e.firstSector + e.sectorCount <= sectors else {
                    return "file \(rec.number) extent \(i) (sectors \(e.firstSector)+\(e.sectorCount)) passes the end of track \(e.track)"
                }
                if i + 1 < rec.extents.count && e.firstSector + e.sectorCount != sectors {
                    return "file \(rec.number) extent \(i) on track \(e.track) is not full but not last"
                }
                if let other = owner[e.track] {
                    return "track \(e.track) is owned by both file \(other) and file \(rec.number)"
                }
                owner[e.track] = rec.number
            }
            let capacity = UInt64(rec.sectorCount) * UInt64(geometry.sectorSize)
            if rec.size > capacity {
                return "file \(rec.number) has size \(rec.size) but its extents hold only \(capacity) bytes"
            }
        }
        if root.count > TrackMapFormat.maxRootBytes { return "root record of \(root.count) bytes" }
        return nil
    }
}
