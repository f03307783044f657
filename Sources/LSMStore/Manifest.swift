import KVIMR
import LSMCommon

/// The KVIMR root record: which manifest file is current (docs/format/manifest.md).
package enum RootRecord {
    /// Byte layout: ["LSMR" magic: 4 LE][format version: 4 LE][manifest number: 8 LE]
    ///              [masked crc32c of the preceding 16 bytes: 4 LE]
    package static func encode(manifest: UInt64) -> [UInt8] {
        var out: [UInt8] = []
        out.appendLE(LSMFormat.rootMagic)
        out.appendLE(LSMFormat.rootVersion)
        out.appendLE(manifest)
        out.appendLE(CRC32C.mask(CRC32C.checksum(out)))
        return out
    }
    package static func decode(_ b: [UInt8]) throws(LSMError) -> UInt64 {
        guard b.count >= LSMFormat.rootSize, b.readLE(UInt32.self, at: 0) == LSMFormat.rootMagic else {
            throw LSMError.corrupt("root record: not an lsmfs store root")
        }
        let crc = b.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[0..<16])) }
        guard CRC32C.mask(crc) == b.readLE(UInt32.self, at: 16) else { throw LSMError.corrupt("root record: checksum mismatch") }
        guard b.readLE(UInt32.self, at: 4) == LSMFormat.rootVersion else {
            throw LSMError.corrupt("root record: unsupported format version \(b.readLE(UInt32.self, at: 4))")
        }
        return b.readLE(UInt64.self, at: 8)
    }
}

/// What the manifest says: the tables, the oldest live WAL and the last sequence.
package struct ManifestState: Sendable {
    package var version: Version
    package var logNumber: UInt64 = 0
    package var lastSequence: UInt64 = 0
    package var nextFileNumber: UInt64 = 0
}

/// The current manifest file: a log (docs/format/wal.md framing) of version edits.
/// Not thread-safe; the engine serializes edits (one background worker, or open/close).
package struct ManifestLog {
    package private(set) var number: FileNumber
    private var log: LogWriter
    /// An append or sync failed: the file may end in a partial record, so the next edit goes
    /// to a fresh manifest rather than after it.
    private var broken = false

    /// Replays the manifest `number` on top of an empty version.
    package static func recover(kvimr: KVIMR, number: FileNumber, maxLevels: Int,
                                reclaimer: FileReclaimer?) throws(LSMError) -> ManifestState {
        guard kvimr.size(number) != nil else {
            throw LSMError.corrupt("manifest \(number) named by the root record does not exist")
        }
        let data = try kvimr.readAll(number)
        let records = try LogReader.records(data, name: "manifest \(number)")
        var st = ManifestState(version: .empty(maxLevels))
        for rec in records {
            let e = try VersionEdit.decode(rec, maxLevels: maxLevels)
            if let v = e.logNumber { st.logNumber = v }
            if let v = e.lastSequence { st.lastSequence = v }
            if let v = e.nextFileNumber { st.nextFileNumber = v }
            st.version = st.version.applying(e, reclaimer: reclaimer).0
        }
        return st
    }

    /// An edit that recreates `st` from nothing.
    package static func snapshot(_ st: ManifestState) -> VersionEdit {
        var e = VersionEdit()
        e.logNumber = st.logNumber
        e.lastSequence = st.lastSequence
        e.nextFileNumber = st.nextFileNumber
        for (level, files) in st.version.levels.enumerated() {
            for f in files {
                e.added.append(.init(level: level, number: f.number, size: f.size, smallest: f.smallest, largest: f.largest))
            }
        }
        e.vlogAdded = st.version.segments.keys.sorted()
        e.vlogGarbage = st.version.vlogGarbage.filter { $0.value > 0 }.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        e.vlogGCVictims = st.version.vlogVictims.sorted()
        return e
    }

    /// Creates a new manifest holding a snapshot of `st`, makes it durable and points the
    /// KVIMR root at it. The caller deletes the previous manifest afterwards.
    package static func create(kvimr: KVIMR, _ st: ManifestState) throws(LSMError) -> ManifestLog {
        let number = try kvimr.createFile(.manifest, level: 0)
        var log = LogWriter(file: number)
        do throws(LSMError) {
            try log.add(snapshot(st).encode(), kvimr: kvimr)
            try kvimr.syncFiles([number])
            do throws(KVIMRError) { try kvimr.setRoot(RootRecord.encode(manifest: number)) } catch {
                throw LSMError(error, "set root")
            }
        } catch {
            try? kvimr.deleteFile(number)
            throw error
        }
        return ManifestLog(number: number, log: log)
    }

    private init(number: FileNumber, log: LogWriter) { self.number = number; self.log = log }

    /// Appends `edit` and makes it durable. `before` is the state the edit applies to; when the
    /// manifest has grown past its limit it is rewritten as a snapshot first. With `durable`
    /// false the edit is only written out (`KVIMR.writeOut`): durable with the next checkpoint,
    /// and before anything appended to any file after this call.
    package mutating func append(_ edit: VersionEdit, before: ManifestState, kvimr: KVIMR,
                                 durable: Bool = true) throws(LSMError) {
        if broken || (kvimr.size(number) ?? 0) >= LSMFormat.manifestRollBytes {
            let old = number
            let fresh = try ManifestLog.create(kvimr: kvimr, before)
            self = fresh
            try? kvimr.deleteFile(old) // the root no longer names it
        }
        do throws(LSMError) {
            try log.add(edit.encode(), kvimr: kvimr)
            if durable {
                try kvimr.syncFiles([number])
            } else {
                do throws(KVIMRError) { try kvimr.writeOut([number]) } catch { throw LSMError(error, "write out manifest \(number)") }
            }
        } catch {
            broken = true
            throw error
        }
    }
}
