// SKELETON (owned by the IMRDisk helper): fields are fixed; encode/decode to be written.
/// The image's superblock: first 4 KiB of the image. Written at mkfs, read at every open.
public struct Superblock: Sendable, Equatable {
    public var formatVersion: UInt32
    public var geometry: IMRGeometry
    /// KVIMR policy chosen at mkfs ("conventional", "two-phase", "three-phase", "kvimr").
    public var policy: String
    public var uuid: [UInt8]          // 16 bytes
    public var createdAt: UInt64      // seconds since the epoch

    public init(formatVersion: UInt32 = Superblock.currentVersion, geometry: IMRGeometry,
                policy: String, uuid: [UInt8], createdAt: UInt64) {
        self.formatVersion = formatVersion; self.geometry = geometry; self.policy = policy
        self.uuid = uuid; self.createdAt = createdAt
    }
    public static let currentVersion: UInt32 = 1
    public static let size = 4096

    /// Exactly `Superblock.size` bytes, checksummed.
    public func encode() -> [UInt8] { fatalError("unimplemented") }
    /// Throws `.invalidImage` with a one-line reason (bad magic, all zero, bad checksum, version).
    public static func decode(_ bytes: UnsafeRawBufferPointer) throws(DeviceError) -> Superblock { fatalError("unimplemented") }
}
