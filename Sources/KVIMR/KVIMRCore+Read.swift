import IMRDisk

/// One contiguous run of a read's stored bytes: `count` bytes starting `skip` bytes into
/// sector `sector` of `track`, for bytes `[into, into + count)` of the caller's buffer.
struct StoredPiece: Sendable {
    var track: Int
    var sector: Int
    var skip: Int
    var count: Int
    var into: Int
}

/// A read planned under the core lock (`KVIMRCore.planRead`) whose track reads run after the
/// lock is let go (`KVIMR.read`): the buffered part is already copied, `pieces` remain.
struct ReadPlan: Sendable {
    /// Bytes the read returns (short only at EOF).
    var count: Int
    var pieces: [StoredPiece]
    /// What makes the pieces' bytes trustworthy once read: the file still exists (its tracks
    /// were not freed, so not reused either: a file's stored bytes never change while it lives)
    /// and no merged RMW began (it damages top tracks between its bottom write and the tops'
    /// rewrite, all under the core lock).
    var journalSequence: UInt64
    var category: String
    /// The core's device (`JournalOverlayDevice` on a read-only open with a journal: not
    /// always `KVIMR.device`).
    var device: any TrackDevice
    var record: FileRecord
}

/// The read handler: S2TMap lookup, then track reads for bytes below the buffer, then the
/// write buffer for the rest.
extension KVIMRCore {
    /// A whole read under the core lock, of a file whose record the caller already looked up
    /// (`KVIMR.read` needs it for the I/O category): one map lookup per read, not two.
    func read(_ rec: FileRecord, at offset: UInt64, into dst: UnsafeMutableRawBufferPointer) throws(KVIMRError) -> Int {
        let plan = try planRead(rec, at: offset, into: dst)
        try Self.readPieces(plan.pieces, from: device, into: dst)
        return plan.count
    }

    /// The first half of a read: checks the range, copies the bytes still in the write buffer
    /// into `dst` now, and lists the track pieces for the rest (`readPieces`, which may run
    /// without the core lock if `ReadPlan`'s conditions are checked after it).
    func planRead(_ rec: FileRecord, at offset: UInt64, into dst: UnsafeMutableRawBufferPointer) throws(KVIMRError) -> ReadPlan {
        try checkOpen()
        let n = rec.number
        let buf = buffers[n]
        let size = buf?.end ?? rec.size
        guard offset <= size else {
            throw KVIMRError(.outOfRange, "read of file \(n) at \(offset) past its end \(size)")
        }
        let count = Int(min(UInt64(dst.count), size - offset))
        var plan = ReadPlan(count: count, pieces: [], journalSequence: journalSequence,
                            category: IOBreakdown.category("read", kind: rec.kind, level: rec.level),
                            device: device, record: rec)
        guard count > 0 else { return plan }
        let onTracksEnd = buf?.start ?? rec.size
        var done = 0
        if offset < onTracksEnd {
            done = Int(min(UInt64(count), onTracksEnd - offset))
            plan.pieces = try storedPieces(rec, at: offset, count: done)
        }
        if done < count, let buf {
            buf.copy(from: offset + UInt64(done), into: UnsafeMutableRawBufferPointer(rebasing: dst[done..<count]))
        }
        return plan
    }

    func readStored(_ rec: FileRecord, from offset: UInt64, count: Int) throws(KVIMRError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        var failure: KVIMRError?
        out.withUnsafeMutableBytes { p in
            do throws(KVIMRError) { try readStored(rec, at: offset, into: p) } catch { failure = error }
        }
        if let failure { throw failure }
        return out
    }

    /// Reads bytes `[offset, offset + dst.count)` of the file from its tracks (all must lie
    /// below `rec.size`).
    func readStored(_ rec: FileRecord, at offset: UInt64, into dst: UnsafeMutableRawBufferPointer) throws(KVIMRError) {
        try Self.readPieces(storedPieces(rec, at: offset, count: dst.count), from: device, into: dst)
    }

    /// Where bytes `[offset, offset + count)` of the file lie on its tracks (all must lie below
    /// `rec.size`), one piece per extent touched.
    func storedPieces(_ rec: FileRecord, at offset: UInt64, count: Int) throws(KVIMRError) -> [StoredPiece] {
        guard offset + UInt64(count) <= rec.size else {
            throw KVIMRError(.corrupt, "file \(rec.number): read of \(count) at \(offset) passes its stored size \(rec.size)")
        }
        let ss = UInt64(geometry.sectorSize)
        var pieces: [StoredPiece] = []
        var extentStart: UInt64 = 0
        var pos = offset
        var out = 0
        for e in rec.extents where out < count {
            let extentEnd = extentStart + UInt64(e.sectorCount) * ss
            defer { extentStart = extentEnd }
            guard pos < extentEnd else { continue }
            let inExtent = pos - extentStart
            let want = Int(min(UInt64(count - out), extentEnd - pos))
            pieces.append(StoredPiece(track: e.track, sector: e.firstSector + Int(inExtent / ss),
                                      skip: Int(inExtent % ss), count: want, into: out))
            out += want
            pos += UInt64(want)
        }
        guard out == count else {
            throw KVIMRError(.corrupt, "file \(rec.number): extents end before its size \(rec.size)")
        }
        return pieces
    }

    /// Reads each piece into its place in `dst`. Touches no core state (safe without the lock).
    /// `streaming`: part of an in-order read KVIMR prefetches itself (`ReadAhead`): on an image,
    /// read without the kernel's read-ahead.
    static func readPieces(_ pieces: [StoredPiece], from device: any TrackDevice,
                           into dst: UnsafeMutableRawBufferPointer, streaming: Bool = false) throws(KVIMRError) {
        let ss = device.geometry.sectorSize
        let image = device as? ImageTrackDevice
        for p in pieces {
            let target = UnsafeMutableRawBufferPointer(rebasing: dst[p.into..<(p.into + p.count)])
            do throws(DeviceError) {
                if let image {
                    // On an image file: exactly the bytes wanted, no bounce buffer if unaligned.
                    try image.readTrackBytes(p.track, sector: p.sector, skip: p.skip, into: target, streaming: streaming)
                } else if p.skip == 0 && p.count % ss == 0 {
                    try device.readTrack(p.track, sector: p.sector, into: target)
                } else {
                    let sectors = (p.skip + p.count + ss - 1) / ss
                    var scratch = [UInt8](unsafeUninitializedCapacity: sectors * ss) { _, n in
                        n = sectors * ss   // filled by the track read below
                    }
                    var failure: DeviceError?
                    scratch.withUnsafeMutableBytes { b in
                        do throws(DeviceError) { try device.readTrack(p.track, sector: p.sector, into: b) } catch { failure = error }
                    }
                    if let failure { throw failure }
                    scratch.withUnsafeBytes { src in
                        target.copyMemory(from: UnsafeRawBufferPointer(rebasing: src[p.skip..<(p.skip + p.count)]))
                    }
                }
            } catch {
                throw KVIMRError(.io, "reading track \(p.track) at sector \(p.sector): \(error.message)")
            }
        }
    }

    /// Whether bytes read by `plan` without the core lock can be trusted (see `ReadPlan`); if so,
    /// charges the drive time they took.
    mutating func confirmUnlockedRead(_ plan: ReadPlan, bytes: Int, before: DeviceCounters, after: DeviceCounters) -> Bool {
        guard !closed, journalSequence == plan.journalSequence, map.files[plan.record.number] != nil else { return false }
        io.charge(plan.category, bytes: bytes, before: before, after: after)
        return true
    }
}
