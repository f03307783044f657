import ArgumentParser
import Glibc
import IMRDisk
import KVIMR
import LSMStore
import LSMFS

/// `lsmfs dump IMAGE`: prints, for debugging, every layer of an unmounted image read-only —
/// the superblock, both track-map slots and the current map's files with their extents (and
/// the image byte offset of each), the engine's summary, and one line per stored key.
struct Dump: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the structures of an unmounted lsmfs image (superblock, track map, files, keys).")

    @Argument(help: "The image file.")
    var image: String

    @Flag(help: "Skip the per-key listing.")
    var noKeys = false

    @Option(help: "Print at most this many keys (0 = all).")
    var maxKeys: Int = 0

    func run() throws {
        do {
            try dump()
        } catch let e as ExitCode {
            throw e
        } catch {
            printError("lsmfs dump: \(Stack.describe(error))")
            throw ExitCode(1)
        }
    }

    private func dump() throws {
        let device = try Stack.wrap { () throws(DeviceError) in try ImageTrackDevice.open(path: image, readOnly: true) }
        let sb = device.superblock
        let g = sb.geometry
        print("superblock: version \(sb.formatVersion) flags \(sb.flags) policy \(sb.policy) uuid \(hex(sb.uuid)) created \(sb.createdAt)")
        print("geometry: sector \(g.sectorSize) B, bottom \(g.bottomSectors) sectors, top \(g.topSectors) sectors, \(g.trackCount) tracks, meta zone \(g.metaZoneBytes) B, image \(g.imageBytes) B")

        let slots: [CheckpointSlotInfo]
        do {
            slots = try Stack.wrap { () throws(KVIMRError) in try KVIMR.inspectCheckpoints(device: device) }
        } catch {
            try? device.close()
            throw error
        }
        for s in slots {
            let state = s.problem ?? "checkpoint \(s.sequence ?? 0), \(s.map?.files.count ?? 0) files"
            print("track map slot \(s.name) @meta+\(s.offset): \(state)\(s.isCurrent ? " (current)" : "")")
        }
        if let map = slots.first(where: \.isCurrent)?.map {
            print("track map: next file \(map.nextFileNumber), root \(map.root.count) B")
            for f in map.sortedFiles {
                let kind = FileKind(rawValue: f.kind.rawValue).map { "\($0)" } ?? "kind \(f.kind.rawValue)"
                print("file \(f.number) \(kind) level \(f.level) size \(f.size)\(f.sealed ? " sealed" : "")")
                for e in f.extents {
                    let off = g.byteOffset(of: e.track) + UInt64(e.firstSector * g.sectorSize)
                    print("  extent track \(e.track) (\(g.isBottom(e.track) ? "bottom" : "top")) sectors \(e.firstSector)+\(e.sectorCount) @byte \(off)")
                }
            }
        }

        let store: LSMStore
        do {
            let kvimr = try Stack.wrap { () throws(KVIMRError) in try KVIMR(device: device, readOnly: true) }
            store = try Stack.wrap { () throws(LSMError) in try LSMStore(kvimr: kvimr, readOnly: true) }
        } catch {
            try? device.close()
            throw error
        }
        defer { try? store.close() }
        let st = store.stats()
        let levels = st.levels.enumerated().map { "L\($0.offset) \($0.element.files) files \($0.element.bytes) B" }
        print("engine: sequence \(st.sequence), memtable \(st.memtableBytes) B, \(levels.joined(separator: ", "))")
        if noKeys { return }
        var count = 0
        try Stack.wrap { () throws(LSMError) in
            try store.scan(from: [], to: nil) { key, value in
                count += 1
                let line = FileSystem.describe(key: key, value: value) ?? "key \(hex(key)) value \(value.count) B"
                print(line)
                return maxKeys == 0 || count < maxKeys
            }
        }
        print("keys: \(count)\(maxKeys > 0 && count >= maxKeys ? " (limit reached)" : "")")
    }

    private func hex(_ b: [UInt8]) -> String {
        b.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
    }
}
