import KVIMR
import LSMCommon

/// Where `LSMStore.scanPlacing` puts the value of an entry it comes to.
public enum ValuePlacement {
    /// Not wanted: the value is not read.
    case skip
    /// Handed to `visit` as an array, once every value placed before it (in key order) is in
    /// place.
    case visit
    /// Bytes `[from, from + into.count)` of the value copied to `into` (which must lie within
    /// the value). `into` must stay valid until the scan returns.
    case copy(from: Int, into: UnsafeMutableRawBufferPointer)
}

extension LSMStore {
    /// A scan that copies values where the caller wants them instead of handing out arrays: for
    /// each live key in [start, end), `place` is asked with the value's length where its bytes
    /// go (`ValuePlacement`). A value in the value log placed whole is read from the drive
    /// straight into its place and checked there (its record's header and key are read beside
    /// it): no buffer in between. For readers that assemble a result from many values (a file
    /// system's READ reply from a file's chunks). A damaged record is `.corrupt` (counted,
    /// logged) and the bytes already placed must not be used.
    public func scanPlacing(from start: [UInt8], to end: [UInt8]?,
                            place: (_ key: [UInt8], _ valueLength: Int) -> ValuePlacement,
                            visit: (_ key: [UInt8], _ value: [UInt8]) -> Bool) throws(LSMError) {
        try engine.scanPlacing(try engine.view(), from: start, to: end, place: place, visit: visit)
    }
}

extension Engine {
    func scanPlacing(_ v: View, from start: [UInt8], to end: [UInt8]?,
                     place: (_ key: [UInt8], _ valueLength: Int) -> ValuePlacement,
                     visit: (_ key: [UInt8], _ value: [UInt8]) -> Bool) throws(LSMError) {
        var placed = PlacedReads()
        var batch = ScanBatch()
        let completed = try forEachLiveEntry(v, from: start, to: end) { (user, kind, stored) throws(LSMError) -> Bool in
            let p = kind == ValueKind.put.rawValue ? nil : try pointer(stored, key: user, in: v)
            let length = p.map { Int($0.length) - VLogFormat.headerSize - user.count } ?? stored.count
            switch place(user, length) {
            case .skip:
                return true
            case .copy(let from, let dst):
                precondition(from >= 0 && from + dst.count <= max(length, 0), "placement outside the value")
                guard dst.count > 0 else { return true }
                guard let p else {
                    stored.withUnsafeBytes { dst.baseAddress!.copyMemory(from: $0.baseAddress! + from, byteCount: dst.count) }
                    return true
                }
                if placed.add(p, key: user, from: from, into: dst, valueLength: length) { try placed.run(self) }
                return true
            case .visit:
                try placed.run(self)   // what was placed before it is in place when it is visited
                if p == nil && batch.isEmpty { return visit(user, stored) }
                return batch.add(user, stored, p) ? try batch.drain(self, visit) : true
            }
        }
        try placed.run(self)
        if completed { _ = try batch.drain(self, visit) }
    }
}

/// Values of a placing scan waiting to be read into their places: read together, by segment
/// in log order, with one KVIMR call per segment (`KVIMR.read(_:ranges:)`).
struct PlacedReads {
    struct Entry {
        var pointer: ValuePointer
        var key: [UInt8]
        var from: Int
        var dst: UnsafeMutableRawBufferPointer
        var valueLength: Int
        /// The whole value goes to `dst`: read there, the header and key beside it.
        var whole: Bool { from == 0 && dst.count == valueLength }
    }
    var entries: [Entry] = []
    var bytes = 0

    /// Adds a value to place; true when the batch is full (run it).
    mutating func add(_ p: ValuePointer, key: [UInt8], from: Int, into dst: UnsafeMutableRawBufferPointer, valueLength: Int) -> Bool {
        entries.append(Entry(pointer: p, key: key, from: from, dst: dst, valueLength: valueLength))
        bytes += Int(p.length)
        return entries.count >= VLogReadPlan.maxEntries || bytes >= VLogReadPlan.maxBytes
    }

    /// Reads every waiting value into its place and checks its record.
    mutating func run(_ e: Engine) throws(LSMError) {
        guard !entries.isEmpty else { return }
        defer { entries.removeAll(keepingCapacity: true); bytes = 0 }
        entries.sort { $0.pointer < $1.pointer }
        // Records' heads (whole values) and whole records (partial values), back to back.
        var scratchSize = 0
        for x in entries { scratchSize += x.whole ? VLogFormat.headerSize + x.key.count : Int(x.pointer.length) }
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: max(scratchSize, 1), alignment: 16)
        defer { scratch.deallocate() }
        var i = 0, at = 0
        while i < entries.count {
            let segment = entries[i].pointer.segment
            var j = i
            var ranges: [(offset: UInt64, buffer: UnsafeMutableRawBufferPointer)] = []
            var spans: [UnsafeMutableRawBufferPointer] = []   // per entry: head or whole record
            while j < entries.count && entries[j].pointer.segment == segment {
                let x = entries[j]
                let headCount = x.whole ? VLogFormat.headerSize + x.key.count : Int(x.pointer.length)
                let span = UnsafeMutableRawBufferPointer(rebasing: scratch[at..<(at + headCount)])
                at += headCount
                spans.append(span)
                ranges.append((x.pointer.offset, span))
                if x.whole { ranges.append((x.pointer.offset + UInt64(headCount), x.dst)) }
                j += 1
            }
            let counts: [Int]
            do { counts = try e.kvimr.read(segment, ranges: ranges) } catch {
                let p = entries[i].pointer
                if error.kind == .notFound || error.kind == .outOfRange {
                    throw e.damaged(p, key: entries[i].key, "value-log read failed: \(error.message)")
                }
                throw LSMError(error, "read value-log segment \(segment) at \(p.offset)")
            }
            var r = 0
            for (k, x) in entries[i..<j].enumerated() {
                let span = spans[k]
                let short = counts[r] < span.count || (x.whole && counts[r + 1] < x.dst.count)
                r += x.whole ? 2 : 1
                let checked: Result<VLogFormat.Header, VLogFormat.Damage> = short ? .failure(.truncated)
                    : x.whole ? VLogFormat.verify(head: UnsafeRawBufferPointer(span), value: UnsafeRawBufferPointer(x.dst), expectedKey: x.key)
                    : VLogFormat.verify(UnsafeRawBufferPointer(span), expectedKey: x.key)
                switch checked {
                case .failure(let d):
                    throw e.damaged(x.pointer, key: x.key, VLogReadPlan.describe(d))
                case .success(let h):
                    if !x.whole {
                        x.dst.baseAddress!.copyMemory(from: span.baseAddress! + h.valueRange.lowerBound + x.from, byteCount: x.dst.count)
                    }
                }
            }
            i = j
        }
    }
}
