import ArgumentParser
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

    @Option(help: "Drive size (image bytes; meta zone included).")
    var size: String = "256M"
    @Option(help: "Policies to run, comma separated.")
    var policies: String = KVIMRPolicyName.allCases.map(\.rawValue).joined(separator: ",")
    @Option(help: "Value sizes in bytes, comma separated.")
    var values: String = "100,4096"
    @Option(help: "Dataset (keys x (key+value)) as a fraction of the drive's track capacity, for the low-usage run.")
    var low: Double = 0.1
    @Option(help: "Dataset fraction for the high-usage run (the drive's tracks are then >= 80% allocated during overwrite).")
    var high: Double = 0.34
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
    @Flag(help: "Print CSV instead of the table.")
    var csv = false
    @Option(help: "Write an SVG bar chart of the throughput to this path ('' for none).")
    var svg: String = "docs/bench/imr.svg"

    func run() throws {
        guard let bytes = parseSize(size) else { throw CLIError("bad --size '\(size)'") }
        var names: [KVIMRPolicyName] = []
        for p in policies.split(separator: ",") {
            guard let n = KVIMRPolicyName(rawValue: String(p)) else { throw CLIError("unknown policy '\(p)'") }
            names.append(n)
        }
        let valueSizes = values.split(separator: ",").compactMap { Int($0) }
        guard !valueSizes.isEmpty, !names.isEmpty else { throw CLIError("nothing to run") }
        var results: [BenchIMRResult] = []
        var failures: [String] = []
        for (usageName, fraction) in [("low", low), ("high", high)] {
            for v in valueSizes {
                for p in names {
                    let config = BenchIMRConfig(imageBytes: bytes, policy: p, valueSize: v, usage: usageName,
                                                datasetFraction: fraction, readFraction: reads,
                                                tableBytes: tableBytes, memtableBytes: memtableBytes, seed: seed,
                                                valueLogThreshold: vlogThreshold)
                    do {
                        let r = try BenchIMRRunner(config).run()
                        if !csv { printError(r.progressLine) }
                        results.append(r)
                    } catch {
                        // A policy that runs out of space (or fails) is reported, not compared.
                        printError("  \(usageName) v=\(v) \(p.rawValue): FAILED: \(Stack.describe(error))")
                        failures.append("\(usageName) v=\(v) \(p.rawValue): \(Stack.describe(error))")
                    }
                }
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
