import ArgumentParser

/// `lsmfs bench ...`: benchmarks run through the real stack (release builds only).
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmarks through the real stack (build with -c release).",
        subcommands: [BenchIMR.self, BenchKV.self])
}
