/// A device over an in-memory drive that forwards every operation it does not define itself
/// to `base` — for test devices that gate, stall, fail or snapshot some operations
/// (KVIMRTests, LSMFSTests).
package protocol ForwardingTrackDevice: TrackDevice {
    var base: MemoryTrackDevice { get }
}

extension ForwardingTrackDevice {
    package var superblock: Superblock { base.superblock }
    package var metaCapacity: Int { base.metaCapacity }
    package func readTrack(_ track: Int, sector: Int, into buffer: UnsafeMutableRawBufferPointer) throws(DeviceError) {
        try base.readTrack(track, sector: sector, into: buffer)
    }
    package func writeTrack(_ track: Int, sector: Int, from buffer: UnsafeRawBufferPointer, mode: WriteMode) throws(DeviceError) {
        try base.writeTrack(track, sector: sector, from: buffer, mode: mode)
    }
    package func trim(_ track: Int, sector: Int, count: Int) { base.trim(track, sector: sector, count: count) }
    package func readMeta(offset: Int, into buffer: UnsafeMutableRawBufferPointer) throws(DeviceError) {
        try base.readMeta(offset: offset, into: buffer)
    }
    package func writeMeta(offset: Int, from buffer: UnsafeRawBufferPointer) throws(DeviceError) {
        try base.writeMeta(offset: offset, from: buffer)
    }
    package func sync() throws(DeviceError) { try base.sync() }
    package func counters() -> DeviceCounters { base.counters() }
    package func close() throws(DeviceError) { try base.close() }
}
