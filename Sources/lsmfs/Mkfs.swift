import ArgumentParser
import Glibc

struct Mkfs: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create an lsmfs image (a sparse file holding a simulated IMR drive).")

    @Argument(help: "Path of the image file to create.")
    var image: String

    @Option(help: "Image size, e.g. 512M, 2G, 1T (rounded down to whole tracks; at least 64M).")
    var size: String = "2G"

    @Option(help: "KVIMR track allocation policy: conventional, two-phase, three-phase or kvimr.")
    var policy: String = "two-phase"

    @Flag(help: "Overwrite an existing file.")
    var force = false

    func validate() throws {
        guard let bytes = parseSize(size) else {
            throw ValidationError("invalid size '\(size)': use a number with an optional K, M, G or T suffix, e.g. 2G")
        }
        guard bytes >= 64 << 20 else { throw ValidationError("size \(size) is too small: an image needs at least 64M") }
        if let problem = Stack.checkPolicy(policy) { throw ValidationError(problem) }
    }

    func run() throws {
        let bytes = parseSize(size)!
        do {
            try Stack.makeFilesystem(image: image, size: bytes, policy: policy, force: force)
        } catch {
            printError("lsmfs mkfs: \(Stack.describe(error))")
            throw ExitCode(1)
        }
        print("created \(image): \(formatBytes(bytes)) IMR image, policy \(policy)")
    }
}

func printError(_ message: String) {
    var line = message
    if !line.hasSuffix("\n") { line += "\n" }
    _ = line.withCString { write(2, $0, strlen($0)) }
}
