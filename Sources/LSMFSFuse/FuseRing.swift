import CFuse
import CFuseRing
import Dispatch
import Glibc
import LSMFS
import Synchronization

/// FUSE over io_uring, negotiated behind libfuse 3.14's back (libfuse learned it in 3.18).
///
/// Over /dev/fuse every request wakes whichever worker thread has waited longest, usually on the
/// other CPU, and its reply wakes the caller back across CPUs. On this 2-vCPU VM a cross-CPU
/// wakeup costs more than serving the request: an untar of /usr/include (96k requests) took
/// 3.1 s with the scheduler's placement, 6.3 s with tar and the daemon pinned to different CPUs
/// and 1.0 s pinned to the same one. With FUSE_OVER_IO_URING the kernel queues each request on
/// the queue of the CPU its caller runs on; each queue here is served by a thread pinned to that
/// CPU (CFuseRing), so request and reply wake threads where they run.
///
/// The daemon asks for it in the INIT reply when the kernel offers it (module parameter
/// `fuse.enable_uring=Y`, Linux >= 6.14) and io_uring works for this process; the ring workers
/// start right after the INIT reply and register one entry each. Requests then arrive through
/// the ring, rebuilt in /dev/fuse layout and handed to libfuse's `fuse_session_process_buf`;
/// libfuse's reply reaches the session's custom writev (KillPriv.swift), which stores it in the
/// ring entry when the calling thread is the ring worker serving that request. FORGETs,
/// INTERRUPTs and notifications keep going through /dev/fuse and libfuse's own loop. `-o
/// no_io_uring` (or LSMFS_NO_IO_URING in the environment) keeps everything on /dev/fuse.
enum FuseRing {
    /// FUSE_OVER_IO_URING (1 << 41): bit 9 of fuse_init_in/fuse_init_out.flags2.
    static let flag2: UInt32 = 1 << 9
    /// FUSE_INIT_EXT in .flags: flags2 is valid.
    static let initExt: UInt32 = 1 << 30
    /// Ring workers per CPU queue: a second one serves the CPU's callers while the first waits
    /// on a slow request (an fsync, a cold read).
    static let workersPerQueue: UInt32 = 2

    /// Whether this mount may use it (set before the loop starts).
    static let wanted = Atomic<Bool>(false)
    /// Whether the kernel offered it in the INIT request.
    static let kernelOffers = Atomic<Bool>(false)
    /// Payload bytes each entry needs, from the INIT reply; nonzero once negotiated.
    static let negotiatedPayload = Atomic<Int>(0)
    /// The session (an OpaquePointer's bits), set when its custom I/O is installed.
    static let sessionBits = Atomic<UInt>(0)
    private static let running = Mutex<Running?>(nil)

    private struct Running: @unchecked Sendable {
        let ring: OpaquePointer
        let context: UnsafeMutablePointer<Context>
    }

    struct Context {
        var session: OpaquePointer
        var fd: Int32
        var userdata: UnsafeMutableRawPointer
    }

    /// Whether the kernel lets FUSE servers use io_uring and this process can create one.
    static func kernelAllows() -> Bool {
        guard let f = fopen("/sys/module/fuse/parameters/enable_uring", "r") else { return false }
        defer { fclose(f) }
        let c = fgetc(f)
        return c == Int32(UInt8(ascii: "Y")) && lsm_fuse_ring_probe() == 0
    }

    /// Called by the INIT-patching writer with the INIT reply's fuse_init_out (fuse_init_out:
    /// flags u32 at 12, max_write u32 at 20, max_pages u16 at 28, flags2 u32 at 32). Returns
    /// whether the ring was asked for.
    static func negotiate(_ body: UnsafeMutableRawPointer, length: Int) -> Bool {
        guard wanted.load(ordering: .relaxed), kernelOffers.load(ordering: .relaxed), length >= 36 else { return false }
        let flags = body.loadUnaligned(fromByteOffset: 12, as: UInt32.self)
        let flags2 = body.loadUnaligned(fromByteOffset: 32, as: UInt32.self)
        body.storeBytes(of: flags | initExt, toByteOffset: 12, as: UInt32.self)
        body.storeBytes(of: flags2 | flag2, toByteOffset: 32, as: UInt32.self)
        // The kernel's ring->max_payload_sz: max(FUSE_MIN_READ_BUFFER, max_write, max_pages * page).
        let maxWrite = Int(body.loadUnaligned(fromByteOffset: 20, as: UInt32.self))
        let maxPages = Int(body.loadUnaligned(fromByteOffset: 28, as: UInt16.self))
        negotiatedPayload.store(max(8192, maxWrite, maxPages * Int(getpagesize())), ordering: .relaxed)
        return true
    }

    /// Starts the workers once the INIT reply carrying the flag was written (the kernel refuses
    /// registrations before). On failure the kernel falls back to /dev/fuse (see CFuseRing).
    static func start(fd: Int32, userdata: UnsafeMutableRawPointer?) {
        guard let userdata, let session = OpaquePointer(bitPattern: sessionBits.load(ordering: .relaxed)) else { return }
        let context = UnsafeMutablePointer<Context>.allocate(capacity: 1)
        context.initialize(to: Context(session: session, fd: fd, userdata: userdata))
        guard let ring = lsm_fuse_ring_start(fd, workersPerQueue, negotiatedPayload.load(ordering: .relaxed),
                                             ringHandler, context) else {
            fuseLog.error("FUSE over io_uring: cannot set up the rings (\(String(cString: strerror(errno)))); serving /dev/fuse")
            context.deallocate()
            return
        }
        running.withLock { $0 = Running(ring: ring, context: context) }
        let transport = "io_uring, \(lsm_fuse_ring_queue_count()) queues x \(workersPerQueue) workers"
        FileSystem.fuseTransport.withLock { $0 = transport }
        fuseLog.info("FUSE transport: \(transport)")
    }

    /// Stops the workers (after the session loop ended, before unmounting).
    static func stop() {
        guard let r = running.withLock({ s -> Running? in defer { s = nil }; return s }) else { return }
        let served = lsm_fuse_ring_served(r.ring), error = lsm_fuse_ring_first_error(r.ring)
        lsm_fuse_ring_stop(r.ring)
        fuseLog.info("FUSE over io_uring: \(served) requests served\(error == 0 ? "" : "; first ring error: \(String(cString: strerror(error)))")")
        flushQueue.sync {}
        FileSystem.fuseTransport.withLock { $0 = "/dev/fuse" }
        r.context.deinitialize(count: 1)
        r.context.deallocate()
    }

    /// Stores the write buffers a WRITE filled (`FileSystem.runDueFlushes`). A /dev/fuse worker
    /// does it itself after replying, while another worker takes the writer's next request. A
    /// ring worker's reply reaches the kernel only when its handler returns (the commit also
    /// fetches its next request), so there the writer would wait for the store: the ring hands
    /// it to one background thread (a 1 GiB dd: 1.2-1.7 s -> see docs/fuse-io-uring.md).
    static func runDueFlushes(_ fs: FileSystem) {
        guard lsm_fuse_ring_in_worker() != 0 else { return fs.runDueFlushes() }
        if flushScheduled.exchange(true, ordering: .acquiringAndReleasing) { return }
        flushQueue.async {
            flushScheduled.store(false, ordering: .releasing)
            fs.runDueFlushes()
        }
    }
    private static let flushQueue = DispatchQueue(label: "lsmfs.write-behind")
    private static let flushScheduled = Atomic<Bool>(false)

    /// The ring entry's payload buffer, `size` bytes of it, when this thread is a ring worker
    /// serving a request it has not replied to and the buffer holds `size`: a READ's bytes
    /// read there and replied from there are not copied again (`lsm_fuse_ring_reply_buffer`).
    static func replyBuffer(_ size: Int) -> UnsafeMutableRawBufferPointer? {
        var capacity = 0
        guard let p = lsm_fuse_ring_reply_buffer(&capacity), size <= capacity else { return nil }
        return UnsafeMutableRawBufferPointer(start: p, count: size)
    }

    /// The session's writer: a reply to a request this thread serves from the ring goes into
    /// the ring entry; everything else is written to /dev/fuse.
    static func write(_ fd: Int32, _ iov: UnsafePointer<iovec>, _ count: Int32) -> Int {
        let r = lsm_fuse_ring_reply(iov, count)
        if r == -2 { return -1 }
        if r >= 0 { return r }
        return Glibc.writev(fd, iov, count)
    }
}

/// Serves one request from a ring entry, as libfuse's loop serves one read from /dev/fuse
/// (FUSE_TMPFILE, unknown to libfuse, as the custom reader does).
private let ringHandler: lsm_fuse_ring_handler = { ctx, request, len in
    guard let ctx, let request else { return }
    let c = ctx.assumingMemoryBound(to: FuseRing.Context.self).pointee
    if TmpFileOp.isRequest(request, len) {
        TmpFileOp.serve(c.fd, request, len, c.userdata)
        return
    }
    var buf = fuse_buf()
    buf.mem = request
    buf.size = len
    fuse_session_process_buf(c.session, &buf)
}
