import Glibc
import IMRDisk
import KVIMR
import LSMFS
import LSMStore
import SystemPackage

/// A filesystem on the real stack: MemoryTrackDevice → KVIMR → LSMStore → FileSystem.
struct Rig {
    let dev: MemoryTrackDevice
    let store: LSMStore
    let fs: FileSystem

    static func fresh(trackCount: Int = 2000, readOnly: Bool = false) throws -> Rig {
        let dev = MemoryTrackDevice(trackCount: trackCount)
        try KVIMR.format(device: dev)
        let store = try LSMStore(kvimr: try KVIMR(device: dev))
        try FileSystem.format(store: store)
        return try open(dev, readOnly: readOnly, store: store)
    }

    static func open(_ dev: MemoryTrackDevice, readOnly: Bool = false, store: LSMStore? = nil) throws -> Rig {
        let store = try store ?? LSMStore(kvimr: try KVIMR(device: dev, readOnly: readOnly), readOnly: readOnly)
        var o = FSOptions()
        o.syncInterval = 0
        o.readOnly = readOnly
        return Rig(dev: dev, store: store, fs: try FileSystem(store: store, options: o))
    }

    /// Clean unmount, then a fresh stack on what the device holds.
    func remount(readOnly: Bool = false) throws -> Rig {
        try fs.shutdown()
        return try Rig.open(dev.crashed(), readOnly: readOnly)
    }

    /// Number of stored keys starting with `prefix`.
    func keyCount(_ prefix: [UInt8]) throws -> Int {
        var end = prefix
        end[end.count - 1] += 1
        var n = 0
        try store.scan(from: prefix, to: end) { _, _ in n += 1; return true }
        return n
    }
}

let root: UInt64 = 1
let me = Caller.process

func n(_ s: String) -> [UInt8] { Array(s.utf8) }

func errno(_ code: Int32) -> Errno { Errno(rawValue: code) }

extension FileSystem {
    func writeAll(_ fh: UInt64, _ offset: UInt64, _ bytes: [UInt8]) throws -> Int {
        try bytes.withUnsafeBytes { p throws(Errno) in try write(fh, offset: offset, data: p) }
    }

    func createFile(_ parent: UInt64, _ name: String, _ content: [UInt8] = []) throws -> UInt64 {
        let (attr, fh) = try create(parent, n(name), mode: 0o644, flags: O_RDWR, caller: me)
        if !content.isEmpty { _ = try writeAll(fh, 0, content) }
        try release(fh)
        return attr.ino
    }

    func readAll(_ ino: UInt64) throws -> [UInt8] {
        let fh = try open(ino, flags: O_RDONLY).fh
        defer { try? release(fh) }
        return try read(fh, offset: 0, size: Int(try getattr(ino).size) + 10)
    }

    /// Every name of a directory via readdir, `perCall` entries per call (paging).
    func listAll(_ dir: UInt64, perCall: Int = 1000) throws -> [String] {
        let fh = try opendir(dir)
        defer { releasedir(fh) }
        var names: [String] = []
        var off: Int64 = 0
        while true {
            var got = 0
            try readdir(fh, offset: off) { e in
                if got == perCall { return false }
                got += 1
                names.append(String(decoding: e.name, as: UTF8.self))
                off = e.nextOffset
                return true
            }
            if got == 0 { return names }
        }
    }
}

/// Deterministic pseudo-random bytes.
func pattern(_ count: Int, seed: UInt64) -> [UInt8] {
    var x = seed &* 0x9E37_79B9_7F4A_7C15 | 1
    return (0..<count).map { _ in
        x ^= x << 13; x ^= x >> 7; x ^= x << 17
        return UInt8(truncatingIfNeeded: x)
    }
}
