import LSMCommon

/// The image's superblock: first 4 KiB of the image. Written at mkfs, read at every open.
public struct Superblock: Sendable, Equatable {
    public var formatVersion: UInt32
    public var geometry: IMRGeometry
    /// KVIMR policy chosen at mkfs ("conventional", "two-phase", "three-phase", "kvimr").
    public var policy: String
    public var uuid: [UInt8]          // 16 bytes
    public var createdAt: UInt64      // seconds since the epoch
    /// Feature flags (`IMRFormat.flagRMWJournal`).
    public var flags: UInt32 = Superblock.defaultFlags

    public init(formatVersion: UInt32 = Superblock.currentVersion, geometry: IMRGeometry,
                policy: String, uuid: [UInt8], createdAt: UInt64) {
        self.formatVersion = formatVersion; self.geometry = geometry; self.policy = policy
        self.uuid = uuid; self.createdAt = createdAt
    }
    public init(formatVersion: UInt32 = Superblock.currentVersion, geometry: IMRGeometry,
                policy: String, uuid: [UInt8], createdAt: UInt64, flags: UInt32) {
        self.init(formatVersion: formatVersion, geometry: geometry, policy: policy, uuid: uuid, createdAt: createdAt)
        self.flags = flags
    }
    /// Flags of every image this build creates.
    public static let defaultFlags: UInt32 = IMRFormat.flagRMWJournal
    /// True when the meta zone holds KVIMR's merged-RMW journal (docs/format/imr.md).
    public var hasRMWJournal: Bool { flags & IMRFormat.flagRMWJournal != 0 }
    public static let currentVersion: UInt32 = IMRFormat.currentVersion
    public static let size = IMRFormat.superblockSize

    /// Exactly `Superblock.size` bytes, checksummed.
    ///
    /// Byte layout (little-endian; offsets in `IMRFormat`):
    ///
    ///     0    [8]   magic "LSMFSIMR"
    ///     8    u32   format version (1)
    ///     12   u32   flags (bit 0: meta zone holds the merged-RMW journal)
    ///     16   u32   sector size (bytes)
    ///     20   u32   sectors per bottom track
    ///     24   u32   sectors per top track
    ///     28   u32   reserved, 0
    ///     32   u64   track count
    ///     40   u64   meta zone bytes (superblock included)
    ///     48   u64   image bytes (meta zone + every track)
    ///     56   u64   created at (seconds since the epoch)
    ///     64   [16]  uuid
    ///     80   u8    policy name length n (0...31)
    ///     81   [31]  policy name, UTF-8, n bytes then zeros
    ///     112  ...   zeros up to 4092
    ///     4092 u32   CRC32C of bytes [0, 4092)
    ///
    /// A policy longer than 31 bytes is cut at a character boundary (callers validate with
    /// `Superblock.validatePolicy` first); a uuid is padded or cut to 16 bytes.
    public func encode() -> [UInt8] {
        var b = [UInt8]()
        b.reserveCapacity(Superblock.size)
        b.append(contentsOf: IMRFormat.magic)
        b.appendLE(formatVersion)
        b.appendLE(flags)
        b.appendLE(UInt32(truncatingIfNeeded: geometry.sectorSize))
        b.appendLE(UInt32(truncatingIfNeeded: geometry.bottomSectors))
        b.appendLE(UInt32(truncatingIfNeeded: geometry.topSectors))
        b.appendLE(UInt32(0))
        b.appendLE(UInt64(truncatingIfNeeded: geometry.trackCount))
        b.appendLE(UInt64(truncatingIfNeeded: geometry.metaZoneBytes))
        b.appendLE(geometry.imageBytes)
        b.appendLE(createdAt)
        var id = Array(uuid.prefix(16))
        id.append(contentsOf: [UInt8](repeating: 0, count: 16 - id.count))
        b.append(contentsOf: id)
        let name = Superblock.truncatedPolicy(policy)
        b.append(UInt8(name.count))
        b.append(contentsOf: name)
        b.append(contentsOf: [UInt8](repeating: 0, count: IMRFormat.offChecksum - b.count))
        let crc = b.withUnsafeBytes { CRC32C.checksum($0) }
        b.appendLE(crc)
        return b
    }

    /// Throws `.invalidImage` with a one-line reason (bad magic, all zero, bad checksum, version).
    public static func decode(_ bytes: UnsafeRawBufferPointer) throws(DeviceError) -> Superblock {
        func invalid(_ why: String) -> DeviceError { DeviceError(.invalidImage, why) }
        if bytes.allSatisfy({ $0 == 0 }) {
            throw invalid("no lsmfs superblock: image is all zero")
        }
        let magicLen = IMRFormat.magic.count
        guard bytes.count >= magicLen, bytes.prefix(magicLen).elementsEqual(IMRFormat.magic) else {
            throw invalid("not an lsmfs image (bad magic)")
        }
        guard bytes.count >= size else {
            throw invalid("superblock truncated: \(bytes.count) bytes, needs \(size)")
        }
        let version = bytes.readLE(UInt32.self, at: IMRFormat.offVersion)
        guard version == currentVersion else {
            throw invalid("unsupported lsmfs image format version \(version) (this build reads version \(currentVersion))")
        }
        let stored = bytes.readLE(UInt32.self, at: IMRFormat.offChecksum)
        let actual = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: bytes[0..<IMRFormat.offChecksum]))
        guard stored == actual else {
            throw invalid("superblock checksum mismatch (stored \(hex(stored)), computed \(hex(actual)))")
        }
        let sectorSize = Int(bytes.readLE(UInt32.self, at: IMRFormat.offSectorSize))
        let bottom = Int(bytes.readLE(UInt32.self, at: IMRFormat.offBottomSectors))
        let top = Int(bytes.readLE(UInt32.self, at: IMRFormat.offTopSectors))
        let tracks = bytes.readLE(UInt64.self, at: IMRFormat.offTrackCount)
        let meta = bytes.readLE(UInt64.self, at: IMRFormat.offMetaZoneBytes)
        let imageBytes = bytes.readLE(UInt64.self, at: IMRFormat.offImageBytes)
        guard tracks <= UInt64(IMRFormat.maxTrackCount), meta <= UInt64(IMRFormat.maxMetaZoneBytes) else {
            throw invalid("superblock has an absurd geometry (\(tracks) tracks, meta zone \(meta) bytes)")
        }
        let geometry = IMRGeometry(sectorSize: sectorSize, bottomSectors: bottom, topSectors: top,
                                   trackCount: Int(tracks), metaZoneBytes: Int(meta))
        if let why = validate(geometry) { throw invalid("superblock has an absurd geometry: \(why)") }
        guard geometry.imageBytes == imageBytes else {
            throw invalid("superblock geometry disagrees with its image size (\(imageBytes) recorded, \(geometry.imageBytes) computed)")
        }
        let n = Int(bytes[IMRFormat.offPolicyLength])
        guard n <= IMRFormat.maxPolicyBytes,
              let policy = String(validating: bytes[IMRFormat.offPolicy..<(IMRFormat.offPolicy + n)], as: UTF8.self) else {
            throw invalid("superblock has an unreadable policy name")
        }
        let flags = bytes.readLE(UInt32.self, at: IMRFormat.offFlags)
        guard flags & ~IMRFormat.knownFlags == 0 else {
            throw invalid("superblock has unknown feature flags \(hex(flags)) (this build knows \(hex(IMRFormat.knownFlags)))")
        }
        let uuid = Array(bytes[IMRFormat.offUUID..<(IMRFormat.offUUID + 16)])
        let createdAt = bytes.readLE(UInt64.self, at: IMRFormat.offCreatedAt)
        return Superblock(formatVersion: version, geometry: geometry, policy: policy, uuid: uuid,
                          createdAt: createdAt, flags: flags)
    }

    public static func decode(_ bytes: [UInt8]) throws(DeviceError) -> Superblock {
        let r: Result<Superblock, DeviceError> = bytes.withUnsafeBytes { p in Result { () throws(DeviceError) in try decode(p) } }
        return try r.get()
    }

    /// nil if `geometry` is sane, else a short reason.
    public static func validate(_ g: IMRGeometry) -> String? {
        guard g.sectorSize >= IMRFormat.minSectorSize, g.sectorSize <= IMRFormat.maxSectorSize,
              g.sectorSize & (g.sectorSize - 1) == 0 else {
            return "sector size \(g.sectorSize) is not a power of two in \(IMRFormat.minSectorSize)...\(IMRFormat.maxSectorSize)"
        }
        guard g.bottomSectors >= 1, g.bottomSectors <= IMRFormat.maxSectorsPerTrack,
              g.topSectors >= 1, g.topSectors <= IMRFormat.maxSectorsPerTrack else {
            return "track sizes \(g.bottomSectors)/\(g.topSectors) sectors out of range"
        }
        guard g.trackCount >= 2, g.trackCount <= IMRFormat.maxTrackCount else {
            return "track count \(g.trackCount) out of range"
        }
        guard g.metaZoneBytes >= IMRFormat.superblockSize + g.sectorSize,
              g.metaZoneBytes <= IMRFormat.maxMetaZoneBytes,
              g.metaZoneBytes % g.sectorSize == 0, IMRFormat.superblockSize % g.sectorSize == 0 else {
            return "meta zone of \(g.metaZoneBytes) bytes is not a whole number of sectors after the superblock"
        }
        let pair = UInt64(g.bottomSectors + g.topSectors) * UInt64(g.sectorSize)
        let (total, overflow) = pair.multipliedReportingOverflow(by: UInt64(g.trackCount / 2 + 1))
        guard !overflow, total <= IMRFormat.maxImageBytes else { return "image would exceed \(IMRFormat.maxImageBytes) bytes" }
        return nil
    }

    /// nil if `policy` can be stored, else a short reason.
    public static func validatePolicy(_ policy: String) -> String? {
        if policy.isEmpty { return "policy name is empty" }
        if policy.utf8.count > IMRFormat.maxPolicyBytes {
            return "policy name '\(policy)' is longer than \(IMRFormat.maxPolicyBytes) bytes"
        }
        if policy.utf8.contains(0) { return "policy name contains a NUL byte" }
        return nil
    }

    static func truncatedPolicy(_ policy: String) -> [UInt8] {
        var out = [UInt8]()
        for ch in policy.unicodeScalars {
            let enc = Array(String(ch).utf8)
            if out.count + enc.count > IMRFormat.maxPolicyBytes { break }
            out.append(contentsOf: enc)
        }
        return out
    }
}

private func hex(_ v: UInt32) -> String {
    let s = String(v, radix: 16)
    return "0x" + String(repeating: "0", count: 8 - s.count) + s
}
