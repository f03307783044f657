/// Argument checks shared by every device, so all of them reject the same requests with the
/// same `.outOfRange` messages (TrackDevice semantics).
package enum TrackIOCheck {
    /// The number of sectors `byteCount` covers at `sector` of `track`; throws `.outOfRange`.
    package static func sectors(_ g: IMRGeometry, track: Int, sector: Int, byteCount: Int) throws(DeviceError) -> Int {
        guard track >= 0, track < g.trackCount else {
            throw DeviceError(.outOfRange, errno: 22, "track \(track) out of range (drive has \(g.trackCount) tracks)")
        }
        guard byteCount % g.sectorSize == 0 else {
            throw DeviceError(.outOfRange, errno: 22, "buffer of \(byteCount) bytes is not a whole number of \(g.sectorSize)-byte sectors")
        }
        let count = byteCount / g.sectorSize
        let n = g.sectors(of: track)
        guard sector >= 0, sector <= n, count <= n - sector else {
            throw DeviceError(.outOfRange, errno: 22, "sectors \(sector)..<\(sector + count) out of range for track \(track) (\(n) sectors)")
        }
        return count
    }

    /// Checks a meta-zone request (offset relative to the end of the superblock).
    package static func meta(_ g: IMRGeometry, offset: Int, byteCount: Int, capacity: Int) throws(DeviceError) {
        guard offset % g.sectorSize == 0, byteCount % g.sectorSize == 0 else {
            throw DeviceError(.outOfRange, errno: 22, "meta I/O at \(offset) of \(byteCount) bytes is not sector-aligned")
        }
        guard offset >= 0, offset <= capacity, byteCount <= capacity - offset else {
            throw DeviceError(.outOfRange, errno: 22, "meta I/O \(offset)..<\(offset + byteCount) out of range (meta zone holds \(capacity) bytes)")
        }
    }

    /// `sector..<sector+count` clipped to `track`; nil if nothing is left.
    package static func clip(_ g: IMRGeometry, track: Int, sector: Int, count: Int) -> Range<Int>? {
        guard track >= 0, track < g.trackCount, count > 0 else { return nil }
        let lo = max(sector, 0), hi = min(sector &+ count, g.sectors(of: track))
        return lo < hi ? lo..<hi : nil
    }

    package static let closed = DeviceError(.closed, errno: 9 /* EBADF */, "device is closed")
}
