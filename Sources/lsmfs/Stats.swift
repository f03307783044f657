import ArgumentParser
import Glibc

struct Stats: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the storage stack's statistics for a mounted directory or an unmounted image.")

    @Argument(help: "A mountpoint (reads its /.lsmfs-stats) or an image file.")
    var target: String

    @Flag(help: "Print JSON instead of the text report.")
    var json = false

    func run() throws {
        var st = stat()
        guard stat(target, &st) == 0 else {
            printError("lsmfs stats: \(target): \(String(cString: strerror(errno)))")
            throw ExitCode(1)
        }
        if (st.st_mode & S_IFMT) == S_IFDIR {
            let path = target + (json ? "/.lsmfs-stats.json" : "/.lsmfs-stats")
            guard let text = readWholeFile(path) else {
                printError("lsmfs stats: \(target) is not an lsmfs mount (cannot read \(path): \(String(cString: strerror(errno))))")
                throw ExitCode(1)
            }
            print(text, terminator: text.hasSuffix("\n") ? "" : "\n")
            return
        }
        do {
            let fs = try Stack.open(image: target, readOnly: true, policy: nil, syncInterval: 0)
            let text = json ? fs.statsJSON() : fs.statsText()
            try fs.shutdown()
            print(text, terminator: text.hasSuffix("\n") ? "" : "\n")
        } catch {
            printError("lsmfs stats: \(Stack.describe(error))")
            throw ExitCode(1)
        }
    }
}

func readWholeFile(_ path: String) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var out: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 { if errno == EINTR { continue }; return nil }
        if n == 0 { break }
        out.append(contentsOf: buf[0..<n])
    }
    return String(decoding: out, as: UTF8.self)
}
