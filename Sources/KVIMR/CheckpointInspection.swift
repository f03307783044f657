import IMRDisk

/// What one checkpoint slot holds, for `lsmfs dump` and `fsck`.
public struct CheckpointSlotInfo: Sendable, Equatable {
    /// 0 = slot A, 1 = slot B.
    public var index: Int
    /// Meta-zone offset of the slot.
    public var offset: Int
    /// The decoded checkpoint, or nil when the slot is empty or invalid.
    public var sequence: UInt64?
    public var map: S2TMap?
    /// Why the slot is not usable ("empty", "payload checksum mismatch ...", ...), nil if valid.
    public var problem: String?
    /// True for the slot open would load (the valid one with the higher sequence).
    public var isCurrent: Bool

    public var name: String { index == 0 ? "A" : "B" }
}

extension KVIMR {
    /// Reads both track-map checkpoint slots without opening KVIMR (nothing is written).
    /// Throws only for device I/O failures; a damaged slot is reported in its `problem`.
    public static func inspectCheckpoints(device: TrackDevice) throws(KVIMRError) -> [CheckpointSlotInfo] {
        let store = try CheckpointStore(device: device)
        var slots: [CheckpointSlotInfo] = []
        for index in 0..<2 {
            let offset = TrackMapFormat.slotOffset(index, metaCapacity: store.metaCapacity, sectorSize: store.sectorSize)
            var info = CheckpointSlotInfo(index: index, offset: offset, isCurrent: false)
            do throws(KVIMRError) {
                let loaded = try store.loadSlot(index, from: device)
                info.sequence = loaded.sequence
                info.map = loaded.map
            } catch {
                if error.kind == .io { throw error }
                info.problem = error.message
            }
            slots.append(info)
        }
        let best = slots.filter { $0.sequence != nil }.max { $0.sequence! < $1.sequence! }
        if let best { slots[best.index].isCurrent = true }
        return slots
    }
}
