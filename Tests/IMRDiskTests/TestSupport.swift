import IMRDisk

/// `count` sectors of a recognisable pattern derived from `seed`.
func pattern(_ seed: Int, sectors count: Int, sectorSize: Int = 4096) -> [UInt8] {
    var out = [UInt8](repeating: 0, count: count * sectorSize)
    var x = UInt32(truncatingIfNeeded: seed &* 2_654_435_761 &+ 1)
    for i in 0..<out.count {
        x = x &* 1_103_515_245 &+ 12345
        out[i] = UInt8(truncatingIfNeeded: x >> 16)
    }
    return out
}

func write(_ d: TrackDevice, _ track: Int, _ sector: Int, _ bytes: [UInt8], _ mode: WriteMode = .deviceManaged) throws(DeviceError) {
    try bytes.withUnsafeBytes { (p) -> Result<Void, DeviceError> in
        Result { () throws(DeviceError) in try d.writeTrack(track, sector: sector, from: p, mode: mode) }
    }.get()
}

func read(_ d: TrackDevice, _ track: Int, _ sector: Int, sectors count: Int) throws(DeviceError) -> [UInt8] {
    var buf = [UInt8](repeating: 0, count: count * d.geometry.sectorSize)
    try buf.withUnsafeMutableBytes { (p) -> Result<Void, DeviceError> in
        Result { () throws(DeviceError) in try d.readTrack(track, sector: sector, into: p) }
    }.get()
    return buf
}

func writeMeta(_ d: TrackDevice, _ offset: Int, _ bytes: [UInt8]) throws(DeviceError) {
    try bytes.withUnsafeBytes { (p) -> Result<Void, DeviceError> in
        Result { () throws(DeviceError) in try d.writeMeta(offset: offset, from: p) }
    }.get()
}

func readMeta(_ d: TrackDevice, _ offset: Int, bytes count: Int) throws(DeviceError) -> [UInt8] {
    var buf = [UInt8](repeating: 0, count: count)
    try buf.withUnsafeMutableBytes { (p) -> Result<Void, DeviceError> in
        Result { () throws(DeviceError) in try d.readMeta(offset: offset, into: p) }
    }.get()
    return buf
}

/// The error a throwing call raised, or nil.
func deviceError(_ body: () throws(DeviceError) -> Void) -> DeviceError? {
    do { try body(); return nil } catch { return error }
}

/// Byte equality without Swift Testing dumping megabytes of operands on failure.
func same(_ a: [UInt8], _ b: [UInt8]) -> Bool { a == b }
func same(_ a: ArraySlice<UInt8>, _ b: ArraySlice<UInt8>) -> Bool { a.elementsEqual(b) }
func allBytes(_ a: [UInt8], _ v: UInt8) -> Bool { a.allSatisfy { $0 == v } }
func allBytes(_ a: ArraySlice<UInt8>, _ v: UInt8) -> Bool { a.allSatisfy { $0 == v } }
