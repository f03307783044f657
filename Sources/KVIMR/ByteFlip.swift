import IMRDisk

extension MemoryTrackDevice {
    /// For fault tests: this closed drive reopened with byte `offset` of KVIMR file `file`
    /// XORed with `mask` on the drive itself, under KVIMR (found through the file's extents in
    /// the durable track map). nil: the offset lies outside the file's stored bytes.
    package func flippingByte(ofFile file: FileNumber, at offset: UInt64, mask: UInt8) throws -> MemoryTrackDevice? {
        let dev = reopened()
        let k = try KVIMR(device: reopened(), readOnly: true)
        let extents = k.extents(file)
        try k.close()
        guard let extents else { return nil }
        let ss = UInt64(dev.geometry.sectorSize)
        var start: UInt64 = 0
        for e in extents {
            let bytes = UInt64(e.sectorCount) * ss
            if offset < start + bytes {
                let sector = e.firstSector + Int((offset - start) / ss)
                var buf = [UInt8](repeating: 0, count: Int(ss))
                try buf.withUnsafeMutableBytes { try dev.readTrack(e.track, sector: sector, into: $0) }
                buf[Int((offset - start) % ss)] ^= mask
                try buf.withUnsafeBytes { try dev.writeTrack(e.track, sector: sector, from: $0, mode: .deviceManaged) }
                try dev.sync()
                return dev
            }
            start += bytes
        }
        return nil
    }
}
