/// Every on-image constant of the IMR disk layer, in one place (docs/format/imr.md).
///
/// All integers in the superblock are little-endian.
public enum IMRFormat {
    /// The first 8 bytes of every lsmfs image.
    public static let magic: [UInt8] = Array("LSMFSIMR".utf8)
    /// The superblock occupies the first `superblockSize` bytes of the image (= the meta zone's
    /// first sector with the default 4 KiB sectors).
    public static let superblockSize = 4096
    /// The only format version this build reads and writes.
    public static let currentVersion: UInt32 = 1
    /// Longest policy name stored in the superblock, in UTF-8 bytes.
    public static let maxPolicyBytes = 31

    // Byte offsets of the superblock fields (see `Superblock.encode()`).
    public static let offMagic = 0            // [8]  "LSMFSIMR"
    public static let offVersion = 8          // u32  format version
    public static let offFlags = 12           // u32  feature flags (flagRMWJournal)
    public static let offSectorSize = 16      // u32
    public static let offBottomSectors = 20   // u32
    public static let offTopSectors = 24      // u32
    public static let offReserved28 = 28      // u32  reserved, 0
    public static let offTrackCount = 32      // u64
    public static let offMetaZoneBytes = 40   // u64
    public static let offImageBytes = 48      // u64  redundant: must equal the geometry's image size
    public static let offCreatedAt = 56       // u64  seconds since the epoch
    public static let offUUID = 64            // [16]
    public static let offPolicyLength = 80    // u8
    public static let offPolicy = 81          // [31] UTF-8, zero padded
    public static let offChecksum = 4092      // u32  CRC32C of bytes [0, 4092), unmasked

    // Sanity limits a decoded geometry must respect ("absurd geometry" otherwise).
    public static let minSectorSize = 512
    public static let maxSectorSize = 65536
    public static let maxSectorsPerTrack = 1 << 20
    public static let maxTrackCount = 1 << 32
    /// A meta zone must hold the superblock plus at least one more sector, and at most 16 GiB.
    public static let maxMetaZoneBytes = 1 << 34
    /// The smallest image `ImageTrackDevice.create` accepts.
    public static let minImageBytes: UInt64 = 64 << 20
    /// Largest image (16 PiB): keeps every byte offset far from overflow.
    public static let maxImageBytes: UInt64 = 1 << 54

    /// Superblock flag: the meta zone ends in KVIMR's merged-RMW journal region (its second half;
    /// the two track-map slots share the first half). Set on every image this build creates;
    /// images without it (issue-2 format) have no journal and slots of half the meta zone each.
    public static let flagRMWJournal: UInt32 = 1 << 0
    /// Flags this build understands; a superblock with other bits set is refused.
    public static let knownFlags: UInt32 = flagRMWJournal

    /// The byte pattern a host-managed bottom write leaves in the damaged sectors of a neighbouring
    /// top track (so damage shows up as a checksum failure, never as plausible data).
    public static let damagePattern: UInt8 = 0xDB
}
