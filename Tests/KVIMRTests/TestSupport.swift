import LSMCommon
import IMRDisk
import KVIMR
import Synchronization

/// Small geometries keep the in-memory drive cheap: 512-byte sectors, tracks of a few KiB.
func smallGeometry(tracks: Int = 64, bottom: Int = 16, top: Int = 12, metaBytes: Int = 4096 + 64 * 1024) -> IMRGeometry {
    IMRGeometry(sectorSize: 512, bottomSectors: bottom, topSectors: top, trackCount: tracks, metaZoneBytes: metaBytes)
}

/// A formatted in-memory drive and a KVIMR open on it.
func makeKVIMR(_ g: IMRGeometry = smallGeometry(), policy: String = "two-phase") throws -> (MemoryTrackDevice, KVIMR) {
    let dev = MemoryTrackDevice(geometry: g, policy: policy)
    try KVIMR.format(device: dev)
    return (dev, try KVIMR(device: dev))
}

/// kvimr that always merges its RMW (journaled), whatever it costs: the merged-RMW and crash
/// tests need the journal path even for a single bottom write.
let mergingKVIMR = KVIMRPolicy(mergeOnlyWhenCheaper: false)

/// A formatted in-memory drive and a KVIMR open on it with `mergingKVIMR`.
func makeMergingKVIMR(_ g: IMRGeometry) throws -> (MemoryTrackDevice, KVIMR) {
    let dev = MemoryTrackDevice(geometry: g, policy: "kvimr")
    try KVIMR.format(device: dev)
    return (dev, try KVIMR(device: dev, allocationPolicy: mergingKVIMR))
}

/// The merged-RMW crash/fault set-up: a formatted in-memory kvimr drive seen through `wrap` (a
/// crashing or faulty device), a KVIMR with `mergingKVIMR` on it, `MergedRMWTests.scene` built
/// (`others`: the files left and their bytes) and an empty L2 sstable `w` made durable — its
/// first bottom write lands on B2 under valid tops and merges.
func mergedRMWScene<D: TrackDevice>(_ g: IMRGeometry, wrap: (MemoryTrackDevice) -> D) throws
    -> (mem: MemoryTrackDevice, dev: D, k: KVIMR, others: [FileNumber: [UInt8]], w: FileNumber) {
    let mem = MemoryTrackDevice(geometry: g, policy: "kvimr")
    try KVIMR.format(device: mem)
    let dev = wrap(mem)
    let k = try KVIMR(device: dev, allocationPolicy: mergingKVIMR)
    let others = try MergedRMWTests().scene(k, g)
    let w = try k.create(kind: .sstable, level: 2)
    try k.syncAll()
    return (mem, dev, k, others, w)
}

/// Deterministic bytes for offset `offset` on: a test can check content without a model copy.
func pattern(_ count: Int, seed: UInt64, from offset: Int = 0) -> [UInt8] {
    (0..<count).map { i in
        let x = (UInt64(offset + i) &* 0x9E37_79B9_7F4A_7C15) ^ (seed &* 0xBF58_476D_1CE4_E5B9)
        return UInt8(truncatingIfNeeded: x >> 29)
    }
}

func readAll(_ k: KVIMR, _ n: FileNumber) throws -> [UInt8] {
    let size = Int(k.size(n) ?? 0)
    return try readRange(k, n, at: 0, count: size)
}

func readRange(_ k: KVIMR, _ n: FileNumber, at offset: Int, count: Int) throws -> [UInt8] {
    var out = [UInt8](repeating: 0xEE, count: count)
    var failure: KVIMRError?
    var got = 0
    out.withUnsafeMutableBytes { p in
        do throws(KVIMRError) { got = try k.read(n, at: UInt64(offset), into: p) } catch { failure = error }
    }
    if let failure { throw failure }
    return Array(out[0..<got])
}

/// Every track belongs to at most one file.
func tracksAreExclusive(_ k: KVIMR) -> Bool {
    var seen = Set<Int>()
    for f in k.files() {
        for e in k.extents(f.number) ?? [] where !seen.insert(e.track).inserted { return false }
    }
    return true
}

/// The KVIMRError `body` throws, if any.
func kvimrError(_ body: () throws -> Void) -> KVIMRError? {
    do { try body() } catch let e as KVIMRError { return e } catch { return nil }
    return nil
}

struct TestRNG {
    var g: SplitMix64
    init(seed: UInt64) { g = SplitMix64(seed: seed &+ 0x1234_5678) }
    mutating func next() -> UInt64 { g.next() }
    mutating func int(_ range: ClosedRange<Int>) -> Int {
        range.lowerBound + Int(next() % UInt64(range.upperBound - range.lowerBound + 1))
    }
    mutating func bool(_ percent: Int = 50) -> Bool { int(0...99) < percent }
}

/// Forwards to an inner device until its budget of mutating operations (track/meta writes,
/// syncs) is spent; from then on every operation fails — the moment of a crash. Lets a test
/// crash *inside* a KVIMR sync (e.g. after the checkpoint write, before the device sync).
final class CrashingDevice: TrackDevice, @unchecked Sendable {
    let inner: MemoryTrackDevice
    private let budget: Mutex<Int>

    init(_ inner: MemoryTrackDevice, budget: Int = .max) {
        self.inner = inner
        self.budget = Mutex(budget)
    }

    func setBudget(_ n: Int) { budget.withLock { $0 = n } }
    var dead: Bool { budget.withLock { $0 <= 0 } }

    private func spend() throws(DeviceError) {
        let ok = budget.withLock { b -> Bool in
            guard b > 0 else { return false }
            b -= 1
            return true
        }
        if !ok { throw DeviceError(.injected, "injected crash") }
    }

    var superblock: Superblock { inner.superblock }
    var metaCapacity: Int { inner.metaCapacity }
    func readTrack(_ track: Int, sector: Int, into buffer: UnsafeMutableRawBufferPointer) throws(DeviceError) {
        if dead { throw DeviceError(.injected, "injected crash") }
        try inner.readTrack(track, sector: sector, into: buffer)
    }
    func writeTrack(_ track: Int, sector: Int, from buffer: UnsafeRawBufferPointer, mode: WriteMode) throws(DeviceError) {
        try spend()
        try inner.writeTrack(track, sector: sector, from: buffer, mode: mode)
    }
    func trim(_ track: Int, sector: Int, count: Int) {
        if !dead { inner.trim(track, sector: sector, count: count) }
    }
    func readMeta(offset: Int, into buffer: UnsafeMutableRawBufferPointer) throws(DeviceError) {
        if dead { throw DeviceError(.injected, "injected crash") }
        try inner.readMeta(offset: offset, into: buffer)
    }
    func writeMeta(offset: Int, from buffer: UnsafeRawBufferPointer) throws(DeviceError) {
        try spend()
        try inner.writeMeta(offset: offset, from: buffer)
    }
    func sync() throws(DeviceError) {
        try spend()
        try inner.sync()
    }
    func counters() -> DeviceCounters { inner.counters() }
    func close() throws(DeviceError) { try inner.close() }
}
