import Glibc
import KVIMR
import LSMCommon

/// Reading values back from the value log: point reads verify the record's checksum and key;
/// batches are read in (segment, offset) order, neighbouring records with one KVIMR read.
extension Engine {
    /// The value `p` points to, checked: the record's lengths match the pointer, its checksum
    /// holds and its key is `key`. Any mismatch is `.corrupt` (counted, logged), never bytes.
    func readValue(_ p: ValuePointer, key: [UInt8]) throws(LSMError) -> [UInt8] {
        var rec = try readSpan(p.segment, at: p.offset, count: Int(p.length))
        let h = try checkRecord(rec, p, key: key)
        rec.removeSubrange(0..<h.valueRange.lowerBound) // in place: no second buffer
        return rec
    }

    /// The value an entry of `kind` with tree value `stored` stands for (`stored` itself for a
    /// put; the record's value for a value pointer). `v` must list the pointer's segment.
    func materialize(_ kind: UInt8, _ stored: [UInt8], key: [UInt8], in v: View) throws(LSMError) -> [UInt8] {
        guard kind == ValueKind.valuePointer.rawValue else { return stored }
        let p = try pointer(stored, key: key, in: v)
        return try readValue(p, key: key)
    }

    /// Decodes a tree value into a pointer into a segment `v` lists.
    func pointer(_ stored: [UInt8], key: [UInt8], in v: View) throws(LSMError) -> ValuePointer {
        guard let p = ValuePointer.decode(stored) else {
            throw damaged(nil, key: key, "malformed value pointer (\(stored.count) bytes)")
        }
        guard v.version.segments[p.segment] != nil else {
            throw damaged(p, key: key, "pointer into segment \(p.segment), which the store does not list")
        }
        return p
    }

    /// Fills `values[i]` for every `pointers[i]` (nil entries are left alone), reading in
    /// (segment, offset) order; records at most `gap` bytes apart are read with one call.
    func readValues(_ pointers: [(ValuePointer, key: [UInt8])?], into values: inout [[UInt8]]) throws(LSMError) {
        var order: [Int] = pointers.indices.filter { pointers[$0] != nil }
        guard !order.isEmpty else { return }
        order.sort { pointers[$0]!.0 < pointers[$1]!.0 }
        var i = 0
        while i < order.count {
            let first = pointers[order[i]]!.0
            var j = i + 1, end = first.end
            while j < order.count {
                let p = pointers[order[j]]!.0
                guard p.segment == first.segment, p.offset >= first.offset, p.offset <= end + VLogReadPlan.maxGap,
                      max(end, p.end) - first.offset <= VLogReadPlan.maxSpan else { break }
                end = max(end, p.end)
                j += 1
            }
            if j == i + 1 {
                let (p, key) = pointers[order[i]]!
                values[order[i]] = try readValue(p, key: key)
            } else {
                let span = try readSpan(first.segment, at: first.offset, count: Int(end - first.offset))
                for x in order[i..<j] {
                    let (p, key) = pointers[x]!
                    let from = Int(p.offset - first.offset)
                    // Checked in place in the span; only the value is copied out.
                    let r = span.withUnsafeBytes { raw -> Result<[UInt8], VLogFormat.Damage> in
                        let rec = UnsafeRawBufferPointer(rebasing: raw[from..<(from + Int(p.length))])
                        return VLogFormat.verify(rec, expectedKey: key).map { Array(rec[$0.valueRange]) }
                    }
                    switch r {
                    case .success(let v): values[x] = v
                    case .failure(let d): throw damaged(p, key: key, VLogReadPlan.describe(d))
                    }
                }
            }
            i = j
        }
    }

    /// Reads `count` bytes of segment `segment` at `offset`, without zero-filling the buffer.
    func readSpan(_ segment: UInt64, at offset: UInt64, count: Int) throws(LSMError) -> [UInt8] {
        var failure: KVIMRError?
        var got = 0
        let out = [UInt8](unsafeUninitializedCapacity: count) { buf, initialized in
            let raw = UnsafeMutableRawBufferPointer(buf)
            do throws(KVIMRError) {
                while got < count {
                    let n = try kvimr.read(segment, at: offset + UInt64(got),
                                           into: UnsafeMutableRawBufferPointer(rebasing: raw[got...]))
                    if n <= 0 { break }
                    got += n
                }
            } catch { failure = error }
            if got < count, let base = raw.baseAddress { memset(base + got, 0, count - got) }
            initialized = count
        }
        if let failure {
            if failure.kind == .notFound || failure.kind == .outOfRange {
                throw damaged(ValuePointer(segment: segment, offset: offset, length: UInt32(clamping: count)), key: nil,
                              "value-log read failed: \(failure.message)")
            }
            throw LSMError(failure, "read value-log segment \(segment) at \(offset)")
        }
        guard got == count else {
            throw damaged(ValuePointer(segment: segment, offset: offset, length: UInt32(clamping: count)), key: nil,
                          "record passes the end of the segment (\(got) of \(count) bytes)")
        }
        return out
    }

    /// Verifies the record `rec` read for pointer `p` and key `key`.
    func checkRecord(_ rec: [UInt8], _ p: ValuePointer, key: [UInt8]) throws(LSMError) -> VLogFormat.Header {
        let r = rec.withUnsafeBytes { VLogFormat.verify($0, expectedKey: key) }
        switch r {
        case .success(let h): return h
        case .failure(let d): throw damaged(p, key: key, VLogReadPlan.describe(d))
        }
    }

    /// Counts and logs a damaged record, and returns the error to throw.
    func damaged(_ p: ValuePointer?, key: [UInt8]?, _ why: String) -> LSMError {
        vlog.checksumErrors.bump()
        var m = "value log: \(why)"
        if let p { m += " (segment \(p.segment), offset \(p.offset), \(p.length) bytes)" }
        if let key { m += " for key \(key.prefix(24).map { String($0, radix: 16) }.joined())" }
        logLine(m)
        return LSMError.corrupt(m)
    }
}

/// One line on standard error (the engine has no logger; the daemon's stderr is its log).
func logLine(_ message: String) {
    var line = Array("lsmstore: \(message)\n".utf8)
    line.withUnsafeMutableBytes { p in _ = Glibc.write(2, p.baseAddress, p.count) }
}

/// How batched value reads are planned.
enum VLogReadPlan {
    /// Records this close are read with one call (the bytes between are read and dropped).
    static let maxGap: UInt64 = 16 << 10
    /// The largest single read of a batch.
    static let maxSpan: UInt64 = 2 << 20
    /// Scan batches start at this many entries and double up to `maxEntries`.
    static let firstEntries = 4
    static let maxEntries = 64
    /// A scan batch is resolved once its pointers add up to this many bytes.
    static let maxBytes = 4 << 20

    /// A damaged record, in words for the error and the log line.
    static func describe(_ d: VLogFormat.Damage) -> String {
        switch d {
        case .truncated, .badLengths: return "record lengths do not match the pointer"
        case .checksumMismatch: return "checksum mismatch"
        case .keyMismatch: return "record belongs to another key"
        }
    }
}
