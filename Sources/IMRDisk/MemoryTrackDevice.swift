// SKELETON (owned by the IMRDisk helper).
/// A crashable in-memory drive for tests: `crashed()` returns the device as a host crash
/// would leave it — every write covered by a completed `sync()`, plus (optionally, chosen by
/// the seed) some of the later writes, the last of which may be torn at a sector boundary.
public final class MemoryTrackDevice: TrackDevice, @unchecked Sendable {
    /// A fresh, formatted in-memory drive (default: 64 tracks of the default geometry).
    public init(trackCount: Int = 64, policy: String = "two-phase",
                bottomSectors: Int = IMRGeometry.defaultBottomSectors,
                topSectors: Int = IMRGeometry.defaultTopSectors) { fatalError("unimplemented") }
    /// The state after a crash now. `keepUnsynced`: how many of the unsynced writes (in order)
    /// survive; `tearLast`: the last surviving one keeps only a prefix of its sectors.
    public func crashed(keepUnsynced: Int = 0, tearLast: Bool = false) -> MemoryTrackDevice { fatalError("unimplemented") }
    /// Number of writes (track or meta) not yet covered by a sync.
    public var unsyncedWriteCount: Int { fatalError("unimplemented") }

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
