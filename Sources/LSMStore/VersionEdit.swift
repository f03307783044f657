import LSMCommon

/// A change to the set of tables, logged in the manifest (docs/format/manifest.md).
package struct VersionEdit: Sendable, Equatable {
    package struct NewFile: Sendable, Equatable {
        package var level: Int
        package var number: UInt64
        package var size: UInt64
        package var smallest: [UInt8]
        package var largest: [UInt8]
        package init(level: Int, number: UInt64, size: UInt64, smallest: [UInt8], largest: [UInt8]) {
            self.level = level; self.number = number; self.size = size; self.smallest = smallest; self.largest = largest
        }
    }
    package var logNumber: UInt64?
    package var nextFileNumber: UInt64?
    package var lastSequence: UInt64?
    package var deleted: [(level: Int, number: UInt64)] = []
    package var added: [NewFile] = []
    /// Value-log garbage this edit's job found: bytes of records in `segment` that no pointer
    /// refers to any more (dropped pointers). Applied with the edit; deltas for a segment the
    /// manifest no longer lists are ignored.
    package var vlogGarbage: [(segment: UInt64, bytes: UInt64)] = []
    /// Segments a GC pass starts on (logged before the pass moves anything): an interrupted
    /// pass is finished by the next one.
    package var vlogGCVictims: [UInt64] = []
    /// Value-log segments this edit adds (logged before any pointer into them is written) and
    /// removes (after every pointer into them has moved away durably).
    package var vlogAdded: [UInt64] = []
    package var vlogRemoved: [UInt64] = []
    package init() {}

    package static func == (a: VersionEdit, b: VersionEdit) -> Bool {
        a.logNumber == b.logNumber && a.nextFileNumber == b.nextFileNumber && a.lastSequence == b.lastSequence
            && a.added == b.added && a.deleted.map(\.level) == b.deleted.map(\.level)
            && a.deleted.map(\.number) == b.deleted.map(\.number)
            && a.vlogGarbage.map(\.segment) == b.vlogGarbage.map(\.segment)
            && a.vlogGarbage.map(\.bytes) == b.vlogGarbage.map(\.bytes)
            && a.vlogGCVictims == b.vlogGCVictims
            && a.vlogAdded == b.vlogAdded && a.vlogRemoved == b.vlogRemoved
    }

    /// Byte layout: a sequence of tagged fields, each [varint tag][fields]:
    ///   2 logNumber:      [varint number]
    ///   3 nextFileNumber: [varint number]
    ///   4 lastSequence:   [varint sequence]
    ///   6 deletedFile:    [varint level][varint number]
    ///   7 newFile:        [varint level][varint number][varint size]
    ///                     [varint len][smallest internal key][varint len][largest internal key]
    ///  10 vlogSegmentAdded:   [varint segment file number]
    ///  11 vlogSegmentRemoved: [varint segment file number]
    ///  16 vlogGarbage:    [varint segment][varint bytes]
    ///  17 vlogGCVictim:   [varint segment]
    package func encode() -> [UInt8] {
        var out: [UInt8] = []
        if let v = logNumber { out.appendVarint(LSMFormat.EditTag.logNumber.rawValue); out.appendVarint(v) }
        if let v = nextFileNumber { out.appendVarint(LSMFormat.EditTag.nextFileNumber.rawValue); out.appendVarint(v) }
        if let v = lastSequence { out.appendVarint(LSMFormat.EditTag.lastSequence.rawValue); out.appendVarint(v) }
        for d in deleted {
            out.appendVarint(LSMFormat.EditTag.deletedFile.rawValue)
            out.appendVarint(UInt64(d.level)); out.appendVarint(d.number)
        }
        for f in added {
            out.appendVarint(LSMFormat.EditTag.newFile.rawValue)
            out.appendVarint(UInt64(f.level)); out.appendVarint(f.number); out.appendVarint(f.size)
            out.appendLengthPrefixed(f.smallest); out.appendLengthPrefixed(f.largest)
        }
        for n in vlogRemoved { out.appendVarint(LSMFormat.EditTag.vlogSegmentRemoved.rawValue); out.appendVarint(n) }
        for n in vlogAdded { out.appendVarint(LSMFormat.EditTag.vlogSegmentAdded.rawValue); out.appendVarint(n) }
        for g in vlogGarbage {
            out.appendVarint(LSMFormat.EditTag.vlogGarbage.rawValue)
            out.appendVarint(g.segment); out.appendVarint(g.bytes)
        }
        for n in vlogGCVictims { out.appendVarint(LSMFormat.EditTag.vlogGCVictim.rawValue); out.appendVarint(n) }
        return out
    }

    package static func decode(_ bytes: [UInt8], maxLevels: Int) throws(LSMError) -> VersionEdit {
        var e = VersionEdit()
        var r = ByteReader(bytes)
        func bad(_ what: String) -> LSMError { LSMError.corrupt("manifest: bad version edit (\(what))") }
        while !r.atEnd {
            guard let t = r.varint(), let tag = LSMFormat.EditTag(rawValue: t) else { throw bad("unknown tag") }
            switch tag {
            case .logNumber: guard let v = r.varint() else { throw bad("log number") }; e.logNumber = v
            case .nextFileNumber: guard let v = r.varint() else { throw bad("next file") }; e.nextFileNumber = v
            case .lastSequence: guard let v = r.varint() else { throw bad("sequence") }; e.lastSequence = v
            case .deletedFile:
                guard let l = r.varint(), l < UInt64(maxLevels), let n = r.varint() else { throw bad("deleted file") }
                e.deleted.append((Int(l), n))
            case .newFile:
                guard let l = r.varint(), l < UInt64(maxLevels), let n = r.varint(), let s = r.varint(),
                      let lo = r.lengthPrefixed(), let hi = r.lengthPrefixed(),
                      lo.count >= 8, hi.count >= 8 else { throw bad("new file") }
                e.added.append(NewFile(level: Int(l), number: n, size: s, smallest: lo, largest: hi))
            case .vlogSegmentAdded:
                guard let n = r.varint() else { throw bad("vlog segment added") }
                e.vlogAdded.append(n)
            case .vlogSegmentRemoved:
                guard let n = r.varint() else { throw bad("vlog segment removed") }
                e.vlogRemoved.append(n)
            case .vlogGarbage:
                guard let n = r.varint(), let b = r.varint() else { throw bad("vlog garbage") }
                e.vlogGarbage.append((n, b))
            case .vlogGCVictim:
                guard let n = r.varint() else { throw bad("vlog gc victim") }
                e.vlogGCVictims.append(n)
            }
        }
        return e
    }
}
