import IMRDisk
import KVIMR
import Testing

@Suite struct CheckpointTests {
    @Test func payloadRoundTrip() throws {
        let g = smallGeometry()
        var map = S2TMap()
        map.nextFileNumber = 1_000_000_007
        map.root = [9, 8, 7]
        map.files[5] = FileRecord(number: 5, kind: .sstable, level: 3, sealed: true, size: 9000,
                                  extents: [TrackExtent(track: 0, firstSector: 0, sectorCount: 16),
                                            TrackExtent(track: 63, firstSector: 0, sectorCount: 2)])
        map.files[77] = FileRecord(number: 77, kind: .wal, level: 0, size: 0)
        let bytes = CheckpointCodec.encodePayload(map)
        let back = try bytes.withUnsafeBytes { try CheckpointCodec.decodePayload($0, geometry: g) }
        #expect(back == map)
    }

    @Test func badPayloadsAreRejectedWithAReason() throws {
        let g = smallGeometry()
        func decode(_ map: S2TMap) -> KVIMRError? {
            let bytes = CheckpointCodec.encodePayload(map)
            return kvimrError { _ = try bytes.withUnsafeBytes { try CheckpointCodec.decodePayload($0, geometry: g) } }
        }
        var shared = S2TMap()
        shared.nextFileNumber = 3
        shared.files[1] = FileRecord(number: 1, kind: .vlog, level: 0, size: 1, extents: [TrackExtent(track: 4, firstSector: 0, sectorCount: 1)])
        shared.files[2] = FileRecord(number: 2, kind: .vlog, level: 0, size: 1, extents: [TrackExtent(track: 4, firstSector: 0, sectorCount: 1)])
        #expect(decode(shared)?.message.contains("owned by both") == true)

        var beyond = S2TMap()
        beyond.nextFileNumber = 2
        beyond.files[1] = FileRecord(number: 1, kind: .vlog, level: 0, size: 1, extents: [TrackExtent(track: 64, firstSector: 0, sectorCount: 1)])
        #expect(decode(beyond)?.kind == .corrupt)

        var tooBig = S2TMap()
        tooBig.nextFileNumber = 2
        tooBig.files[1] = FileRecord(number: 1, kind: .vlog, level: 0, size: 513, extents: [TrackExtent(track: 0, firstSector: 0, sectorCount: 1)])
        #expect(decode(tooBig)?.message.contains("hold only") == true)

        var numbering = S2TMap()
        numbering.nextFileNumber = 1
        numbering.files[1] = FileRecord(number: 1, kind: .wal, level: 0)
        #expect(decode(numbering)?.kind == .corrupt)

        // Truncations and trailing garbage of a valid payload.
        let good = CheckpointCodec.encodePayload(shared.filesRemoving(2))
        for cut in 0..<good.count {
            let part = Array(good[0..<cut])
            #expect(kvimrError { _ = try part.withUnsafeBytes { try CheckpointCodec.decodePayload($0, geometry: g) } }?.kind == .corrupt)
        }
        let trailing = good + [0]
        #expect(kvimrError { _ = try trailing.withUnsafeBytes { try CheckpointCodec.decodePayload($0, geometry: g) } }?.kind == .corrupt)
    }

    @Test func unformattedImageIsACleanError() throws {
        let dev = MemoryTrackDevice(geometry: smallGeometry())
        let e = kvimrError { _ = try KVIMR(device: dev) }
        #expect(e?.kind == .corrupt)
        #expect(e?.message == "no track map: image not formatted")
    }

    @Test func garbageInBothSlotsIsReported() throws {
        let (dev, k) = try makeKVIMR()
        _ = k
        let slot = TrackMapFormat.slotBytes(metaCapacity: TrackMapFormat.slotAreaBytes(of: dev), sectorSize: 512)
        let junk = [UInt8](repeating: 0x5A, count: 512)
        for off in [0, slot] { try junk.withUnsafeBytes { try dev.writeMeta(offset: off, from: $0) } }
        let e = kvimrError { _ = try KVIMR(device: dev) }
        #expect(e?.kind == .corrupt)
        #expect(e?.message.contains("bad magic") == true)
    }

    @Test func checkpointsAlternateSlots() throws {
        let (dev, k) = try makeKVIMR()
        let n = try k.create(kind: .manifest, level: 0)
        for i in 0..<5 {
            try k.append(n, [UInt8(i)])
            try k.sync([n])
        }
        // format wrote sequence 1 to A; five syncs wrote 2...6: B holds 6, A holds 5.
        let slot = TrackMapFormat.slotBytes(metaCapacity: TrackMapFormat.slotAreaBytes(of: dev), sectorSize: 512)
        var seqs: [UInt64] = []
        for off in [0, slot] {
            var sector = [UInt8](repeating: 0, count: 512)
            try sector.withUnsafeMutableBytes { try dev.readMeta(offset: off, into: $0) }
            seqs.append(try sector.withUnsafeBytes { try CheckpointCodec.decodeHeader($0) }.sequence)
        }
        #expect(seqs == [5, 6])
    }

    /// The newest slot is torn (its write was not yet covered by a sync): open falls back to the
    /// previous checkpoint.
    @Test(arguments: [0, 1, 2, 3])
    func tornCheckpointFallsBackToThePreviousSlot(keepSectors: Int) throws {
        let mem = MemoryTrackDevice(geometry: smallGeometry())
        try KVIMR.format(device: mem)
        let dev = CrashingDevice(mem)
        let k = try KVIMR(device: dev)
        let n = try k.create(kind: .wal, level: 0)
        // A root large enough that the checkpoint spans several sectors.
        let root = pattern(1500, seed: 4)
        try k.setRoot(root)
        try k.append(n, pattern(100, seed: 1))
        try k.sync([n])                                 // checkpoint 3: n holds 100 bytes

        try k.append(n, pattern(300, seed: 2))
        // Budget: the track write, the first device sync, the checkpoint write; then the sync
        // that would make the checkpoint durable fails — the crash.
        dev.setBudget(3)
        #expect(kvimrError { try k.sync([n]) }?.kind == .io)
        #expect(mem.unsyncedWriteCount == 1)
        let after = mem.crashed(keepUnsynced: 1, keepSectorsOfLast: keepSectors)
        let k2 = try KVIMR(device: after)
        #expect(k2.root == root)
        #expect(try readAll(k2, n) == pattern(100, seed: 1))
        #expect(k2.stats().checkpoints == 0)
    }

    @Test func untornUnsyncedCheckpointMayWin() throws {
        let mem = MemoryTrackDevice(geometry: smallGeometry())
        try KVIMR.format(device: mem)
        let dev = CrashingDevice(mem)
        let k = try KVIMR(device: dev)
        let n = try k.create(kind: .wal, level: 0)
        try k.append(n, pattern(100, seed: 1))
        try k.sync([n])
        try k.append(n, pattern(300, seed: 2))
        dev.setBudget(3)
        #expect(kvimrError { try k.sync([n]) }?.kind == .io)
        // The whole checkpoint survived: the new map is used, and its data was synced before it.
        let k2 = try KVIMR(device: mem.crashed(keepUnsynced: 1, tearLast: false))
        #expect(try readAll(k2, n) == pattern(100, seed: 1) + pattern(300, seed: 2))
    }

    @Test func policyNames() throws {
        let dev = MemoryTrackDevice(geometry: smallGeometry())
        try KVIMR.format(device: dev)
        #expect(try KVIMR(device: dev).policyName == "two-phase")
        let unknown = kvimrError { _ = try KVIMR(device: dev, policy: "fastest") }
        #expect(unknown?.message.contains("two-phase") == true)
        #expect(unknown?.message.contains("unknown") == true)
        #expect(try KVIMR(device: dev, policy: "kvimr").policyName == "kvimr")
        let fromSuperblock = MemoryTrackDevice(geometry: smallGeometry(), policy: "three-phase")
        try KVIMR.format(device: fromSuperblock)
        #expect(try KVIMR(device: fromSuperblock).policyName == "three-phase")
        #expect(try KVIMR(device: fromSuperblock, policy: "two-phase").stats().policy == "two-phase")
    }
}

extension S2TMap {
    func filesRemoving(_ n: FileNumber) -> S2TMap {
        var m = self
        m.files[n] = nil
        return m
    }
}

@Suite struct InspectionTests {
    @Test func inspectReportsBothSlots() throws {
        let (dev, k) = try makeKVIMR()
        let n = try k.create(kind: .sstable, level: 1)
        try k.append(n, pattern(100, seed: 1))
        try k.sync([n])                                 // checkpoint 2 → slot B
        var slots = try KVIMR.inspectCheckpoints(device: dev)
        #expect(slots.map(\.sequence) == [1, 2])
        #expect(slots.map(\.isCurrent) == [false, true])
        #expect(slots[1].map?.files[n]?.size == 100)

        // Damage slot B's payload: inspection names the problem, open falls back to slot A.
        let slot = TrackMapFormat.slotBytes(metaCapacity: TrackMapFormat.slotAreaBytes(of: dev), sectorSize: 512)
        var sector = [UInt8](repeating: 0, count: 512)
        try sector.withUnsafeMutableBytes { try dev.readMeta(offset: slot, into: $0) }
        sector[70] ^= 0xFF
        try sector.withUnsafeBytes { try dev.writeMeta(offset: slot, from: $0) }
        slots = try KVIMR.inspectCheckpoints(device: dev)
        #expect(slots[1].problem?.contains("payload checksum mismatch") == true)
        #expect(slots[0].isCurrent)
        let k2 = try KVIMR(device: dev)
        #expect(k2.files().isEmpty)                     // checkpoint 1: the formatted, empty map
    }
}
