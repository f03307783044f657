/// The one seam below the storage engine (DESIGN.md §1): a drive of tracks plus a small
/// meta zone. Three implementations: the image file (`ImageTrackDevice`), a crashable
/// in-memory device (`MemoryTrackDevice`) and a fault-injecting wrapper (`FaultyTrackDevice`).
///
/// Semantics (all implementations):
/// - Track I/O is sector-aligned: `sector` is an index within the track, buffers are a whole
///   number of sectors, and `sector + count` must not pass the track's end (else `.outOfRange`).
/// - A write is volatile until `sync()` returns; a crash keeps every write that a completed
///   `sync()` covered and may keep, drop or tear (at sector granularity) any later write.
/// - `writeTrack(mode: .deviceManaged)`: the drive itself read-modify-writes the valid sectors of
///   neighbouring top tracks that a bottom write damages. `.hostManaged`: it does not; the
///   caller must preserve them, and a neighbour it did not preserve is really damaged.
/// - `trim` marks sectors as holding no valid data (free).
/// - Meta-zone I/O addresses the bytes after the superblock: offset 0 is the first byte the
///   device's user owns; `offset` and the length are sector-aligned.
public protocol TrackDevice: AnyObject, Sendable {
    var superblock: Superblock { get }
    var geometry: IMRGeometry { get }
    /// Usable bytes of the meta zone after the superblock sector.
    var metaCapacity: Int { get }

    func readTrack(_ track: Int, sector: Int, into buffer: UnsafeMutableRawBufferPointer) throws(DeviceError)
    func writeTrack(_ track: Int, sector: Int, from buffer: UnsafeRawBufferPointer, mode: WriteMode) throws(DeviceError)
    func trim(_ track: Int, sector: Int, count: Int)

    func readMeta(offset: Int, into buffer: UnsafeMutableRawBufferPointer) throws(DeviceError)
    func writeMeta(offset: Int, from buffer: UnsafeRawBufferPointer) throws(DeviceError)

    /// Makes every completed write durable (fdatasync on the image file).
    func sync() throws(DeviceError)
    func counters() -> DeviceCounters
    /// Syncs and closes; later calls fail with `.closed`.
    func close() throws(DeviceError)
}

extension TrackDevice {
    public var geometry: IMRGeometry { superblock.geometry }

    /// One write command made of `pieces` that follow each other on `track` from `sector` (a
    /// gather write): the drive sees, and prices, a single write of their total length — one
    /// seek and rotation, and for a device-managed bottom write one read-modify-write of the
    /// overlapped top range, not one per piece. (Joins the pieces, then `writeTrack(from:)`.)
    public func writeTrack(_ track: Int, sector: Int, pieces: [UnsafeRawBufferPointer],
                           mode: WriteMode) throws(DeviceError) {
        if pieces.count == 1 { return try writeTrack(track, sector: sector, from: pieces[0], mode: mode) }
        var joined = [UInt8]()
        joined.reserveCapacity(pieces.reduce(0) { $0 + $1.count })
        for p in pieces { joined.append(contentsOf: p) }
        var failure: DeviceError? = nil
        joined.withUnsafeBytes { b in
            do throws(DeviceError) { try writeTrack(track, sector: sector, from: b, mode: mode) } catch { failure = error }
        }
        if let failure { throw failure }
    }
}

public enum WriteMode: Sendable {
    /// The drive performs read-modify-write of damaged neighbouring top tracks itself.
    case deviceManaged
    /// The host (KVIMR) is responsible for neighbouring top tracks.
    case hostManaged
}

public struct DeviceError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        case io            // the host I/O failed (errno set)
        case outOfRange    // track/sector/offset outside the device
        case invalidImage  // not an lsmfs image, or unreadable superblock
        case closed
        case injected      // FaultyTrackDevice
    }
    public var kind: Kind
    public var errno: Int32
    public var message: String
    public init(_ kind: Kind, errno: Int32 = 5 /* EIO */, _ message: String) {
        self.kind = kind; self.errno = errno; self.message = message
    }
    public var description: String { message }
}

/// Counters kept by every device (per track kind); simulated time is accounted, never slept.
/// (`DriveModel` keeps them; `LatencyModel` prices each access, meta-zone I/O included.)
public struct DeviceCounters: Sendable, Equatable {
    public struct PerKind: Sendable, Equatable {
        /// Host track reads/writes and their bytes (the drive's own RMW I/O is not included).
        public var reads: UInt64 = 0
        public var writes: UInt64 = 0
        public var bytesRead: UInt64 = 0
        public var bytesWritten: UInt64 = 0
        /// Device-managed RMW: tracks of this kind whose valid sectors the drive read and
        /// rewrote around a bottom write (one per neighbour per write; only top tracks), and
        /// the bytes rewritten.
        public var rmwOps: UInt64 = 0
        public var rmwBytes: UInt64 = 0
        /// Simulated service time (seek + rotation + transfer) of I/O on tracks of this kind,
        /// the drive's RMW reads and rewrites included.
        public var busyNanos: UInt64 = 0
        public init() {}
    }
    public var bottom = PerKind()
    public var top = PerKind()
    public var metaReads: UInt64 = 0
    public var metaWrites: UInt64 = 0
    public var metaBytesRead: UInt64 = 0
    public var metaBytesWritten: UInt64 = 0
    /// Simulated service time of meta-zone I/O (checkpoints, the merged-RMW journal): the meta
    /// zone lies just before track 0 and is priced like a bottom track there.
    public var metaBusyNanos: UInt64 = 0
    public var syncs: UInt64 = 0
    /// Simulated time of the device-managed RMW alone (reading and rewriting the damaged top
    /// sectors around bottom writes); part of `top.busyNanos`.
    public var rmwBusyNanos: UInt64 = 0
    /// The seek and rotational parts of `rmwBusyNanos` (the rest is transfer).
    public var rmwSeekNanos: UInt64 = 0
    public var rmwRotationNanos: UInt64 = 0
    /// `totalBusyNanos` split into its parts: seek, rotational latency, media transfer.
    public var seekNanos: UInt64 = 0
    public var rotationNanos: UInt64 = 0
    public var transferNanos: UInt64 = 0
    /// Sectors currently holding valid data, per kind.
    public var validBottomSectors: UInt64 = 0
    public var validTopSectors: UInt64 = 0
    public init() {}

    /// Simulated busy time of the whole drive: both track kinds and the meta zone.
    public var totalBusyNanos: UInt64 { bottom.busyNanos + top.busyNanos + metaBusyNanos }
    /// Bytes the host wrote: tracks of both kinds and the meta zone (the drive's own RMW excluded).
    public var hostBytesWritten: UInt64 { bottom.bytesWritten + top.bytesWritten + metaBytesWritten }
    /// Drive-internal (device-managed) RMW, both kinds.
    public var rmwOps: UInt64 { bottom.rmwOps + top.rmwOps }
    public var rmwBytes: UInt64 { bottom.rmwBytes + top.rmwBytes }
}
