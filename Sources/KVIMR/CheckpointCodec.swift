import IMRDisk
import LSMCommon

/// Encodes and decodes one track-map checkpoint slot (docs/format/trackmap.md).
public enum CheckpointCodec {
    /// A decoded slot header.
    public struct Header: Sendable, Equatable {
        public var sequence: UInt64
        public var payloadLength: Int
        public var payloadCRC: UInt32   // unmasked CRC32C of the payload
        public var uuid: [UInt8]
    }

    /// Encodes the payload of a checkpoint.
    ///
    /// Byte layout (integers are LEB128 varints unless a width is given; fixed widths are
    /// little-endian):
    ///
    ///     payload   := nextFileNumber:varint rootLength:varint root:bytes[rootLength]
    ///                  fileCount:varint file*fileCount
    ///     file      := number:varint kind:u8 level:varint flags:u8 size:varint
    ///                  extentCount:varint extent*extentCount
    ///     extent    := track:varint firstSector:varint sectorCount:varint
    ///
    /// Files appear in ascending number order; `flags` bit 0 = sealed, other bits zero.
    public static func encodePayload(_ map: S2TMap) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(64 + map.root.count + map.files.count * 24)
        out.appendVarint(map.nextFileNumber)
        out.appendVarint(UInt64(map.root.count))
        out.append(contentsOf: map.root)
        out.appendVarint(UInt64(map.files.count))
        for rec in map.sortedFiles {
            out.appendVarint(rec.number)
            out.append(rec.kind.rawValue)
            out.appendVarint(UInt64(rec.level))
            out.append(rec.sealed ? TrackMapFormat.flagSealed : 0)
            out.appendVarint(rec.size)
            out.appendVarint(UInt64(rec.extents.count))
            for e in rec.extents {
                out.appendVarint(UInt64(e.track))
                out.appendVarint(UInt64(e.firstSector))
                out.appendVarint(UInt64(e.sectorCount))
            }
        }
        return out
    }

    /// Decodes a payload and checks it against `geometry`; `.corrupt` with a reason otherwise.
    public static func decodePayload(_ bytes: UnsafeRawBufferPointer, geometry: IMRGeometry) throws(KVIMRError) -> S2TMap {
        var at = 0
        func varint(_ what: String) throws(KVIMRError) -> UInt64 {
            guard let v = bytes.readVarint(at: &at) else {
                throw KVIMRError(.corrupt, "track map: truncated \(what) at payload byte \(at)")
            }
            return v
        }
        func int(_ what: String, max: UInt64) throws(KVIMRError) -> Int {
            let v = try varint(what)
            guard v <= max else { throw KVIMRError(.corrupt, "track map: \(what) \(v) out of range") }
            return Int(v)
        }
        func byte(_ what: String) throws(KVIMRError) -> UInt8 {
            guard at < bytes.count else { throw KVIMRError(.corrupt, "track map: truncated \(what)") }
            defer { at += 1 }
            return bytes[at]
        }
        var map = S2TMap()
        map.nextFileNumber = try varint("next file number")
        let rootLength = try int("root length", max: UInt64(TrackMapFormat.maxRootBytes))
        guard bytes.count - at >= rootLength else { throw KVIMRError(.corrupt, "track map: truncated root record") }
        map.root = Array(bytes[at..<(at + rootLength)])
        at += rootLength
        let fileCount = try int("file count", max: UInt64(bytes.count))
        let maxTrack = UInt64(geometry.trackCount)
        for _ in 0..<fileCount {
            let number = try varint("file number")
            let rawKind = try byte("file kind")
            guard let kind = FileKind(rawValue: rawKind) else {
                throw KVIMRError(.corrupt, "track map: file \(number) has unknown kind \(rawKind)")
            }
            let level = try int("level", max: UInt64(TrackMapFormat.maxLevel))
            let flags = try byte("flags")
            guard flags & ~TrackMapFormat.flagSealed == 0 else {
                throw KVIMRError(.corrupt, "track map: file \(number) has unknown flags \(flags)")
            }
            let size = try varint("file size")
            let extentCount = try int("extent count", max: maxTrack)
            var extents: [TrackExtent] = []
            extents.reserveCapacity(extentCount)
            for _ in 0..<extentCount {
                let track = try int("track", max: maxTrack)
                let first = try int("first sector", max: UInt64(Int32.max))
                let count = try int("sector count", max: UInt64(Int32.max))
                extents.append(TrackExtent(track: track, firstSector: first, sectorCount: count))
            }
            guard map.files[number] == nil else {
                throw KVIMRError(.corrupt, "track map: file \(number) appears twice")
            }
            map.files[number] = FileRecord(number: number, kind: kind, level: level,
                                           sealed: flags & TrackMapFormat.flagSealed != 0,
                                           size: size, extents: extents)
        }
        guard at == bytes.count else {
            throw KVIMRError(.corrupt, "track map: \(bytes.count - at) trailing bytes after the last file")
        }
        if let why = map.violation(on: geometry) { throw KVIMRError(.corrupt, "track map: \(why)") }
        return map
    }

    /// Encodes a whole slot image: header + payload, zero-padded to whole sectors.
    ///
    /// Header byte layout (64 bytes, little-endian):
    ///
    ///     0   magic          u64   "KVIMRTM1"
    ///     8   version        u32   TrackMapFormat.version
    ///     12  flags          u32   0
    ///     16  sequence       u64   1 for the map `format` writes, +1 per checkpoint
    ///     24  payloadLength  u32   bytes of payload after the header
    ///     28  payloadCRC     u32   masked CRC32C of the payload
    ///     32  uuid           16    the image UUID from the superblock
    ///     48  headerCRC      u32   masked CRC32C of bytes [0, 48)
    ///     52  reserved       12    zero
    public static func encodeSlot(payload: [UInt8], sequence: UInt64, uuid: [UInt8], sectorSize: Int) -> [UInt8] {
        var out: [UInt8] = []
        let total = TrackMapFormat.headerSize + payload.count
        let padded = (total + sectorSize - 1) / sectorSize * sectorSize
        out.reserveCapacity(padded)
        out.appendLE(TrackMapFormat.magic)
        out.appendLE(TrackMapFormat.version)
        out.appendLE(UInt32(0))
        out.appendLE(sequence)
        out.appendLE(UInt32(payload.count))
        out.appendLE(CRC32C.mask(CRC32C.checksum(payload)))
        out.append(contentsOf: normalizedUUID(uuid))
        out.appendLE(CRC32C.mask(CRC32C.checksum(out)))
        out.append(contentsOf: repeatElement(0, count: TrackMapFormat.headerSize - out.count))
        out.append(contentsOf: payload)
        out.append(contentsOf: repeatElement(0, count: padded - out.count))
        return out
    }

    /// Decodes a slot header; throws `.corrupt` with the reason it is not a valid header.
    /// A header of all zero bytes reports "empty".
    public static func decodeHeader(_ bytes: UnsafeRawBufferPointer) throws(KVIMRError) -> Header {
        guard bytes.count >= TrackMapFormat.headerSize else { throw KVIMRError(.corrupt, "short header") }
        if bytes[0..<TrackMapFormat.headerSize].allSatisfy({ $0 == 0 }) { throw KVIMRError(.corrupt, "empty") }
        guard bytes.readLE(UInt64.self, at: 0) == TrackMapFormat.magic else { throw KVIMRError(.corrupt, "bad magic") }
        let stored = CRC32C.unmask(bytes.readLE(UInt32.self, at: TrackMapFormat.headerCRCOffset))
        let actual = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: bytes[0..<TrackMapFormat.headerCRCOffset]))
        guard stored == actual else { throw KVIMRError(.corrupt, "header checksum mismatch") }
        let version = bytes.readLE(UInt32.self, at: 8)
        guard version == TrackMapFormat.version else {
            throw KVIMRError(.corrupt, "unsupported version \(version) (this build reads \(TrackMapFormat.version))")
        }
        return Header(sequence: bytes.readLE(UInt64.self, at: 16),
                      payloadLength: Int(bytes.readLE(UInt32.self, at: 24)),
                      payloadCRC: CRC32C.unmask(bytes.readLE(UInt32.self, at: 28)),
                      uuid: Array(bytes[32..<48]))
    }

    static func normalizedUUID(_ uuid: [UInt8]) -> [UInt8] {
        let n = TrackMapFormat.uuidSize
        return uuid.count >= n ? Array(uuid[0..<n]) : uuid + [UInt8](repeating: 0, count: n - uuid.count)
    }
}
