/// Entries of a scan waiting for their values from the value log: collected in key order,
/// resolved together (log order), visited in key order. Batches grow from
/// `VLogReadPlan.firstEntries` to `maxEntries`, so a scan stopped early reads little ahead.
struct ScanBatch {
    var keys: [[UInt8]] = []
    var values: [[UInt8]] = []
    var pointers: [(ValuePointer, key: [UInt8])?] = []
    var bytes = 0
    var limit = VLogReadPlan.firstEntries
    var isEmpty: Bool { keys.isEmpty }

    /// Adds an entry (`pointer` nil: `stored` is the value); true when the batch is full.
    mutating func add(_ key: [UInt8], _ stored: [UInt8], _ pointer: ValuePointer?) -> Bool {
        keys.append(key)
        values.append(pointer == nil ? stored : [])
        pointers.append(pointer.map { ($0, key) })
        bytes += pointer.map { Int($0.length) } ?? 0
        return keys.count >= limit || bytes >= VLogReadPlan.maxBytes
    }

    /// Reads the batch's values and visits its entries; false if `visit` asked to stop.
    mutating func drain(_ e: Engine, _ visit: (_ key: [UInt8], _ value: [UInt8]) -> Bool) throws(LSMError) -> Bool {
        guard !keys.isEmpty else { return true }
        try e.readValues(pointers, into: &values)
        for i in keys.indices where !visit(keys[i], values[i]) { return false }
        keys.removeAll(keepingCapacity: true); values.removeAll(keepingCapacity: true)
        pointers.removeAll(keepingCapacity: true); bytes = 0
        limit = min(limit * 2, VLogReadPlan.maxEntries)
        return true
    }
}
