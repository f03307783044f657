import IMRDisk

/// The read handler: S2TMap lookup, then track reads for bytes below the buffer, then the
/// write buffer for the rest.
extension KVIMRCore {
    func read(_ n: FileNumber, at offset: UInt64, into dst: UnsafeMutableRawBufferPointer) throws(KVIMRError) -> Int {
        try checkOpen()
        return try read(record(n), at: offset, into: dst)
    }

    /// `read` of a file whose record the caller already looked up (`KVIMR.read` needs it for
    /// the I/O category): one map lookup per read, not two.
    func read(_ rec: FileRecord, at offset: UInt64, into dst: UnsafeMutableRawBufferPointer) throws(KVIMRError) -> Int {
        try checkOpen()
        let n = rec.number
        let buf = buffers[n]
        let size = buf?.end ?? rec.size
        guard offset <= size else {
            throw KVIMRError(.outOfRange, "read of file \(n) at \(offset) past its end \(size)")
        }
        let count = Int(min(UInt64(dst.count), size - offset))
        guard count > 0 else { return 0 }
        let onTracksEnd = buf?.start ?? rec.size
        var done = 0
        if offset < onTracksEnd {
            done = Int(min(UInt64(count), onTracksEnd - offset))
            try readStored(rec, at: offset, into: UnsafeMutableRawBufferPointer(rebasing: dst[0..<done]))
        }
        if done < count, let buf {
            buf.copy(from: offset + UInt64(done), into: UnsafeMutableRawBufferPointer(rebasing: dst[done..<count]))
        }
        return count
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
        guard offset + UInt64(dst.count) <= rec.size else {
            throw KVIMRError(.corrupt, "file \(rec.number): read of \(dst.count) at \(offset) passes its stored size \(rec.size)")
        }
        let ss = UInt64(geometry.sectorSize)
        let image = device as? ImageTrackDevice
        var extentStart: UInt64 = 0
        var pos = offset
        var out = 0
        for e in rec.extents where out < dst.count {
            let extentEnd = extentStart + UInt64(e.sectorCount) * ss
            defer { extentStart = extentEnd }
            guard pos < extentEnd else { continue }
            let inExtent = pos - extentStart
            let want = Int(min(UInt64(dst.count - out), extentEnd - pos))
            let firstSector = Int(inExtent / ss)
            let endSector = Int((inExtent + UInt64(want) + ss - 1) / ss)
            let target = UnsafeMutableRawBufferPointer(rebasing: dst[out..<(out + want)])
            if inExtent % ss == 0 && want % Int(ss) == 0 {
                try readTrack(e.track, sector: e.firstSector + firstSector, into: target)
            } else if let image {
                // Unaligned on an image file: read exactly the bytes wanted, no bounce buffer.
                do {
                    try image.readTrackBytes(e.track, sector: e.firstSector + firstSector, skip: Int(inExtent % ss), into: target)
                } catch {
                    throw KVIMRError(.io, "reading track \(e.track) at sector \(e.firstSector + firstSector): \(error.message)")
                }
            } else {
                var scratch = [UInt8](unsafeUninitializedCapacity: (endSector - firstSector) * Int(ss)) { _, n in
                    n = (endSector - firstSector) * Int(ss)   // filled by the track read below
                }
                var failure: KVIMRError?
                scratch.withUnsafeMutableBytes { p in
                    do throws(KVIMRError) { try readTrack(e.track, sector: e.firstSector + firstSector, into: p) } catch { failure = error }
                }
                if let failure { throw failure }
                let skip = Int(inExtent % ss)
                scratch.withUnsafeBytes { src in target.copyMemory(from: UnsafeRawBufferPointer(rebasing: src[skip..<(skip + want)])) }
            }
            out += want
            pos += UInt64(want)
        }
        guard out == dst.count else {
            throw KVIMRError(.corrupt, "file \(rec.number): extents end before its size \(rec.size)")
        }
    }

    private func readTrack(_ track: Int, sector: Int, into p: UnsafeMutableRawBufferPointer) throws(KVIMRError) {
        do { try device.readTrack(track, sector: sector, into: p) } catch {
            throw KVIMRError(.io, "reading track \(track) at sector \(sector): \(error.message)")
        }
    }
}
