import ArgumentParser

// Being written in this session (issue 3); replaced by the IMR helper.
struct BenchIMR: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "imr",
        abstract: "Compare KVIMR's track allocation with the IMR baselines on the simulated drive.")
    func run() throws { throw CLIError("lsmfs bench imr is not built yet") }
}
