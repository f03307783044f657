import CHostIO
import Dispatch
import Glibc
import Synchronization

/// The product's device: one sparse image file on the host, track I/O by pread/pwrite,
/// fdatasync at sync points.
///
/// - Write-back starts as the image is written (`writebackBytes`, like RocksDB's
///   bytes_per_sync): every 8 MiB of track writes start the kernel's write-back of the dirty
///   image pages without waiting for it, so a sync point finds little left to write. Without
///   it a sync (a checkpoint, under KVIMR's lock) wrote back everything since the last one —
///   a memtable flush's worth of value log, tens of MiB — while every writer waited.
///
/// - The file is opened O_CLOEXEC and locked with flock: exclusive for read-write, shared for
///   read-only, never blocking — so two daemons cannot mount one image.
/// - Thread-safe: pread/pwrite are positional; the drive model (counters, validity, latency)
///   sits behind a Mutex. Closing while other threads still do I/O is the caller's error.
/// - Sector validity is not persisted: at open every sector inside a data extent of the sparse
///   file (SEEK_DATA) counts as valid — "everything ever written" — and writes, `trim` and
///   `markValid` refine it from there.
public final class ImageTrackDevice: TrackDevice, @unchecked Sendable {
    private struct State {
        var fd: Int32
        /// A second descriptor of the image without kernel read-ahead, for reads of files KVIMR
        /// reads sequentially and prefetches itself (`readTrackBytes(streaming:)`); `fd` if it
        /// could not be opened.
        var streamFD: Int32
        var closed = false
        var model: DriveModel
    }
    private let state: Mutex<State>
    /// Track bytes written since write-back was last started.
    private let unstarted = Atomic<Int>(0)
    /// Track bytes written between two starts of write-back.
    public static let writebackBytes = 8 << 20
    private let sb: Superblock
    /// Runs `prefetch`'s reads or advice, in order, off the reader's thread.
    private let prefetchQueue = DispatchQueue(label: "lsmfs.image-prefetch")
    /// O_DIRECT windows for streams (nil: the image's filesystem has no O_DIRECT, or
    /// LSMFS_NO_DIRECT_STREAM is set; prefetching then advises the page cache).
    private let direct: DirectStream?
    public let path: String
    public let readOnly: Bool

    private init(fd: Int32, path: String, superblock: Superblock, readOnly: Bool) {
        self.sb = superblock
        self.path = path
        self.readOnly = readOnly
        // Sequential streams read through a descriptor without kernel read-ahead: its window
        // (the disk's read_ahead_kb, often MiBs) runs past the end of a file's extents into
        // tracks never written — holes the page cache fills with zeros (a seventh of a cold
        // 1 GiB read's time) — and into other files' tracks. KVIMR prefetches the exact extents
        // of such files instead (`prefetch`). Other reads (random, small) keep the kernel's
        // read-ahead, whose context detection serves reads that wander near each other.
        // Opened again by path: it must be the same file as `fd` (the path may have been
        // replaced since), else its reads would return another file's bytes.
        var streamFD = FileIO.open(path, O_RDONLY)
        if streamFD >= 0, FileIO.sameFile(fd, streamFD) {
            _ = posix_fadvise(streamFD, 0, 0, POSIX_FADV_RANDOM)
        } else {
            if streamFD >= 0 { _ = Glibc.close(streamFD) }
            streamFD = fd
        }
        self.state = Mutex(State(fd: fd, streamFD: streamFD, model: DriveModel(geometry: superblock.geometry)))
        self.direct = getenv("LSMFS_NO_DIRECT_STREAM") == nil ? DirectStream(path: path, sameAs: fd) : nil
    }

    deinit {
        state.withLock { s in
            if !s.closed {
                if s.streamFD != s.fd { _ = Glibc.close(s.streamFD) }
                _ = Glibc.close(s.fd)
                s.closed = true
            }
        }
    }

    /// Creates a new sparse image of `size` bytes (fails if the file exists, unless `overwrite`).
    /// The size is rounded down to whole tracks; the file is exactly `geometry.imageBytes` long.
    public static func create(path: String, size: UInt64, policy: String, overwrite: Bool = false,
                              bottomSectors: Int = IMRGeometry.defaultBottomSectors,
                              topSectors: Int = IMRGeometry.defaultTopSectors) throws(DeviceError) -> ImageTrackDevice {
        func bad(_ why: String) -> DeviceError { DeviceError(.invalidImage, errno: EINVAL, why) }
        if let why = Superblock.validatePolicy(policy) { throw bad(why) }
        guard size >= IMRFormat.minImageBytes else {
            throw bad("image size \(size) bytes is too small (minimum \(IMRFormat.minImageBytes >> 20) MiB)")
        }
        guard size <= IMRFormat.maxImageBytes else {
            throw bad("image size \(size) bytes is too large (maximum \(IMRFormat.maxImageBytes >> 50) PiB)")
        }
        guard (1...IMRFormat.maxSectorsPerTrack).contains(bottomSectors),
              (1...IMRFormat.maxSectorsPerTrack).contains(topSectors) else {
            throw bad("track sizes \(bottomSectors)/\(topSectors) sectors out of range")
        }
        guard let geometry = IMRGeometry.fitting(imageBytes: size, bottomSectors: bottomSectors, topSectors: topSectors) else {
            throw bad("image size \(size) bytes holds no tracks")
        }
        if let why = Superblock.validate(geometry) { throw bad("cannot create image: \(why)") }
        var uuid = (0..<16).map { _ in UInt8.random(in: 0...255) }
        uuid[6] = (uuid[6] & 0x0F) | 0x40; uuid[8] = (uuid[8] & 0x3F) | 0x80   // RFC 4122 v4
        let sb = Superblock(geometry: geometry, policy: policy, uuid: uuid, createdAt: UInt64(max(time(nil), 0)))

        let fd = FileIO.open(path, O_RDWR | O_CREAT | (overwrite ? 0 : O_EXCL))
        if fd < 0 {
            if errno == EEXIST { throw DeviceError(.io, errno: EEXIST, "image already exists: \(path)") }
            throw FileIO.ioError("create \(path)")
        }
        do throws(DeviceError) {
            try FileIO.lock(fd, exclusive: true, path)
            var st = stat()
            guard fstat(fd, &st) == 0 else { throw FileIO.ioError("stat \(path)") }
            guard st.st_mode & S_IFMT == S_IFREG else { throw bad("not a regular file: \(path)") }
            try FileIO.ftruncate(fd, 0, path)                     // drop any old content (overwrite)
            try FileIO.ftruncate(fd, geometry.imageBytes, path)   // sparse: nothing allocated yet
            let bytes = sb.encode()
            try bytes.withUnsafeBytes { (p) -> Result<Void, DeviceError> in
                Result { () throws(DeviceError) in try FileIO.pwriteFully(fd, p, at: 0, "superblock of \(path)") }
            }.get()
            try FileIO.fsync(fd, path)
            try FileIO.syncParentDirectory(of: path)
        } catch {
            _ = Glibc.close(fd)
            if !overwrite { _ = unlink(path) }
            throw error
        }
        return ImageTrackDevice(fd: fd, path: path, superblock: sb, readOnly: false)
    }

    /// Opens an existing image; `.invalidImage` with a one-line reason when it is missing,
    /// all zero, truncated (shorter than its superblock says) or foreign.
    public static func open(path: String, readOnly: Bool = false) throws(DeviceError) -> ImageTrackDevice {
        func bad(_ why: String) -> DeviceError { DeviceError(.invalidImage, errno: EINVAL, why) }
        var st = stat()
        if stat(path, &st) != 0 {
            if errno == ENOENT { throw DeviceError(.invalidImage, errno: ENOENT, "image not found: \(path)") }
            throw FileIO.ioError("stat \(path)")
        }
        guard st.st_mode & S_IFMT == S_IFREG else { throw bad("image is not a regular file: \(path)") }
        let fd = FileIO.open(path, readOnly ? O_RDONLY : O_RDWR)
        if fd < 0 { throw FileIO.ioError("open \(path)") }
        do throws(DeviceError) {
            try FileIO.lock(fd, exclusive: !readOnly, path)
            guard fstat(fd, &st) == 0 else { throw FileIO.ioError("stat \(path)") }
            let size = UInt64(st.st_size)
            let head = try FileIO.preadUpTo(fd, count: Superblock.size, at: 0, "superblock of \(path)")
            if head.count < Superblock.size {
                if head.isEmpty { throw bad("no lsmfs superblock: image is empty") }
                if head.allSatisfy({ $0 == 0 }) { throw bad("no lsmfs superblock: image is all zero") }
                if !head.starts(with: IMRFormat.magic.prefix(head.count)) { throw bad("not an lsmfs image (bad magic)") }
                throw bad("image truncated: \(size) bytes, superblock needs \(Superblock.size)")
            }
            let sb = try Superblock.decode(head)
            guard size >= sb.geometry.imageBytes else {
                throw bad("image truncated: \(size) bytes, superblock needs \(sb.geometry.imageBytes)")
            }
            let dev = ImageTrackDevice(fd: fd, path: path, superblock: sb, readOnly: readOnly)
            dev.rebuildValidity(fd: fd)
            return dev
        } catch {
            _ = Glibc.close(fd)
            throw error
        }
    }

    /// Marks every sector inside a data extent of the file valid.
    private func rebuildValidity(fd: Int32) {
        let g = sb.geometry
        let extents = FileIO.dataExtents(fd, from: UInt64(g.metaZoneBytes), to: g.imageBytes)
        let ss = UInt64(g.sectorSize)
        state.withLock { s in
            for e in extents {
                var pos = e.lowerBound
                while pos < e.upperBound {
                    let (track, sector) = locate(g, byte: pos)
                    let trackEnd = g.byteOffset(of: track) + UInt64(g.capacity(of: track))
                    let end = min(e.upperBound, trackEnd)
                    let last = Int((end - g.byteOffset(of: track) + ss - 1) / ss)
                    s.model.markValid(track: track, range: sector..<last)
                    pos = end
                }
            }
        }
    }

    public var superblock: Superblock { sb }
    public var metaCapacity: Int { sb.geometry.metaZoneBytes - Superblock.size }

    /// Whether `sector` of `track` is marked as holding valid data.
    public func isValid(_ track: Int, sector: Int) -> Bool {
        state.withLock { $0.model.validity.isValid(track, sector) }
    }

    /// Marks sectors valid without writing them (the host rebuilding validity after a restart).
    public func markValid(_ track: Int, sector: Int, count: Int) {
        guard let r = TrackIOCheck.clip(sb.geometry, track: track, sector: sector, count: count) else { return }
        state.withLock { $0.model.markValid(track: track, range: r) }
    }

    private func liveFD(writing: Bool, streaming: Bool = false) throws(DeviceError) -> Int32 {
        if writing && readOnly { throw DeviceError(.io, errno: EROFS, "image is read-only: \(path)") }
        return try state.withLock { (s) throws(DeviceError) -> Int32 in
            guard !s.closed else { throw TrackIOCheck.closed }
            return streaming ? s.streamFD : s.fd
        }
    }

    private func offset(_ track: Int, _ sector: Int) -> UInt64 {
        sb.geometry.byteOffset(of: track) + UInt64(sector * sb.geometry.sectorSize)
    }

    public func readTrack(_ track: Int, sector: Int, into buffer: UnsafeMutableRawBufferPointer) throws(DeviceError) {
        let count = try TrackIOCheck.sectors(sb.geometry, track: track, sector: sector, byteCount: buffer.count)
        let fd = try liveFD(writing: false)
        if count > 0 {
            try FileIO.preadFully(fd, buffer, at: offset(track, sector), "track \(track) sectors \(sector)..<\(sector + count) of \(path)")
        }
        state.withLock { $0.model.read(track: track, range: sector..<(sector + count)) }
    }

    /// Reads `buffer.count` bytes starting `skip` bytes into sector `sector` of `track`
    /// straight into `buffer` (byte-granular: no whole-sector bounce buffer for a read that
    /// starts or ends inside a sector). Checked, priced and counted like `readTrack` of the
    /// sectors it touches.
    public func readTrackBytes(_ track: Int, sector: Int, skip: Int, into buffer: UnsafeMutableRawBufferPointer) throws(DeviceError) {
        try readTrackBytes(track, sector: sector, skip: skip, into: buffer, streaming: false)
    }

    /// `readTrackBytes`; `streaming`: the caller reads this file in order and prefetches it
    /// itself (`prefetch`): read through the descriptor without kernel read-ahead.
    public func readTrackBytes(_ track: Int, sector: Int, skip: Int, into buffer: UnsafeMutableRawBufferPointer,
                               streaming: Bool) throws(DeviceError) {
        let ss = sb.geometry.sectorSize
        guard skip >= 0, skip < ss else {
            throw DeviceError(.outOfRange, errno: 22, "byte offset \(skip) is not inside a \(ss)-byte sector")
        }
        let covering = (skip + buffer.count + ss - 1) / ss * ss
        let count = try TrackIOCheck.sectors(sb.geometry, track: track, sector: sector, byteCount: covering)
        let fd = try liveFD(writing: false, streaming: streaming)
        let at = offset(track, sector) + UInt64(skip)
        if buffer.count > 0 && !(streaming && direct?.read(at: at, into: buffer) == true) {
            try FileIO.preadFully(fd, buffer, at: at, "track \(track) sectors \(sector)..<\(sector + count) of \(path)")
        }
        state.withLock { $0.model.read(track: track, range: sector..<(sector + count)) }
    }

    /// Starts reading sectors `[sector, sector + count)` of `track` without waiting, so a later
    /// streaming `readTrackBytes` of them finds them: with O_DIRECT into a window of
    /// `DirectStream`, or (no O_DIRECT) into the host's page cache (POSIX_FADV_WILLNEED).
    /// Advisory: out-of-range parts are clipped, failures ignored; nothing is counted or priced
    /// (the drive model sees the later read).
    /// It runs on a background queue: the read, or the advice (which allocates the window's
    /// page-cache pages and submits their reads before it returns: 8 MiB is 2048 pages), would
    /// otherwise hold up the reader whose read asked for it.
    public func prefetch(_ track: Int, sector: Int, count: Int) {
        guard let r = TrackIOCheck.clip(sb.geometry, track: track, sector: sector, count: count), !r.isEmpty else { return }
        let ss = UInt64(sb.geometry.sectorSize)
        let at = offset(track, r.lowerBound), length = UInt64(r.count) * ss
        guard let direct else {
            prefetchQueue.async { [self] in
                guard let fd = try? liveFD(writing: false, streaming: true) else { return }
                _ = posix_fadvise(fd, off_t(at), off_t(length), POSIX_FADV_WILLNEED)
            }
            return
        }
        // In pieces: a reader waits only for the piece it needs (loads run in order), and
        // buffers of one size are reused (no fresh pages to fault in and clear per window).
        var from = at
        while from < at + length {
            let n = Int(min(DirectStream.pieceBytes, at + length - from))
            let piece = from
            direct.expect(at: piece, length: n)
            prefetchQueue.async { direct.load(at: piece, length: n) }
            from += UInt64(n)
        }
    }

    /// Whether streams are read with O_DIRECT (`DirectStream`), for tests.
    package var usesDirectStream: Bool { direct != nil }

    /// Returns once the prefetches asked so far are done (tests).
    package func waitForPrefetches() { prefetchQueue.sync {} }

    public func writeTrack(_ track: Int, sector: Int, from buffer: UnsafeRawBufferPointer, mode: WriteMode) throws(DeviceError) {
        let count = try TrackIOCheck.sectors(sb.geometry, track: track, sector: sector, byteCount: buffer.count)
        let fd = try liveFD(writing: true)
        if count > 0 {
            direct?.wrote(at: offset(track, sector), count: buffer.count)
            defer { direct?.wrote(at: offset(track, sector), count: buffer.count) }   // see DirectStream.wrote
            try FileIO.pwriteFully(fd, buffer, at: offset(track, sector), "track \(track) sectors \(sector)..<\(sector + count) of \(path)")
            paceWriteback(fd, buffer.count)
        }
        let damaged = state.withLock { $0.model.write(track: track, range: sector..<(sector + count), mode: mode) }
        if damaged.isEmpty { return }
        let ss = sb.geometry.sectorSize
        let garbage = [UInt8](repeating: IMRFormat.damagePattern, count: damaged.map(\.range.count).max()! * ss)
        for d in damaged {
            try garbage.withUnsafeBytes { (p) -> Result<Void, DeviceError> in
                Result { () throws(DeviceError) in
                    direct?.wrote(at: offset(d.track, d.range.lowerBound), count: d.range.count * ss)
                    defer { direct?.wrote(at: offset(d.track, d.range.lowerBound), count: d.range.count * ss) }
                    try FileIO.pwriteFully(fd, UnsafeRawBufferPointer(rebasing: p[0..<(d.range.count * ss)]),
                                           at: offset(d.track, d.range.lowerBound), "damaged track \(d.track) of \(path)")
                }
            }.get()
        }
    }

    /// Counts `bytes` written; past `writebackBytes` the caller starts the write-back of the
    /// whole image's dirty pages (the kernel skips clean ones and those already in flight) and
    /// goes on. Advisory: a failure here shows at the next sync.
    private func paceWriteback(_ fd: Int32, _ bytes: Int) {
        guard unstarted.add(bytes, ordering: .relaxed).newValue >= Self.writebackBytes,
              unstarted.exchange(0, ordering: .relaxed) >= Self.writebackBytes else { return }
        _ = lsm_start_writeback(fd, 0, 0)
    }

    public func trim(_ track: Int, sector: Int, count: Int) {
        guard let r = TrackIOCheck.clip(sb.geometry, track: track, sector: sector, count: count) else { return }
        state.withLock { $0.model.trim(track: track, range: r) }
    }

    public func readMeta(offset: Int, into buffer: UnsafeMutableRawBufferPointer) throws(DeviceError) {
        try TrackIOCheck.meta(sb.geometry, offset: offset, byteCount: buffer.count, capacity: metaCapacity)
        let fd = try liveFD(writing: false)
        if buffer.count > 0 {
            try FileIO.preadFully(fd, buffer, at: UInt64(Superblock.size + offset), "meta zone at \(offset) of \(path)")
        }
        state.withLock { $0.model.meta(write: false, offset: offset, bytes: buffer.count) }
    }

    public func writeMeta(offset: Int, from buffer: UnsafeRawBufferPointer) throws(DeviceError) {
        try TrackIOCheck.meta(sb.geometry, offset: offset, byteCount: buffer.count, capacity: metaCapacity)
        let fd = try liveFD(writing: true)
        if buffer.count > 0 {
            direct?.wrote(at: UInt64(Superblock.size + offset), count: buffer.count)
            defer { direct?.wrote(at: UInt64(Superblock.size + offset), count: buffer.count) }
            try FileIO.pwriteFully(fd, buffer, at: UInt64(Superblock.size + offset), "meta zone at \(offset) of \(path)")
        }
        state.withLock { $0.model.meta(write: true, offset: offset, bytes: buffer.count) }
    }

    public func sync() throws(DeviceError) {
        let fd = try liveFD(writing: false)
        if !readOnly { try FileIO.fdatasync(fd, path) }
        state.withLock { $0.model.counters.syncs += 1 }
    }

    public func counters() -> DeviceCounters { state.withLock { $0.model.snapshot() } }

    /// Syncs and closes (releasing the lock); later calls fail with `.closed`. The descriptor is
    /// closed even when the final sync fails (that failure is then thrown).
    public func close() throws(DeviceError) {
        let (fd, streamFD) = try state.withLock { (s) throws(DeviceError) -> (Int32, Int32) in
            guard !s.closed else { throw TrackIOCheck.closed }
            s.closed = true
            return (s.fd, s.streamFD)
        }
        var failure: DeviceError? = nil
        if !readOnly {
            do { try FileIO.fdatasync(fd, path) } catch { failure = error }
        }
        if streamFD != fd { _ = Glibc.close(streamFD) }
        direct?.close()
        if Glibc.close(fd) != 0 && failure == nil && errno != EINTR { failure = FileIO.ioError("close \(path)") }
        if failure == nil { state.withLock { $0.model.counters.syncs += readOnly ? 0 : 1 } }
        if let f = failure { throw f }
    }
}

/// The track and sector holding byte `byte` of the image (which must lie in the track area).
private func locate(_ g: IMRGeometry, byte: UInt64) -> (track: Int, sector: Int) {
    let rel = byte - UInt64(g.metaZoneBytes)
    let pair = UInt64((g.bottomSectors + g.topSectors) * g.sectorSize)
    let bottomBytes = UInt64(g.bottomSectors * g.sectorSize)
    var track = Int(rel / pair) * 2
    var inTrack = rel % pair
    if inTrack >= bottomBytes { track += 1; inTrack -= bottomBytes }
    return (track, Int(inTrack / UInt64(g.sectorSize)))
}
