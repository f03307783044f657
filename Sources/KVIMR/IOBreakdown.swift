import IMRDisk

/// Where the drive's simulated time went, per kind of operation KVIMR issued (`KVIMRStats.io`).
///
/// KVIMR does all device I/O under its lock, so the change of the drive's counters across one
/// operation is that operation's cost. Categories:
/// - `write WAL`, `write manifest`, `write L0` ... `write L6`, `write vLog`: host track writes of
///   a file (without the drive's RMW around them);
/// - `RMW drive`: device-managed RMW (the firmware reading and rewriting damaged top sectors
///   around a bottom write), whatever the file;
/// - `RMW merged`: kvimr's merged RMW (reading the affected tops, the journal writes and syncs,
///   the rewrites, clearing the journal);
/// - `read WAL`, `read manifest`, `read L0` ... `read vLog`: host reads by file;
/// - `checkpoint`: track-map checkpoints in the meta zone;
/// - anything else (journal replay at open) is not attributed: `total - sum`.
public struct IOBreakdown: Sendable, Equatable {
    public struct Entry: Sendable, Equatable {
        public var ops: UInt64 = 0
        public var bytes: UInt64 = 0
        public var busyNanos: UInt64 = 0
        public var seekNanos: UInt64 = 0
        public var rotationNanos: UInt64 = 0
        public var transferNanos: UInt64 = 0
        public init() {}

        static func - (a: Entry, b: Entry) -> Entry {
            var e = Entry()
            e.ops = a.ops &- b.ops; e.bytes = a.bytes &- b.bytes; e.busyNanos = a.busyNanos &- b.busyNanos
            e.seekNanos = a.seekNanos &- b.seekNanos; e.rotationNanos = a.rotationNanos &- b.rotationNanos
            e.transferNanos = a.transferNanos &- b.transferNanos
            return e
        }

        mutating func add(_ e: Entry) {
            ops += e.ops; bytes += e.bytes; busyNanos += e.busyNanos
            seekNanos += e.seekNanos; rotationNanos += e.rotationNanos; transferNanos += e.transferNanos
        }
    }

    public var entries: [String: Entry] = [:]
    public init() {}

    /// Category order for reports: writes, RMW, reads, checkpoints.
    public var sortedCategories: [String] {
        entries.keys.sorted { IOBreakdown.rank($0) < IOBreakdown.rank($1) }
    }

    static func rank(_ c: String) -> (Int, String) {
        let order = ["write", "RMW", "read", "checkpoint"]
        let i = order.firstIndex { c.hasPrefix($0) } ?? order.count
        return (i, c)
    }

    public var totalBusyNanos: UInt64 { entries.values.reduce(0) { $0 + $1.busyNanos } }

    /// What happened between `earlier` and this snapshot.
    public func since(_ earlier: IOBreakdown) -> IOBreakdown {
        var out = IOBreakdown()
        for (k, v) in entries {
            let d = v - (earlier.entries[k] ?? Entry())
            if d.ops > 0 || d.busyNanos > 0 { out.entries[k] = d }
        }
        return out
    }

    /// The category of a file's track I/O.
    public static func category(_ verb: String, kind: FileKind, level: Int) -> String {
        // Every read and write asks: the common names are made once, not per call.
        if level >= 0 && level < cachedLevels {
            if verb == "read" { return readNames[Int(kind.rawValue)][level] }
            if verb == "write" { return writeNames[Int(kind.rawValue)][level] }
        }
        return name(verb, kind: kind, level: level)
    }

    private static let cachedLevels = 8
    private static let readNames = names("read")
    private static let writeNames = names("write")
    /// [kind raw value][level] → category (index 0 unused: kinds start at 1).
    private static func names(_ verb: String) -> [[String]] {
        var t = [[String]](repeating: [], count: Int(FileKind.allCases.map(\.rawValue).max()!) + 1)
        for k in FileKind.allCases { t[Int(k.rawValue)] = (0..<cachedLevels).map { name(verb, kind: k, level: $0) } }
        return t
    }

    private static func name(_ verb: String, kind: FileKind, level: Int) -> String {
        switch kind {
        case .wal: return "\(verb) WAL"
        case .manifest: return "\(verb) manifest"
        case .sstable: return "\(verb) L\(level)"
        case .vlog: return "\(verb) vLog"
        }
    }

    /// Adds the cost of one operation: the counters' change from `before` to `after`; the
    /// device-managed RMW part of it goes to `RMW drive`.
    mutating func charge(_ category: String, bytes: Int, before: DeviceCounters, after: DeviceCounters) {
        var e = Entry()
        e.ops = 1
        e.bytes = UInt64(max(bytes, 0))
        e.busyNanos = after.totalBusyNanos &- before.totalBusyNanos
        e.seekNanos = after.seekNanos &- before.seekNanos
        e.rotationNanos = after.rotationNanos &- before.rotationNanos
        e.transferNanos = after.transferNanos &- before.transferNanos
        let rmw = after.rmwBusyNanos &- before.rmwBusyNanos
        if rmw > 0 {
            var r = Entry()
            r.ops = after.rmwOps &- before.rmwOps
            r.bytes = after.rmwBytes &- before.rmwBytes
            r.busyNanos = rmw
            r.seekNanos = after.rmwSeekNanos &- before.rmwSeekNanos
            r.rotationNanos = after.rmwRotationNanos &- before.rmwRotationNanos
            r.transferNanos = rmw &- r.seekNanos &- r.rotationNanos
            add("RMW drive", r)
            e.busyNanos -= r.busyNanos; e.seekNanos -= r.seekNanos
            e.rotationNanos -= r.rotationNanos; e.transferNanos -= r.transferNanos
        }
        add(category, e)
    }

    mutating func add(_ category: String, _ e: Entry) {
        // In place: one hash of `category` per charge (a read charges one), not a get and a set.
        entries[category, default: Entry()].add(e)
    }
}
