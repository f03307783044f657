import ArgumentParser
import Glibc
import IMRDisk
import KVIMR
import LSMStore
import LSMFS

/// `lsmfs fsck IMAGE [--repair]`: checks every structure of an unmounted image, bottom up —
/// superblock, track map (both checkpoint slots), engine (every SSTable block, the version's
/// shape), namespace — and exits as e2fsck does:
///   0 clean · 1 errors were found and corrected · 4 errors left uncorrected · 8 operational error
///   (the image cannot be opened or read: missing, in use, not an lsmfs image).
struct Fsck: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check (and with --repair, fix) an unmounted lsmfs image.",
        discussion: "Exit status: 0 clean, 1 errors corrected, 4 errors left uncorrected, 8 operational error.")

    @Argument(help: "The image file (must not be mounted).")
    var image: String

    @Flag(help: "Fix what can be fixed: reclaim crash leftovers, repair link counts, drop dangling dentries and chunks of missing inodes, reconnect unreachable inodes under /lost+found.")
    var repair = false

    @Flag(name: .shortAndLong, help: "Print nothing but problems.")
    var quiet = false

    static let exitClean: Int32 = 0, exitCorrected: Int32 = 1, exitUncorrected: Int32 = 4, exitOperational: Int32 = 8

    func run() throws {
        var progress = Progress(enabled: !quiet && isatty(2) == 1, phases: 4)
        var problems: [String] = []
        var notes: [String] = []
        func problem(_ structure: String, _ what: String) { problems.append("\(structure): \(what)") }

        // 1. Superblock (decoded and checksummed by open; geometry re-validated here).
        progress.phase("superblock")
        let device: ImageTrackDevice
        do {
            device = try Stack.wrap { () throws(DeviceError) in try ImageTrackDevice.open(path: image, readOnly: !repair) }
        } catch {
            progress.done()
            let why = Stack.describe(error)
            printError("lsmfs fsck: superblock: \(why)")
            // A decodable-but-damaged superblock is a damaged structure; a missing or busy image is not.
            let damaged = why.contains("checksum") || why.contains("magic") || why.contains("truncated") || why.contains("version")
            throw ExitCode(damaged ? Fsck.exitUncorrected : Fsck.exitOperational)
        }
        let sb = device.superblock
        if let why = Superblock.validate(sb.geometry) { problem("superblock", why) }
        if let why = Superblock.validatePolicy(sb.policy) { problem("superblock", why) }

        // 2. Track map: both checkpoint slots, the current one's structural rules.
        progress.phase("track map")
        do {
            let slots = try Stack.wrap { () throws(KVIMRError) in try KVIMR.inspectCheckpoints(device: device) }
            let hasCurrent = slots.contains(where: \.isCurrent)
            if !hasCurrent { problem("track map", "no valid checkpoint slot") }
            for s in slots {
                if let p = s.problem, p != "empty", !hasCurrent {
                    problem("track map slot \(s.name)", p)
                } else if let p = s.problem, p != "empty" {
                    // A damaged non-current slot is what a checkpoint write torn by a crash
                    // leaves; open uses the other slot, and the engine check below sees whether
                    // that older map still holds everything the manifest names.
                    notes.append("track map slot \(s.name): \(p) (not in use; the next checkpoint rewrites it)")
                }
                if s.isCurrent, let map = s.map, let why = map.violation(on: sb.geometry) {
                    problem("track map slot \(s.name)", why)
                }
            }
        } catch {
            progress.done()
            printError("lsmfs fsck: track map: \(Stack.describe(error))")
            try? device.close()
            throw ExitCode(Fsck.exitOperational)
        }

        // 3. Engine: manifest → version, WAL replay (in open), every table (verify).
        progress.phase("engine")
        let store: LSMStore
        do {
            let kvimr = try Stack.wrap { () throws(KVIMRError) in try KVIMR(device: device, readOnly: !repair) }
            store = try Stack.wrap { () throws(LSMError) in try LSMStore(kvimr: kvimr, readOnly: !repair) }
        } catch {
            progress.done()
            problem("engine", "cannot open: \(Stack.describe(error))")
            try? device.close()
            report(problems: problems, notes: notes, corrected: [])
            throw ExitCode(Fsck.exitUncorrected)
        }
        let v = store.verify()
        for p in v.problems { problem("engine", p) }
        if !v.orphanFiles.isEmpty {
            notes.append("engine: \(v.orphanFiles.count) unreferenced store file(s) left by a crash\(repair ? " (deleted on open)" : "; the next read-write mount deletes them")")
        }

        // 4. Namespace.
        progress.phase("namespace")
        var corrected: [String] = []
        var fsReport: FSCheckReport?
        do {
            var r = try FileSystem.check(store: store, maxErrors: 1000)
            if repair && (!r.isClean || r.pendingOrphans > 0) && v.isClean {
                corrected = try FileSystem.repair(store: store)
                r = try FileSystem.check(store: store, maxErrors: 1000)
            }
            for e in r.errors { problem("namespace", e) }
            if r.pendingOrphans > 0 {
                notes.append("namespace: \(r.pendingOrphans) orphan inode(s) (unlinked while open at a crash); the next read-write mount reclaims them")
            }
            fsReport = r
        } catch {
            problem("namespace", "scan failed: \(Stack.describe(error))")
        }
        if repair {
            do { try Stack.wrap { () throws(LSMError) in try store.sync() } } catch {
                problem("engine", "sync after repair failed: \(Stack.describe(error))")
            }
        }
        do { try Stack.wrap { () throws(LSMError) in try store.close() } } catch {
            problem("engine", "close failed: \(Stack.describe(error))")
        }
        progress.done()

        if !quiet {
            print("\(image): superblock v\(sb.formatVersion), \(sb.geometry.trackCount) tracks, policy \(sb.policy)")
            print("\(image): engine: \(v.tables) tables, \(v.entries) entries, \(formatBytes(v.tableBytes))")
            if let r = fsReport {
                print("\(image): \(r.directories) directories, \(r.files) files (\(formatBytes(r.fileBytes))), \(r.symlinks) symlinks, \(r.otherNodes) other, \(r.chunks) chunks, \(r.xattrs) xattrs")
            }
        }
        report(problems: problems, notes: notes, corrected: corrected)
        if problems.isEmpty {
            if !quiet { print("\(image): clean") }
            throw ExitCode(corrected.isEmpty ? Fsck.exitClean : Fsck.exitCorrected)
        }
        throw ExitCode(Fsck.exitUncorrected)
    }

    private func report(problems: [String], notes: [String], corrected: [String]) {
        for c in corrected { print("\(image): FIXED \(c)") }
        if !quiet { for n in notes { print("\(image): note: \(n)") } }
        for p in problems { print("\(image): ERROR \(p)") }
    }
}

/// A one-line phase progress bar on stderr, shown only on a terminal.
struct Progress {
    let enabled: Bool
    let phases: Int
    var current = 0

    init(enabled: Bool, phases: Int) { self.enabled = enabled; self.phases = phases }

    mutating func phase(_ name: String) {
        current += 1
        guard enabled else { return }
        let width = 24
        let filled = width * (current - 1) / phases
        let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
        printErrorRaw("\r[\(bar)] \(current)/\(phases) \(name)\u{1B}[K")
    }

    func done() {
        guard enabled else { return }
        printErrorRaw("\r\u{1B}[K")
    }
}

func printErrorRaw(_ s: String) {
    _ = s.withCString { write(2, $0, strlen($0)) }
}
