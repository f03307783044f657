import IMRDisk
import LSMCommon

/// Constants of the merged-RMW journal (docs/format/trackmap.md, "Merged-RMW journal").
public enum RMWJournalFormat {
    /// "KVIMRRJ1" as a little-endian UInt64.
    public static let magic: UInt64 = 0x314A_5252_4D49_564B
    public static let version: UInt32 = 1
    /// Fixed header fields before the entry table.
    public static let entriesOffset = 48
    /// Bytes of one entry: u32 track, u32 first sector, u32 sector count.
    public static let entrySize = 12
    /// Entries that fit in the header sector (the last 4 bytes hold the header CRC).
    public static func maxEntries(sectorSize: Int) -> Int { (sectorSize - 4 - entriesOffset) / entrySize }
}

/// One saved run of top-track sectors.
struct JournalEntry: Sendable, Equatable {
    var track: Int
    var firstSector: Int
    var sectorCount: Int
}

/// The merged-RMW journal: a region at the end of the meta zone holding the valid top-track
/// sectors a host-managed bottom write is about to damage, durable before that write, so that a
/// crash at any point can be repaired by rewriting them (`replay`).
struct RMWJournal: Sendable {
    let offset: Int          // meta offset of the region
    let capacity: Int        // bytes of the region
    let sectorSize: Int
    let uuid: [UInt8]

    init?(device: TrackDevice) {
        let ss = device.geometry.sectorSize
        let bytes = TrackMapFormat.journalBytes(metaCapacity: device.metaCapacity, sectorSize: ss,
                                                hasJournal: device.superblock.hasRMWJournal)
        guard bytes >= 2 * ss, ss >= 128 else { return nil }
        offset = device.metaCapacity - bytes
        capacity = bytes
        sectorSize = ss
        uuid = CheckpointCodec.normalizedUUID(device.superblock.uuid)
    }

    /// Data sectors the region holds after its header sector.
    var dataSectors: Int { capacity / sectorSize - 1 }
    var maxEntries: Int { RMWJournalFormat.maxEntries(sectorSize: sectorSize) }

    func fits(entries: Int, sectors: Int) -> Bool { entries <= maxEntries && sectors <= dataSectors }

    /// Header sector then the entries' data back to back.
    ///
    /// Header byte layout (little-endian):
    ///
    ///     0    u64   magic "KVIMRRJ1"
    ///     8    u32   version (1)
    ///     12   u32   entry count n
    ///     16   u64   sequence (informational: merged RMWs done by this mount)
    ///     24   u32   CRC32C of the data sectors
    ///     28   u32   data sectors (sum of the entries' sector counts)
    ///     32   [16]  image uuid
    ///     48   n x { u32 track, u32 first sector, u32 sector count }
    ///     ...  zeros
    ///     S-4  u32   CRC32C of header bytes [0, S-4)       (S = sector size)
    func encode(_ entries: [JournalEntry], data: [UInt8], sequence: UInt64) -> [UInt8] {
        var h = [UInt8]()
        h.reserveCapacity(sectorSize + data.count)
        h.appendLE(RMWJournalFormat.magic)
        h.appendLE(RMWJournalFormat.version)
        h.appendLE(UInt32(entries.count))
        h.appendLE(sequence)
        h.appendLE(data.withUnsafeBytes { CRC32C.checksum($0) })
        h.appendLE(UInt32(data.count / sectorSize))
        h.append(contentsOf: uuid)
        for e in entries {
            h.appendLE(UInt32(e.track)); h.appendLE(UInt32(e.firstSector)); h.appendLE(UInt32(e.sectorCount))
        }
        h.append(contentsOf: [UInt8](repeating: 0, count: sectorSize - 4 - h.count))
        h.appendLE(h.withUnsafeBytes { CRC32C.checksum($0) })
        h.append(contentsOf: data)
        return h
    }

    /// Writes the journal (not synced).
    func write(_ entries: [JournalEntry], data: [UInt8], sequence: UInt64, to device: TrackDevice) throws(KVIMRError) {
        let bytes = encode(entries, data: data, sequence: sequence)
        do {
            try bytes.withBytes { p throws(DeviceError) in try device.writeMeta(offset: offset, from: p) }
        } catch { throw KVIMRError(.io, "writing the merged-RMW journal: \(error.message)") }
    }

    /// Zeroes the header sector (not synced).
    func clear(on device: TrackDevice) throws(KVIMRError) {
        let zero = [UInt8](repeating: 0, count: sectorSize)
        do {
            try zero.withBytes { p throws(DeviceError) in try device.writeMeta(offset: offset, from: p) }
        } catch { throw KVIMRError(.io, "clearing the merged-RMW journal: \(error.message)") }
    }

    /// The durable journal, if a valid one is present: its entries and their data. A torn or
    /// empty journal is nil (the bottom write it guarded never started: it waits for the sync).
    func load(from device: TrackDevice) throws(KVIMRError) -> (entries: [JournalEntry], data: [UInt8])? {
        var head = [UInt8](repeating: 0, count: sectorSize)
        do {
            try head.withMutableBytes { p throws(DeviceError) in try device.readMeta(offset: offset, into: p) }
        } catch { throw KVIMRError(.io, "reading the merged-RMW journal: \(error.message)") }
        return try head.withBytes { h throws(KVIMRError) -> (entries: [JournalEntry], data: [UInt8])? in
            guard h.readLE(UInt64.self, at: 0) == RMWJournalFormat.magic,
                  h.readLE(UInt32.self, at: sectorSize - 4) == CRC32C.checksum(UnsafeRawBufferPointer(rebasing: h[0..<(sectorSize - 4)])),
                  h.readLE(UInt32.self, at: 8) == RMWJournalFormat.version,
                  Array(h[32..<48]) == uuid else { return nil }
            let n = Int(h.readLE(UInt32.self, at: 12))
            let sectors = Int(h.readLE(UInt32.self, at: 28))
            guard n <= maxEntries, sectors <= dataSectors else { return nil }
            var entries: [JournalEntry] = []
            var total = 0
            for i in 0..<n {
                let at = RMWJournalFormat.entriesOffset + i * RMWJournalFormat.entrySize
                let e = JournalEntry(track: Int(h.readLE(UInt32.self, at: at)),
                                     firstSector: Int(h.readLE(UInt32.self, at: at + 4)),
                                     sectorCount: Int(h.readLE(UInt32.self, at: at + 8)))
                entries.append(e)
                total += e.sectorCount
            }
            guard total == sectors else { return nil }
            var data = [UInt8](repeating: 0, count: sectors * sectorSize)
            if sectors > 0 {
                do throws(DeviceError) {
                    try data.withMutableBytes { p throws(DeviceError) in try device.readMeta(offset: offset + sectorSize, into: p) }
                } catch { throw KVIMRError(.io, "reading the merged-RMW journal: \(error.message)") }
            }
            guard data.withUnsafeBytes({ CRC32C.checksum($0) }) == h.readLE(UInt32.self, at: 24) else { return nil }
            return (entries, data)
        }
    }

    /// Writes each run of `entries` (their bytes back to back in `data`) onto its top track,
    /// host-managed: the replay at open and the rewrite step of a merged RMW. `failing` names
    /// the step in an I/O error, given the track.
    func writeRuns(_ entries: [JournalEntry], _ data: [UInt8], on device: TrackDevice,
                   failing: (Int) -> String) throws(KVIMRError) {
        let g = device.geometry
        var at = 0
        for e in entries {
            let len = e.sectorCount * sectorSize
            guard e.track >= 0, e.track < g.trackCount, e.firstSector >= 0,
                  e.firstSector + e.sectorCount <= g.sectors(of: e.track) else {
                throw KVIMRError(.corrupt, "merged-RMW journal names track \(e.track) sectors \(e.firstSector)+\(e.sectorCount) outside the drive")
            }
            do {
                try data.withBytes { p throws(DeviceError) in
                    try device.writeTrack(e.track, sector: e.firstSector,
                                          from: UnsafeRawBufferPointer(rebasing: p[at..<(at + len)]), mode: .hostManaged)
                }
            } catch { throw KVIMRError(.io, "\(failing(e.track)): \(error.message)") }
            at += len
        }
    }

    /// Rewrites every journaled run onto its top track, syncs, clears the journal and syncs.
    /// Returns the number of runs replayed (0: no journal).
    @discardableResult
    func replay(on device: TrackDevice) throws(KVIMRError) -> Int {
        guard let (entries, data) = try load(from: device) else { return 0 }
        try writeRuns(entries, data, on: device) { "replaying the merged-RMW journal onto track \($0)" }
        do { try device.sync() } catch { throw KVIMRError(.io, "device sync: \(error.message)") }
        try clear(on: device)
        do { try device.sync() } catch { throw KVIMRError(.io, "device sync: \(error.message)") }
        return entries.count
    }
}
