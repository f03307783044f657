import Glibc
import LSMStore
import Synchronization

extension FileSystem {
    /// How the kernel's requests reach this process, for the report ("none" when not mounted;
    /// the FUSE layer sets "/dev/fuse" or "io_uring, Q queues x W workers").
    public static let fuseTransport = Mutex<String>("none")
}

/// A small JSON value, enough for the stats report.
enum JSONValue {
    case int(Int64)
    case uint(UInt64)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([(String, JSONValue)])

    func render(into s: inout String, indent: Int) {
        let pad = String(repeating: "  ", count: indent + 1), endPad = String(repeating: "  ", count: indent)
        switch self {
        case .int(let v): s += "\(v)"
        case .uint(let v): s += "\(v)"
        case .double(let v): s += v.isFinite ? fmt(v, 6) : "0"
        case .string(let v): s += JSONValue.quote(v)
        case .array(let items):
            if items.isEmpty { s += "[]"; return }
            s += "[\n"
            for (i, it) in items.enumerated() {
                s += pad; it.render(into: &s, indent: indent + 1)
                s += i + 1 < items.count ? ",\n" : "\n"
            }
            s += endPad + "]"
        case .object(let fields):
            if fields.isEmpty { s += "{}"; return }
            s += "{\n"
            for (i, (k, v)) in fields.enumerated() {
                s += pad + JSONValue.quote(k) + ": "
                v.render(into: &s, indent: indent + 1)
                s += i + 1 < fields.count ? ",\n" : "\n"
            }
            s += endPad + "}"
        }
    }

    var isScalar: Bool {
        switch self {
        case .array, .object: return false
        default: return true
        }
    }

    static func quote(_ v: String) -> String {
        var out = "\""
        for u in v.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            default:
                if u.value < 0x20 {
                    let hex = String(u.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else { out.unicodeScalars.append(u) }
            }
        }
        return out + "\""
    }
}

/// Fixed-point formatting without Foundation.
func fmt(_ v: Double, _ digits: Int) -> String {
    guard v.isFinite else { return "0" }
    var buf = [CChar](repeating: 0, count: 64)
    _ = withVaList([v]) { vsnprintf(&buf, 64, "%.\(digits)f", $0) }
    return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

extension FileSystem {
    /// One snapshot of every counter of the stack, as a JSON object tree.
    func statsSnapshot() -> JSONValue {
        let ops = opStats.snapshot()
        let l = store.stats()
        let k = store.kvimr.stats()
        let d = k.device
        let (handles, orphans, lookups) = tables.withLock { ($0.handles.count, $0.orphans.count, $0.lookups.count) }

        var opFields: [(String, JSONValue)] = []
        for op in FSOp.allCases where ops[op.rawValue].calls > 0 {
            let c = ops[op.rawValue]
            opFields.append((op.name, .object([
                ("calls", .uint(c.calls)), ("errors", .uint(c.errors)),
                ("mean_us", .double(c.meanMicros)), ("p50_us", .double(c.percentileMicros(0.5))),
                ("p99_us", .double(c.percentileMicros(0.99))), ("max_us", .double(Double(c.maxNanos) / 1000)),
                ("bytes", .uint(c.bytes)),
            ])))
        }
        let levels: [JSONValue] = l.levels.enumerated().map { i, lv in
            .object([("level", .int(Int64(i))), ("files", .int(Int64(lv.files))), ("bytes", .uint(lv.bytes))])
        }
        // (IMRDisk's per-kind counter type is not named here: LSMFS imports only LSMStore.)
        func kind(_ r: UInt64, _ w: UInt64, _ br: UInt64, _ bw: UInt64, _ ro: UInt64, _ rb: UInt64, _ busy: UInt64) -> JSONValue {
            .object([("reads", .uint(r)), ("writes", .uint(w)),
                     ("bytes_read", .uint(br)), ("bytes_written", .uint(bw)),
                     ("rmw_ops", .uint(ro)), ("rmw_bytes", .uint(rb)),
                     ("busy_ms", .double(Double(busy) / 1e6))])
        }
        let b = d.bottom, t = d.top
        let busy = d.bottom.busyNanos &+ d.top.busyNanos
        let written = d.bottom.bytesWritten &+ d.top.bytesWritten
        let sectorSize = UInt64(store.kvimr.device.geometry.sectorSize)
        let cacheTotal = l.blockCacheHits &+ l.blockCacheMisses
        return .object([
            ("filesystem", .object([
                ("chunk_bytes", .int(Int64(chunkSize))),
                ("read_only", .string(options.readOnly ? "yes" : "no")),
                ("sync_interval_s", .double(options.syncInterval)),
                ("fuse_transport", .string(FileSystem.fuseTransport.withLock { $0 })),
                ("open_handles", .int(Int64(handles))),
                ("open_orphans", .int(Int64(orphans))),
                ("files_with_buffered_writes", .int(Int64(dirtyFileCount))),
                ("inodes_referenced", .int(Int64(lookups))),
                ("next_inode", .uint(inoAlloc.withLock { $0.next })),
            ])),
            ("fuse_ops", .object(opFields)),
            ("engine", .object([
                ("levels", .array(levels)),
                ("memtable_bytes", .int(Int64(l.memtableBytes))),
                ("immutable_memtables", .int(Int64(l.immutableMemtables))),
                ("sequence", .uint(l.sequence)),
                ("flushes", .uint(l.flushes)),
                ("compactions", .uint(l.compactions)),
                ("user_bytes_written", .uint(l.userBytesWritten)),
                ("table_bytes_written", .uint(l.tableBytesWritten)),
                ("wal_bytes_written", .uint(l.walBytesWritten)),
                ("write_amplification", .double(l.writeAmplification)),
                ("gets", .uint(l.gets)),
                ("tables_probed", .uint(l.tablesProbed)),
                ("read_amplification", .double(l.readAmplification)),
                ("bloom_checks", .uint(l.bloomChecks)),
                ("bloom_negatives", .uint(l.bloomNegatives)),
                ("block_cache_hits", .uint(l.blockCacheHits)),
                ("block_cache_misses", .uint(l.blockCacheMisses)),
                ("block_cache_hit_rate", .double(cacheTotal == 0 ? 0 : Double(l.blockCacheHits) / Double(cacheTotal))),
                ("stall_us", .uint(l.stallMicros)),
            ])),
            ("vlog", vlogSection(l.vlog)),
            ("kvimr", .object([
                ("policy", .string(k.policy)),
                ("files", .int(Int64(k.files))),
                ("bottom_tracks_used", .int(Int64(k.bottomTracksUsed))),
                ("top_tracks_used", .int(Int64(k.topTracksUsed))),
                ("tracks_total", .int(Int64(k.tracksTotal))),
                ("bytes_buffered", .uint(k.bytesBuffered)),
                ("bytes_stored", .uint(k.bytesStored)),
                ("capacity_bytes", .uint(k.capacityBytes)),
                ("free_bytes", .uint(k.freeBytes)),
                ("rmw_ops", .uint(k.rmwOps)),
                ("merged_rmw_ops", .uint(k.mergedRmwOps)),
                ("rmw_bytes", .uint(k.rmwBytes)),
                ("checkpoints", .uint(k.checkpoints)),
            ])),
            ("drive", .object([
                ("bottom", kind(b.reads, b.writes, b.bytesRead, b.bytesWritten, b.rmwOps, b.rmwBytes, b.busyNanos)),
                ("top", kind(t.reads, t.writes, t.bytesRead, t.bytesWritten, t.rmwOps, t.rmwBytes, t.busyNanos)),
                ("meta_reads", .uint(d.metaReads)),
                ("meta_writes", .uint(d.metaWrites)),
                ("syncs", .uint(d.syncs)),
                ("busy_ms", .double(Double(busy) / 1e6)),
                ("write_throughput_mb_s", .double(busy == 0 ? 0 : Double(written) / 1e6 / (Double(busy) / 1e9))),
                ("valid_bytes", .uint((d.validBottomSectors &+ d.validTopSectors) &* sectorSize)),
            ])),
        ])
    }

    /// The value log (WiscKey): segments, live and garbage bytes, values written, GC work.
    func vlogSection(_ v: VLogStats) -> JSONValue {
        .object([
            ("segments", .int(Int64(v.segments))),
            ("total_bytes", .uint(v.totalBytes)),
            ("live_bytes", .uint(v.liveBytes)),
            ("garbage_bytes", .uint(v.garbageBytes)),
            ("garbage_ratio", .double(v.garbageRatio)),
            ("values_written", .uint(v.valuesWritten)),
            ("value_bytes_written", .uint(v.valueBytesWritten)),
            ("gc_runs", .uint(v.gcRuns)),
            ("gc_segments_freed", .uint(v.gcSegmentsFreed)),
            ("gc_bytes_moved", .uint(v.gcBytesMoved)),
            ("gc_bytes_freed", .uint(v.gcBytesFreed)),
            ("checksum_errors", .uint(v.checksumErrors)),
        ])
    }

    /// The `/.lsmfs-stats` report: the snapshot as indented "name: value" lines.
    public func statsText() -> String {
        var s = "lsmfs stats\n"
        renderText(statsSnapshot(), name: nil, indent: 0, into: &s)
        return s
    }

    /// The `/.lsmfs-stats.json` report.
    public func statsJSON() -> String {
        var s = ""
        statsSnapshot().render(into: &s, indent: 0)
        return s + "\n"
    }

    private func renderText(_ v: JSONValue, name: String?, indent: Int, into s: inout String) {
        let pad = String(repeating: "  ", count: indent)
        switch v {
        case .object(let fields) where indent > 0 && fields.allSatisfy({ $0.1.isScalar }):
            // a leaf group (one op, one track kind) on one line
            s += pad + (name ?? "") + ": " + fields.map { "\($0.0)=\(scalar($0.1))" }.joined(separator: " ") + "\n"
        case .object(let fields):
            if let name { s += pad + name + ":\n" }
            for (k, f) in fields { renderText(f, name: k, indent: name == nil ? indent : indent + 1, into: &s) }
        case .array(let items):
            s += pad + (name ?? "") + ":\n"
            for it in items {
                if case .object(let f) = it {
                    s += pad + "  - " + f.map { "\($0.0)=\(scalar($0.1))" }.joined(separator: " ") + "\n"
                } else {
                    s += pad + "  - " + scalar(it) + "\n"
                }
            }
        default:
            s += pad + (name ?? "") + ": " + scalar(v) + "\n"
        }
    }

    private func scalar(_ v: JSONValue) -> String {
        switch v {
        case .int(let x): return "\(x)"
        case .uint(let x): return "\(x)"
        case .double(let x): return fmt(x, 3)
        case .string(let x): return x
        default: return "..."
        }
    }
}
