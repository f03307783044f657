import LSMCommon
import IMRDisk
import KVIMR
import LSMStore
import Testing

/// A drive small enough to be cheap and big enough for many small tables:
/// 4 KiB sectors, 64 KiB bottom / 48 KiB top tracks.
func storeGeometry(tracks: Int = 400) -> IMRGeometry {
    IMRGeometry(sectorSize: 4096, bottomSectors: 16, topSectors: 12, trackCount: tracks, metaZoneBytes: 1 << 20)
}

/// Options that force frequent flushes and compactions.
func smallOptions() -> LSMOptions {
    var o = LSMOptions()
    o.memtableBytes = 16 << 10
    o.blockSize = 1024
    o.targetFileBytes = 24 << 10
    o.l0CompactionTrigger = 3
    o.baseLevelBytes = 64 << 10
    o.levelSizeMultiplier = 4
    o.maxLevels = 5
    o.blockCacheBytes = 256 << 10
    return o
}

func freshDevice(tracks: Int = 400) throws -> MemoryTrackDevice {
    let dev = MemoryTrackDevice(geometry: storeGeometry(tracks: tracks))
    try KVIMR.format(device: dev)
    return dev
}

func openStore(_ dev: MemoryTrackDevice, _ o: LSMOptions = smallOptions(), readOnly: Bool = false) throws -> LSMStore {
    try LSMStore(kvimr: try KVIMR(device: dev, readOnly: readOnly), options: o, readOnly: readOnly)
}

struct RNG {
    var g: SplitMix64
    init(seed: UInt64) { g = SplitMix64(seed: seed &* 0x2545_F491_4F6C_DD1D &+ 1) }
    mutating func next() -> UInt64 { g.next() }
    mutating func int(_ r: ClosedRange<Int>) -> Int { r.lowerBound + Int(next() % UInt64(r.count)) }
    mutating func bool(_ percent: Int = 50) -> Bool { int(0...99) < percent }
    mutating func bytes(_ n: Int) -> [UInt8] { (0..<n).map { _ in UInt8(truncatingIfNeeded: next()) } }
}

func key(_ i: Int) -> [UInt8] { Array("key\(String(format6(i)))".utf8) }
func format6(_ i: Int) -> String { let s = String(i); return String(repeating: "0", count: max(0, 6 - s.count)) + s }

/// A value that names its key and version, so a reader can check it without a model.
func value(_ i: Int, version: Int, size: Int) -> [UInt8] {
    var v = Array("v\(i).\(version):".utf8)
    while v.count < size { v.append(UInt8(truncatingIfNeeded: i &* 31 &+ version &* 7 &+ v.count)) }
    return v
}

func lsmError(_ body: () throws -> Void) -> LSMError? {
    do { try body() } catch let e as LSMError { return e } catch { return nil }
    return nil
}

/// Every live pair of the store, in order.
func dump(_ s: LSMStore, from: [UInt8] = [], to: [UInt8]? = nil) throws -> [([UInt8], [UInt8])] {
    var out: [([UInt8], [UInt8])] = []
    try s.scan(from: from, to: to) { k, v in out.append((k, v)); return true }
    return out
}

/// The model: a dictionary, compared sorted.
func sortedModel(_ m: [[UInt8]: [UInt8]], from: [UInt8] = [], to: [UInt8]? = nil) -> [([UInt8], [UInt8])] {
    m.filter { lexLess($0.key, from) == false && (to == nil || lexLess($0.key, to!)) }
        .sorted { lexLess($0.key, $1.key) }.map { ($0.key, $0.value) }
}

func lexLess(_ a: [UInt8], _ b: [UInt8]) -> Bool { a.lexicographicallyPrecedes(b) }

func same(_ a: [([UInt8], [UInt8])], _ b: [([UInt8], [UInt8])]) -> Bool {
    a.count == b.count && zip(a, b).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
}

func dump(_ s: LSMSnapshot, from: [UInt8] = [], to: [UInt8]? = nil) throws -> [([UInt8], [UInt8])] {
    var out: [([UInt8], [UInt8])] = []
    try s.scan(from: from, to: to) { k, v in out.append((k, v)); return true }
    return out
}
