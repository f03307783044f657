import ArgumentParser
import Dispatch
import Synchronization
import KVIMR

/// `lsmfs bench imr`: the KVIMR paper's comparison on the simulated drive. Every policy runs the
/// same db_bench-style workloads through the real LSMStore → KVIMR → drive stack on a fresh
/// in-memory drive; throughput is operations per *simulated* second of drive busy time.
struct BenchIMR: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "imr",
        abstract: "Compare KVIMR's track allocation with the IMR baselines on the simulated drive.",
        discussion: """
        For each value size and each space-usage level, every policy gets a fresh drive and runs \
        fillrandom, overwrite and readrandom through the real engine. Prints per policy the \
        simulated throughput, the RMW operations and bytes (drive-managed and merged), device \
        bytes written per user byte, and the final line \
        'kvimr/best-baseline: write-intensive X, high-usage Y' (kvimr over the best of \
        two-phase and three-phase). See docs/bench/imr.md.
        """)

    @Option(help: "Drive size (image bytes; meta zone included) of the low-usage runs.")
    var size: String = "256M"
    @Option(help: "Drive size of the high-usage runs with values of 1 KiB or more (a larger drive: the compaction's transient is a smaller share of it, so the mean usage can pass 80%).")
    var highSize: String = "1G"
    @Option(help: "Drive size of the high-usage runs with values under 1 KiB (ten times the keys per byte: a 1 GiB drive would take many minutes).")
    var highSizeSmall: String = "256M"
    @Option(help: "Policies to run, comma separated.")
    var policies: String = KVIMRPolicyName.allCases.map(\.rawValue).joined(separator: ",")
    @Option(help: "Value sizes in bytes, comma separated.")
    var values: String = "100,4096"
    @Option(help: "Dataset (keys x (key+value)) as a fraction of the drive's track capacity, for the low-usage run.")
    var low: Double = 0.1
    @Option(help: "Dataset fraction for the high-usage runs with values under 1 KiB (256 MiB drive: tracks ~76% allocated on average during overwrite, ~83% at peak; 0.51 runs out of space).")
    var high: Double = 0.50
    @Option(help: "Dataset fraction for the high-usage runs with values of 1 KiB or more (1 GiB drive: ~88% allocated on average, ~92% at peak).")
    var highLarge: Double = 0.55
    @Option(help: "readrandom operations as a fraction of the key count.")
    var reads: Double = 0.1
    @Option(help: "SSTable target size in bytes (default 1.75 MiB: one track of either kind).")
    var tableBytes: Int = 7 << 18
    @Option(help: "Memtable size in bytes.")
    var memtableBytes: Int = 4 << 20
    @Option(help: "Values of at least this many bytes go to the value log (default: none, every value in the tree, as LevelDB in the KVIMR paper).")
    var vlogThreshold: Int = Int.max
    @Option(help: "Random seed.")
    var seed: UInt64 = 1
    @Option(help: "Runs to do at once (each is a drive and a store of its own).")
    var jobs: Int = 1
    @Flag(help: "Print CSV instead of the table.")
    var csv = false
    @Option(help: "Write an SVG bar chart of the throughput to this path ('' for none).")
    var svg: String = "docs/bench/imr.svg"

    func run() throws {
        guard let bytes = parseSize(size) else { throw CLIError("bad --size '\(size)'") }
        guard let highBytes = parseSize(highSize) else { throw CLIError("bad --high-size '\(highSize)'") }
        guard let highSmallBytes = parseSize(highSizeSmall) else { throw CLIError("bad --high-size-small '\(highSizeSmall)'") }
        var names: [KVIMRPolicyName] = []
        for p in policies.split(separator: ",") {
            guard let n = KVIMRPolicyName(rawValue: String(p)) else { throw CLIError("unknown policy '\(p)'") }
            names.append(n)
        }
        let valueSizes = values.split(separator: ",").compactMap { Int($0) }
        guard !valueSizes.isEmpty, !names.isEmpty else { throw CLIError("nothing to run") }
        var configs: [BenchIMRConfig] = []
        for usageName in ["low", "high"] {
            for v in valueSizes {
                let large = v >= 1024
                let fraction = usageName == "low" ? low : large ? highLarge : high
                let drive = usageName == "low" ? bytes : large ? highBytes : highSmallBytes
                for p in names {
                    configs.append(BenchIMRConfig(imageBytes: drive, policy: p, valueSize: v, usage: usageName,
                                                  datasetFraction: fraction, readFraction: reads,
                                                  tableBytes: tableBytes, memtableBytes: memtableBytes, seed: seed,
                                                  valueLogThreshold: vlogThreshold))
                }
            }
        }
        // Runs are independent (a drive and a store each): up to --jobs at once, results kept
        // in the order above. Simulated time does not depend on how many run together.
        let runs = configs
        let outcomes = Mutex([Result<BenchIMRResult, any Error>?](repeating: nil, count: configs.count))
        let next = Mutex(0)
        let group = DispatchGroup()
        let quiet = csv
        for _ in 0..<max(1, min(jobs, configs.count)) {
            DispatchQueue.global().async(group: group) {
                while true {
                    let i = next.withLock { n -> Int in defer { n += 1 }; return n }
                    guard i < runs.count else { return }
                    let c = runs[i]
                    let r = Result { try BenchIMRRunner(c).run() }
                    switch r {
                    case .success(let res): if !quiet { printError(res.progressLine) }
                    case .failure(let e): printError("  \(c.usage) v=\(c.valueSize) \(c.policy.rawValue): FAILED: \(Stack.describe(e))")
                    }
                    outcomes.withLock { $0[i] = r }
                }
            }
        }
        group.wait()
        var results: [BenchIMRResult] = []
        var failures: [String] = []
        for (i, o) in outcomes.withLock({ $0 }).enumerated() {
            switch o {
            case .success(let r)?: results.append(r)
            case .failure(let e)?:
                // A policy that runs out of space (or fails) is reported, not compared.
                let c = configs[i]
                failures.append("\(c.usage) v=\(c.valueSize) \(c.policy.rawValue): \(Stack.describe(e))")
            case nil: break
            }
        }
        let report = BenchIMRReport(results: results)
        print(csv ? report.csv() : report.table())
        print("")
        if !csv { print("Simulated time of the headline phase by operation (share of the phase's busy time):\n") }
        print(csv ? report.breakdownCSV() : report.breakdownTable())
        print("")
        if !svg.isEmpty {
            try imrWriteTextFile(svg, report.svg())
            if !csv { print("chart: \(svg)") }
        }
        for f in failures { print("failed: \(f)") }
        print(report.ratioLine())
    }
}
