import LSMCommon
import LSMStore

/// The live-mount garbage-collection request: one ioctl on the mount's root directory
/// (docs/gc.md). `lsmfs gc MOUNTPOINT` opens the mountpoint read-only and issues
/// `ioctl(fd, GCControl.command, buf)` with a 256-byte buffer; the daemon (LSMFSFuse's ioctl
/// handler) decodes the request, runs `FileSystem.collectGarbage` and encodes the reply into
/// the same buffer. The command is a *restricted* ioctl (`_IOWR('L', 0x47, 256)`): the kernel
/// learns the direction and size from the command number, copies 256 bytes in and 256 out,
/// which FUSE allows on an ordinary (non-CUSE, unprivileged) mount.
///
/// Errors of the GC itself come back inside the reply (status = an errno, message = one
/// line), so the CLI can print the daemon's reason; the ioctl syscall itself fails only when
/// the target is not an lsmfs mount (ENOTTY, EINVAL), when the caller is not allowed (EPERM) or
/// when the buffer is malformed (EINVAL).
public enum GCControl {
    /// Bytes of the request and of the reply.
    public static let size = 256
    /// `_IOWR('L', 0x47 /* 'G' */, 256)`: dir (read|write = 3) << 30 | size << 16 | type << 8 | nr.
    public static let command: UInt32 = 3 << 30 | UInt32(size) << 16 | UInt32(UInt8(ascii: "L")) << 8 | 0x47
    /// "LSGC" little-endian at offset 0 of both request and reply.
    public static let magic: UInt32 = 0x4347_534C
    public static let version: UInt32 = 1
    /// Offset and capacity of the reply's message (UTF-8, NUL-padded).
    static let messageOffset = 128
    static let messageCapacity = size - messageOffset

    /// What `lsmfs gc` asks for.
    public struct Request: Sendable, Equatable {
        public var minGarbageRatio: Double
        public var maxSegments: Int
        public init(minGarbageRatio: Double = 0, maxSegments: Int = .max) {
            self.minGarbageRatio = minGarbageRatio; self.maxSegments = maxSegments
        }

        /// Byte layout (little-endian), 256 bytes:
        ///   0  u32 magic "LSGC"    4  u32 version (1)
        ///   8  u64 min garbage ratio (IEEE-754 double bits)
        ///  16  u64 max segments (UInt64.max: no limit)
        ///  24  zero up to 256
        public func encode() -> [UInt8] {
            var b: [UInt8] = []
            b.reserveCapacity(GCControl.size)
            b.appendLE(GCControl.magic)
            b.appendLE(GCControl.version)
            b.appendLE(minGarbageRatio.bitPattern)
            b.appendLE(maxSegments == .max ? UInt64.max : UInt64(max(maxSegments, 0)))
            b.append(contentsOf: repeatElement(0, count: GCControl.size - b.count))
            return b
        }

        /// nil when the buffer is short, has the wrong magic or version, or a bad ratio.
        public static func decode(_ b: UnsafeRawBufferPointer) -> Request? {
            guard b.count >= 24, b.readLE(UInt32.self, at: 0) == GCControl.magic,
                  b.readLE(UInt32.self, at: 4) == GCControl.version else { return nil }
            let ratio = Double(bitPattern: b.readLE(UInt64.self, at: 8))
            guard ratio.isFinite, ratio >= 0, ratio <= 1 else { return nil }
            let n = b.readLE(UInt64.self, at: 16)
            return Request(minGarbageRatio: ratio, maxSegments: n >= UInt64(Int.max) ? .max : Int(n))
        }
    }

    /// What the daemon answers.
    public struct Reply: Sendable {
        /// 0, or the errno of the failure (`message` says why).
        public var status: Int32 = 0
        public var message: String = ""
        public var report = GCReport()
        public init() {}

        /// Byte layout (little-endian), 256 bytes:
        ///   0  u32 magic "LSGC"    4  i32 status (0 or an errno)
        ///   8  u64 segments freed   16 u64 bytes moved   24 u64 bytes freed
        ///  32  u64 segments before  40 u64 total bytes before  48 u64 garbage bytes before
        ///  56  u64 segments after   64 u64 total bytes after   72 u64 garbage bytes after
        ///  80  u64 microseconds the GC took
        ///  88  u64 segments GC had freed since open, before  96  u64 the same, after
        ///      (their difference less "segments freed": background GC meanwhile)
        /// 104  zero up to 128
        /// 128  message, UTF-8, NUL-padded to 256 (truncated to 127 bytes)
        public func encode() -> [UInt8] {
            var b: [UInt8] = []
            b.reserveCapacity(GCControl.size)
            b.appendLE(GCControl.magic)
            b.appendLE(status)
            let r = report
            for v in [UInt64(r.result.segmentsFreed), r.result.bytesMoved, r.result.bytesFreed,
                      UInt64(r.before.segments), r.before.totalBytes, r.before.garbageBytes,
                      UInt64(r.after.segments), r.after.totalBytes, r.after.garbageBytes, r.micros,
                      r.before.gcSegmentsFreed, r.after.gcSegmentsFreed] {
                b.appendLE(v)
            }
            b.append(contentsOf: repeatElement(0, count: GCControl.messageOffset - b.count))
            var msg: [UInt8] = []   // whole characters only, at most capacity - 1 bytes
            for ch in message {
                if msg.count + ch.utf8.count >= GCControl.messageCapacity { break }
                msg.append(contentsOf: ch.utf8)
            }
            msg.append(contentsOf: repeatElement(0, count: GCControl.messageCapacity - msg.count))
            b.append(contentsOf: msg)
            return b
        }

        public static func decode(_ b: UnsafeRawBufferPointer) -> Reply? {
            guard b.count >= GCControl.size, b.readLE(UInt32.self, at: 0) == GCControl.magic else { return nil }
            var r = Reply()
            r.status = b.readLE(Int32.self, at: 4)
            func u(_ i: Int) -> UInt64 { b.readLE(UInt64.self, at: 8 + 8 * i) }
            r.report.result.segmentsFreed = Int(clamping: u(0))
            r.report.result.bytesMoved = u(1)
            r.report.result.bytesFreed = u(2)
            r.report.before.segments = Int(clamping: u(3))
            r.report.before.totalBytes = u(4)
            r.report.before.garbageBytes = u(5)
            r.report.after.segments = Int(clamping: u(6))
            r.report.after.totalBytes = u(7)
            r.report.after.garbageBytes = u(8)
            r.report.micros = u(9)
            r.report.before.gcSegmentsFreed = u(10)
            r.report.after.gcSegmentsFreed = u(11)
            let msg = b[GCControl.messageOffset..<GCControl.size].prefix { $0 != 0 }
            r.message = String(decoding: msg, as: UTF8.self)
            return r
        }
    }
}
