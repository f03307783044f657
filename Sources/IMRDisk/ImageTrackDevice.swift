// SKELETON (owned by the IMRDisk helper).
/// The product's device: one sparse image file on the host, track I/O by pread/pwrite,
/// fdatasync at sync points.
public final class ImageTrackDevice: TrackDevice, @unchecked Sendable {
    /// Creates a new sparse image of `size` bytes (fails if the file exists, unless `overwrite`).
    public static func create(path: String, size: UInt64, policy: String, overwrite: Bool = false,
                              bottomSectors: Int = IMRGeometry.defaultBottomSectors,
                              topSectors: Int = IMRGeometry.defaultTopSectors) throws(DeviceError) -> ImageTrackDevice { fatalError("unimplemented") }
    /// Opens an existing image; `.invalidImage` with a one-line reason when it is missing,
    /// all zero, truncated (shorter than its superblock says) or foreign.
    public static func open(path: String, readOnly: Bool = false) throws(DeviceError) -> ImageTrackDevice { fatalError("unimplemented") }

    public var superblock: Superblock { fatalError("unimplemented") }
    public var metaCapacity: Int { fatalError("unimplemented") }
    public func readTrack(_ track: Int, sector: Int, into buffer: UnsafeMutableRawBufferPointer) throws(DeviceError) { fatalError("unimplemented") }
    public func writeTrack(_ track: Int, sector: Int, from buffer: UnsafeRawBufferPointer, mode: WriteMode) throws(DeviceError) { fatalError("unimplemented") }
    public func trim(_ track: Int, sector: Int, count: Int) { fatalError("unimplemented") }
    public func readMeta(offset: Int, into buffer: UnsafeMutableRawBufferPointer) throws(DeviceError) { fatalError("unimplemented") }
    public func writeMeta(offset: Int, from buffer: UnsafeRawBufferPointer) throws(DeviceError) { fatalError("unimplemented") }
    public func sync() throws(DeviceError) { fatalError("unimplemented") }
    public func counters() -> DeviceCounters { fatalError("unimplemented") }
    public func close() throws(DeviceError) { fatalError("unimplemented") }
}
