import IMRDisk

/// Constants of the track-map checkpoint format, in one place (docs/format/trackmap.md).
///
/// The device's meta zone (after the superblock) holds two checkpoint slots, A and B, each
/// `slotBytes(metaCapacity:sectorSize:)` long. Slot A starts at meta offset 0, slot B right after
/// it. A checkpoint with sequence number `s` goes to slot `(s - 1) % 2`, so consecutive
/// checkpoints alternate and a torn write only ever damages the older of the two.
public enum TrackMapFormat {
    /// "KVIMRTM1" as a little-endian UInt64: the first 8 bytes of a slot header.
    public static let magic: UInt64 = 0x314D_5452_4D49_564B
    /// Version of the header and payload encoding.
    public static let version: UInt32 = 1
    /// Bytes of the slot header (the payload starts right after it).
    public static let headerSize = 64
    /// Bytes of the header covered by the header CRC (everything before the CRC field).
    public static let headerCRCOffset = 48
    /// Bytes of the image UUID copied into each header (binds a checkpoint to its image).
    public static let uuidSize = 16
    /// Largest `root` record the engine may store.
    public static let maxRootBytes = 4096
    /// Largest LSM level accepted when decoding (levels are small integers).
    public static let maxLevel = 1 << 16
    /// Flag bits of a file entry.
    public static let flagSealed: UInt8 = 0x01
    /// The sequence number of the checkpoint `KVIMR.format` writes (into slot A).
    public static let firstSequence: UInt64 = 1
    /// The first file number handed out by a freshly formatted map.
    public static let firstFileNumber: FileNumber = 1

    /// Bytes of one slot: half the meta capacity, rounded down to whole sectors.
    public static func slotBytes(metaCapacity: Int, sectorSize: Int) -> Int {
        (metaCapacity / 2) / sectorSize * sectorSize
    }

    /// Meta-zone offset of slot `index` (0 = A, 1 = B).
    public static func slotOffset(_ index: Int, metaCapacity: Int, sectorSize: Int) -> Int {
        index * slotBytes(metaCapacity: metaCapacity, sectorSize: sectorSize)
    }

    /// The slot a checkpoint with sequence number `sequence` is written to.
    public static func slotIndex(forSequence sequence: UInt64) -> Int {
        Int((sequence &- 1) % 2)
    }

    /// Largest payload a slot can hold.
    public static func maxPayloadBytes(metaCapacity: Int, sectorSize: Int) -> Int {
        slotBytes(metaCapacity: metaCapacity, sectorSize: sectorSize) - headerSize
    }

    /// Bytes of the merged-RMW journal region at the end of the meta zone: the second half of
    /// the meta capacity (whole sectors) on images whose superblock has `flagRMWJournal`, else 0.
    public static func journalBytes(metaCapacity: Int, sectorSize: Int, hasJournal: Bool) -> Int {
        hasJournal ? (metaCapacity / 2) / sectorSize * sectorSize : 0
    }

    /// The part of the meta capacity the two checkpoint slots share (everything before the
    /// journal region). `slotBytes`/`slotOffset` take this as their `metaCapacity`.
    public static func slotAreaBytes(of device: TrackDevice) -> Int {
        let ss = device.geometry.sectorSize
        return device.metaCapacity - journalBytes(metaCapacity: device.metaCapacity, sectorSize: ss,
                                                  hasJournal: device.superblock.hasRMWJournal)
    }
}
