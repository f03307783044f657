import ArgumentParser
import Glibc
import LSMStore

/// `lsmfs bench kv`: a db_bench work-alike for LSMStore on an IMR image (through KVIMR, as the
/// filesystem uses it). It speaks db_bench's `--flag=value` syntax and prints db_bench's
/// result lines, so it runs side by side with RocksDB's `db_bench` (bench/kv-vs-rocksdb.sh).
struct BenchKV: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "kv",
        abstract: "db_bench-compatible benchmark of LSMStore on an IMR image.",
        discussion: """
        Flags use db_bench's syntax (--name=value): --benchmarks=fillseq,fillrandom,overwrite,\
        readrandom,readseq,seekrandom,deleterandom --num --reads --key_size --value_size \
        --sync --bloom_bits --threads --cache_size --seek_nexts --write_buffer_size \
        --level0_file_num_compaction_trigger --level0_slowdown_writes_trigger \
        --level0_stop_writes_trigger --max_bytes_for_level_base --target_file_size_base \
        (engine defaults 10 MiB and 2 MiB when not given) --compaction_style=0|1 (0 leveled, 1 universal: our \
        tiering, with --tiering_size_ratio=T sorted runs per level, default 4) \
        --kvimr_buffer_budget=BYTES (KVIMR's write buffers together, default 32M; 0 unbounded) \
        --db=IMAGE_PATH --image_size=4G --policy=NAME --use_existing_db --seed. \
        Value log (WiscKey): db_bench's --enable_blob_files --min_blob_size --blob_file_size \
        --enable_blob_garbage_collection --blob_garbage_collection_age_cutoff, and ours: \
        --vlog_threshold=N (values of at least N bytes go to the value log; without it and \
        without --enable_blob_files the engine's default, LSMOptions.valueLogThreshold, applies) --gc_garbage_ratio \
        --gc_bytes_per_second; the pseudo-benchmark `gc` collects value-log garbage by hand and \
        prints the space used over the live data. \
        Unknown db_bench flags are ignored with a warning.
        """)

    @Argument(parsing: .allUnrecognized, help: "db_bench-style flags (--name=value).")
    var flags: [String] = []

    func run() throws {
        let config: BenchKVConfig
        do { config = try BenchKVConfig(parsing: flags) } catch {
            printError("lsmfs bench kv: \(error)")
            throw ExitCode(2)
        }
        do {
            try BenchKVRunner(config).run()
        } catch {
            printError("lsmfs bench kv: \(Stack.describe(error))")
            throw ExitCode(1)
        }
    }
}

/// The flags of one `bench kv` run, with db_bench's defaults where db_bench has them.
struct BenchKVConfig {
    var benchmarks = ["fillseq", "fillrandom", "overwrite", "readrandom", "readseq", "seekrandom", "deleterandom"]
    var num = 1_000_000
    var reads = -1                 // -1: num
    var keySize = 16
    var valueSize = 100
    var sync = false
    var bloomBits = 10
    var threads = 1
    var cacheSize = 8 << 20
    var seekNexts = 0
    /// db_bench's defaults (RocksDB 7.8): 64 MiB memtables, L0 compaction at 4 files,
    /// slowdown at 20, stop at 36.
    var writeBufferSize = 64 << 20
    var l0Trigger = 4
    var l0Slowdown = 20
    var l0Stop = 36
    /// db_bench's --compaction_style: 0 leveled, 1 universal (here: tiering with size ratio T).
    var compactionStyle = 0
    var tieringSizeRatio = 4
    /// db_bench's --max_bytes_for_level_base and --target_file_size_base (nil: the engine's
    /// defaults, LevelDB's 10 MiB and 2 MiB).
    var maxBytesForLevelBase: Int? = nil
    var targetFileSizeBase: Int? = nil
    /// KVIMR's write-buffer budget (nil: KVIMR's default; 0: unbounded).
    var kvimrBufferBudget: UInt64? = nil
    var db = "/tmp/lsmfs-bench-kv.img"
    var imageSize: UInt64 = 4 << 30
    var policy = Stack.policies.contains("kvimr") ? "kvimr" : (Stack.policies.first ?? "two-phase")
    var useExistingDB = false
    var seed: UInt64 = 301
    var warnings: [String] = []
    /// db_bench's blob flags and our value-log flags (BenchKVValueLog.swift).
    var valueLog = BenchKVValueLogFlags()

    static let known: Set<String> = ["fillseq", "fillrandom", "overwrite", "readrandom", "readseq",
                                     "seekrandom", "deleterandom", "stats", "gc"]

    init(parsing args: [String]) throws {
        for arg in args {
            guard arg.hasPrefix("--") else { throw CLIError("unexpected argument '\(arg)' (flags are --name=value)") }
            let body = arg.dropFirst(2)
            let name: String, value: String
            if let eq = body.firstIndex(of: "=") {
                name = String(body[..<eq]); value = String(body[body.index(after: eq)...])
            } else {
                name = String(body); value = "true"
            }
            func int() throws -> Int { try BenchKVConfig.int(name, value) }
            func bool() throws -> Bool { try BenchKVConfig.bool(name, value) }
            switch name {
            case "benchmarks":
                benchmarks = value.split(separator: ",").map { String($0) }
                for b in benchmarks where !BenchKVConfig.known.contains(b) {
                    throw CLIError("unknown benchmark '\(b)' (known: \(BenchKVConfig.known.sorted().joined(separator: ",")))")
                }
            case "num": num = try int()
            case "reads": reads = try int()
            case "key_size": keySize = try int()
            case "value_size": valueSize = try int()
            case "sync": sync = try bool()
            case "bloom_bits": bloomBits = try int()
            case "threads": threads = try int()
            case "cache_size": cacheSize = try int()
            case "seek_nexts": seekNexts = try int()
            case "write_buffer_size": writeBufferSize = try int()
            case "level0_file_num_compaction_trigger": l0Trigger = try int()
            case "level0_slowdown_writes_trigger": l0Slowdown = try int()
            case "level0_stop_writes_trigger": l0Stop = try int()
            case "compaction_style":
                compactionStyle = try int()
                guard compactionStyle == 0 || compactionStyle == 1 else {
                    throw CLIError("--compaction_style: 0 (leveled) or 1 (universal/tiered); FIFO (2) is not supported")
                }
            case "tiering_size_ratio": tieringSizeRatio = try int()
            case "max_bytes_for_level_base": maxBytesForLevelBase = try int()
            case "target_file_size_base": targetFileSizeBase = try int()
            case "kvimr_buffer_budget":
                guard let s = parseSize(value) else { throw CLIError("--kvimr_buffer_budget: '\(value)' is not a size") }
                kvimrBufferBudget = s
            case "db": db = value
            case "image_size":
                guard let s = parseSize(value) else { throw CLIError("--image_size: '\(value)' is not a size") }
                imageSize = s
            case "policy":
                if let why = Stack.checkPolicy(value) { throw CLIError(why) }
                policy = value
            case "use_existing_db": useExistingDB = try bool()
            case "seed": seed = UInt64(try int())
            default:
                if try !parseValueLogFlag(name, value) { warnings.append("ignoring flag --\(name)") }
            }
        }
        guard num > 0, keySize >= 8, keySize <= 1024, valueSize >= 0, threads >= 1, threads <= 64,
              bloomBits >= 0, cacheSize >= 0, seekNexts >= 0, writeBufferSize >= 64 << 10,
              l0Trigger >= 1, l0Slowdown >= l0Trigger, l0Stop > l0Trigger, tieringSizeRatio >= 2 else {
            throw CLIError("flag out of range (need num > 0, 8 <= key_size <= 1024, 1 <= threads <= 64, write_buffer_size >= 64K)")
        }
    }

    var readCount: Int { reads < 0 ? num : reads }
    var style: CompactionStyle { compactionStyle == 1 ? .tiered(sizeRatio: tieringSizeRatio) : .leveled }

    static func int(_ name: String, _ value: String) throws -> Int {
        guard let v = Int(value) else { throw CLIError("--\(name): '\(value)' is not an integer") }
        return v
    }
    static func bool(_ name: String, _ value: String) throws -> Bool {
        switch value.lowercased() {
        case "1", "true", "yes": return true
        case "0", "false", "no": return false
        default: throw CLIError("--\(name): '\(value)' is not a boolean")
        }
    }
}

/// Peak resident set of this process (VmHWM), in bytes.
/// The process's resident set now (/proc/self/statm), 0 if unknown.
func currentRSSBytes() -> UInt64 {
    let fd = open("/proc/self/statm", O_RDONLY)
    guard fd >= 0 else { return 0 }
    defer { close(fd) }
    var buf = [UInt8](repeating: 0, count: 128)
    let n = read(fd, &buf, buf.count)
    guard n > 0 else { return 0 }
    let fields = String(decoding: buf[0..<n], as: UTF8.self).split(separator: " ")
    guard fields.count > 1, let pages = UInt64(fields[1]) else { return 0 }
    return pages * UInt64(sysconf(Int32(_SC_PAGESIZE)))
}

func peakRSSBytes() -> UInt64 {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return UInt64(usage.ru_maxrss) * 1024
}
