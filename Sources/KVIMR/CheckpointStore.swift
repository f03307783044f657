import IMRDisk
import LSMCommon

/// The two alternating checkpoint slots in the device's meta zone.
///
/// Ordering (docs/format/trackmap.md): the caller syncs the device before `write` (so every
/// track write the map describes is durable), and syncs it again after `write` before treating
/// the checkpoint as durable (and before reusing any track the new map no longer names).
struct CheckpointStore: Sendable {
    let sectorSize: Int
    let metaCapacity: Int
    let uuid: [UInt8]

    init(device: TrackDevice) throws(KVIMRError) {
        sectorSize = device.geometry.sectorSize
        metaCapacity = TrackMapFormat.slotAreaBytes(of: device)
        uuid = CheckpointCodec.normalizedUUID(device.superblock.uuid)
        let slot = TrackMapFormat.slotBytes(metaCapacity: metaCapacity, sectorSize: sectorSize)
        guard sectorSize >= TrackMapFormat.headerSize, slot >= sectorSize else {
            throw KVIMRError(.corrupt, "meta zone of \(metaCapacity) bytes is too small for two track-map slots")
        }
    }

    var slotBytes: Int { TrackMapFormat.slotBytes(metaCapacity: metaCapacity, sectorSize: sectorSize) }
    var maxPayloadBytes: Int { TrackMapFormat.maxPayloadBytes(metaCapacity: metaCapacity, sectorSize: sectorSize) }

    /// Writes `map` as checkpoint `sequence` into its slot (not synced).
    func write(_ map: S2TMap, sequence: UInt64, to device: TrackDevice) throws(KVIMRError) {
        let payload = CheckpointCodec.encodePayload(map)
        guard payload.count <= maxPayloadBytes else {
            throw KVIMRError(.noSpace, "track map of \(payload.count) bytes (\(map.files.count) files) outgrows its checkpoint slot of \(maxPayloadBytes) bytes")
        }
        let slot = CheckpointCodec.encodeSlot(payload: payload, sequence: sequence, uuid: uuid, sectorSize: sectorSize)
        let offset = TrackMapFormat.slotOffset(TrackMapFormat.slotIndex(forSequence: sequence),
                                               metaCapacity: metaCapacity, sectorSize: sectorSize)
        do {
            try slot.withBytes { p throws(DeviceError) in try device.writeMeta(offset: offset, from: p) }
        } catch {
            throw KVIMRError(.io, "writing track-map checkpoint \(sequence): \(error.message)")
        }
    }

    /// Makes slot `index` hold no checkpoint (zeroes its header sector).
    func clear(slot index: Int, on device: TrackDevice) throws(KVIMRError) {
        let zero = [UInt8](repeating: 0, count: sectorSize)
        let offset = TrackMapFormat.slotOffset(index, metaCapacity: metaCapacity, sectorSize: sectorSize)
        do {
            try zero.withBytes { p throws(DeviceError) in try device.writeMeta(offset: offset, from: p) }
        } catch {
            throw KVIMRError(.io, "clearing track-map slot: \(error.message)")
        }
    }

    /// Loads the newest valid checkpoint: (map, its sequence number). A torn or corrupt slot
    /// falls back to the other one; neither valid → `.corrupt` naming both reasons.
    func load(from device: TrackDevice) throws(KVIMRError) -> (map: S2TMap, sequence: UInt64) {
        var best: (map: S2TMap, sequence: UInt64)?
        var reasons: [String] = []
        for index in 0..<2 {
            do throws(KVIMRError) {
                let loaded = try loadSlot(index, from: device)
                if best == nil || loaded.sequence > best!.sequence { best = loaded }
            } catch {
                if error.kind == .io { throw error }
                reasons.append("slot \(index == 0 ? "A" : "B"): \(error.message)")
            }
        }
        if let best { return best }
        if reasons.allSatisfy({ $0.hasSuffix(": empty") }) {
            throw KVIMRError(.corrupt, "no track map: image not formatted")
        }
        throw KVIMRError(.corrupt, "no valid track-map checkpoint (\(reasons.joined(separator: "; ")))")
    }

    func loadSlot(_ index: Int, from device: TrackDevice) throws(KVIMRError) -> (map: S2TMap, sequence: UInt64) {
        let offset = TrackMapFormat.slotOffset(index, metaCapacity: metaCapacity, sectorSize: sectorSize)
        var first = [UInt8](repeating: 0, count: sectorSize)
        try readMeta(offset: offset, into: &first, device: device)
        let header = try first.withBytes { p throws(KVIMRError) in try CheckpointCodec.decodeHeader(p) }
        guard header.payloadLength <= maxPayloadBytes else {
            throw KVIMRError(.corrupt, "payload length \(header.payloadLength) exceeds the slot")
        }
        guard header.uuid == uuid else { throw KVIMRError(.corrupt, "checkpoint belongs to another image (UUID mismatch)") }
        let total = TrackMapFormat.headerSize + header.payloadLength
        var whole = first
        if total > sectorSize {
            let padded = (total + sectorSize - 1) / sectorSize * sectorSize
            var rest = [UInt8](repeating: 0, count: padded - sectorSize)
            try readMeta(offset: offset + sectorSize, into: &rest, device: device)
            whole.append(contentsOf: rest)
        }
        return try whole.withBytes { p throws(KVIMRError) in
            let payload = UnsafeRawBufferPointer(rebasing: p[TrackMapFormat.headerSize..<total])
            guard CRC32C.checksum(payload) == header.payloadCRC else {
                throw KVIMRError(.corrupt, "payload checksum mismatch (checkpoint \(header.sequence), torn write?)")
            }
            let map = try CheckpointCodec.decodePayload(payload, geometry: device.geometry)
            return (map, header.sequence)
        }
    }

    private func readMeta(offset: Int, into buffer: inout [UInt8], device: TrackDevice) throws(KVIMRError) {
        do {
            try buffer.withMutableBytes { p throws(DeviceError) in try device.readMeta(offset: offset, into: p) }
        } catch {
            throw KVIMRError(.io, "reading track-map slot at meta offset \(offset): \(error.message)")
        }
    }
}
