import ArgumentParser

// Being written in this session (issue 4); replaced by the engine helper.
struct BenchKV: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "kv",
        abstract: "db_bench-compatible benchmark of LSMStore on an IMR image.")
    func run() throws { throw CLIError("lsmfs bench kv is not built yet") }
}
