import KVIMR

extension LSMError {
    /// Maps a KVIMR failure onto the engine's error kinds, keeping the message.
    init(_ e: KVIMRError, _ context: String) {
        let kind: Kind
        switch e.kind {
        case .noSpace: kind = .noSpace
        case .readOnly: kind = .readOnly
        case .corrupt: kind = .corrupt
        default: kind = .io
        }
        self.init(kind, "\(context): \(e.message)")
    }
    static func corrupt(_ m: String) -> LSMError { LSMError(.corrupt, m) }
}

/// Thin wrappers over the KVIMR file API that speak `LSMError`.
extension KVIMR {
    /// Reads exactly `count` bytes at `offset` of `file`, or fails (short read = corrupt).
    func readExact(_ file: FileNumber, at offset: UInt64, count: Int) throws(LSMError) -> [UInt8] {
        if count == 0 { return [] }
        var failure: LSMError?
        let out = [UInt8](unsafeUninitializedCapacity: count) { p, n in
            do throws(LSMError) { try readExact(file, at: offset, into: UnsafeMutableRawBufferPointer(p)) } catch { failure = error }
            n = count  // zero-filled below on failure
            if failure != nil { UnsafeMutableRawBufferPointer(p).initializeMemory(as: UInt8.self, repeating: 0) }
        }
        if let failure { throw failure }
        return out
    }

    /// Fills `buffer` with the bytes at `offset` of `file`, or fails (short read = corrupt).
    func readExact(_ file: FileNumber, at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(LSMError) {
        var got = 0
        do throws(KVIMRError) {
            while got < buffer.count {
                let n = try read(file, at: offset + UInt64(got), into: UnsafeMutableRawBufferPointer(rebasing: buffer[got...]))
                if n <= 0 { break }
                got += n
            }
        } catch { throw LSMError(error, "read file \(file) at \(offset)") }
        guard got == buffer.count else {
            throw LSMError.corrupt("file \(file): short read at \(offset) (\(got) of \(buffer.count) bytes)")
        }
    }

    /// Reads the whole file.
    func readAll(_ file: FileNumber) throws(LSMError) -> [UInt8] {
        guard let size = size(file) else { throw LSMError(.io, "file \(file) does not exist") }
        return try readExact(file, at: 0, count: Int(size))
    }

    func appendBytes(_ file: FileNumber, _ bytes: [UInt8]) throws(LSMError) {
        do throws(KVIMRError) { try append(file, bytes) } catch { throw LSMError(error, "append to file \(file)") }
    }
    func syncFiles(_ files: [FileNumber]) throws(LSMError) {
        do throws(KVIMRError) { try sync(files) } catch { throw LSMError(error, "sync files \(files)") }
    }
    /// `syncFiles` of files listed earlier that may have been deleted since (a WAL whose
    /// memtable was flushed meanwhile: its records are in a synced table; a value-log segment
    /// GC freed): the ones still there are synced.
    package func syncFilesSkippingDeleted(_ files: [FileNumber]) throws(LSMError) {
        do throws(KVIMRError) { try sync(files) } catch where error.kind == .notFound {
            let left = files.filter { size($0) != nil }
            if left.count == files.count { throw LSMError(error, "sync files \(files)") }
            try syncFilesSkippingDeleted(left)
        } catch {
            throw LSMError(error, "sync files \(files)")
        }
    }
    func createFile(_ kind: FileKind, level: Int) throws(LSMError) -> FileNumber {
        do throws(KVIMRError) { return try create(kind: kind, level: level) } catch { throw LSMError(error, "create \(kind) file") }
    }
    func sealFile(_ file: FileNumber) throws(LSMError) {
        do throws(KVIMRError) { try seal(file) } catch { throw LSMError(error, "seal file \(file)") }
    }
    func deleteFile(_ file: FileNumber) throws(LSMError) {
        do throws(KVIMRError) { try delete(file) } catch { throw LSMError(error, "delete file \(file)") }
    }
}
