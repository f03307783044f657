import ArgumentParser

/// `lsmfs`: create, mount and inspect lsmfs images (DESIGN.md §7).
@main
struct LSMFSCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lsmfs",
        abstract: "A FUSE filesystem on an LSM-tree, placed by KVIMR on a simulated IMR drive.",
        subcommands: [Mkfs.self, Mount.self, Stats.self, Gc.self, Fsck.self, Dump.self, Bench.self])
}

/// A failure the CLI reports as one line `lsmfs: <message>` and exit status 1.
struct CLIError: Error, CustomStringConvertible {
    var description: String
    init(_ message: String) { description = message }
}
