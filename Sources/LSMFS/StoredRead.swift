import Glibc
import LSMStore
import SystemPackage

/// READ of a file without buffered writes: its chunks go from the drive straight into the
/// caller's buffer (`LSMStore.scanPlacing`), so a cold sequential read copies each byte once in
/// the daemon (the value log's window → the reply) instead of three times (window → span →
/// chunk array → reply).
extension FileSystem {
    /// Reads up to `buf.count` bytes at `offset` of file `ino` from the store (short at EOF);
    /// every byte of the result is written once: chunk bytes, zeros for holes and past a
    /// chunk's length, patches laid over their chunk (docs/format/keys.md).
    func readStored(_ ino: UInt64, flags: Int32, offset: UInt64, into buf: UnsafeMutableRawBufferPointer) throws(Errno) -> Int {
        let rec = try loadInode(ino, dirty: .some(nil))
        if buf.count > 0 { touchAtime(ino, seen: rec, flags: flags) }
        guard offset < rec.size, buf.count > 0, let base = buf.baseAddress else { return 0 }
        let end = min(rec.size, offset + UInt64(buf.count))
        let cs = UInt64(chunkSize)
        let first = offset / cs, last = (end - 1) / cs
        /// Zeros bytes `[lo, hi)` of the file (clipped to the read) in `buf`.
        func zero(_ lo: UInt64, _ hi: UInt64) {
            let a = max(lo, offset), b = min(hi, end)
            if a < b { memset(base + Int(a - offset), 0, Int(b - a)) }
        }
        // Chunks below `next` have every byte of theirs in the read written (or placed: read
        // into place before the scan returns); a chunk with no key is a hole.
        var next = first
        try kv("read chunks", { () throws(LSMError) in
            try store.scanPlacing(from: Keys.chunk(ino, first), to: Keys.chunk(ino, last + 1), place: { key, length in
                guard key.count >= FSFormat.chunkKeyLength else { return .skip }
                let i = key.readBE(UInt64.self, at: 9)
                guard i >= next, i <= last else { return ChunkPatch.block(of: key) != nil ? .visit : .skip }
                zero(next * cs, i * cs)   // holes before it
                next = i + 1
                let start = i * cs
                let dataEnd = start + UInt64(min(max(length, 0), chunkSize))
                guard key.count == FSFormat.chunkKeyLength else {
                    // A patch with no chunk value before it: laid over zeros.
                    zero(start, start + cs)
                    return ChunkPatch.block(of: key) != nil ? .visit : .skip
                }
                zero(dataEnd, start + cs)   // past the chunk's length
                let lo = max(start, offset), hi = min(dataEnd, end)
                guard lo < hi else { return .skip }
                return .copy(from: Int(lo - start), into: UnsafeMutableRawBufferPointer(start: base + Int(lo - offset), count: Int(hi - lo)))
            }, visit: { key, value in
                // A patch: its chunk's bytes are in place (placed before it in key order).
                guard let b = ChunkPatch.block(of: key), ChunkPatch.isValid(block: b, size: value.count) else { return true }
                let lo = key.readBE(UInt64.self, at: 9) * cs + UInt64(b * FSFormat.patchBlockSize)
                let a = max(lo, offset), z = min(lo + UInt64(value.count), end)
                if a < z {
                    value.withUnsafeBytes { v in
                        (base + Int(a - offset)).copyMemory(from: v.baseAddress! + Int(a - lo), byteCount: Int(z - a))
                    }
                }
                return true
            })
        })
        zero(next * cs, (last + 1) * cs)   // holes after the last chunk
        return Int(end - offset)
    }
}
