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
            let shown = json ? text : humanizeStats(text)
            print(shown, terminator: shown.hasSuffix("\n") ? "" : "\n")
            return
        }
        do {
            let fs = try Stack.open(image: target, readOnly: true, policy: nil, syncInterval: 0)
            let text = json ? fs.statsJSON() : humanizeStats(fs.statsText())
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

/// The text report with byte counts also in binary units: `capacity_bytes: 2130706432`
/// becomes `capacity_bytes: 2130706432 (2.0 GiB)`, `bytes=4640444` becomes
/// `bytes=4640444 (4.4 MiB)`. Small values (< 1 KiB) are left alone.
func humanizeStats(_ text: String) -> String {
    func human(_ digits: Substring) -> String? {
        guard let n = UInt64(digits), n >= 1024 else { return nil }
        return formatBytes(n)
    }
    var out: [String] = []
    for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
        var l = String(line)
        // "key_bytes: N" (the whole value)
        if let colon = l.firstIndex(of: ":"), l[..<colon].contains("bytes") {
            let value = l[l.index(after: colon)...].drop { $0 == " " }
            if let h = human(value) { l += " (\(h))" }
            out.append(l)
            continue
        }
        // "... bytes=N ..." inside a line
        var parts: [String] = []
        for word in l.split(separator: " ", omittingEmptySubsequences: false) {
            if word.hasPrefix("bytes="), let h = human(word.dropFirst(6)) {
                parts.append("\(word) (\(h))")
            } else {
                parts.append(String(word))
            }
        }
        out.append(parts.joined(separator: " "))
    }
    return out.joined(separator: "\n")
}
