import Glibc
import LSMStore
import SystemPackage

/// Write-behind of the write buffers (DirtyFile): a file buffer that passed its budget in a
/// FUSE write is detached (`DirtyTable.flushing`, with the inode record that goes with it) and
/// stored by the thread that filled it after it replied, so the writer's next request fills a
/// new buffer meanwhile. One write-behind per file at a time; every operation that rewrites
/// the inode record or the file's chunks first waits for it (`loadInode`, `flushDirtyLocked`,
/// `discardDirty`), so an older batch never lands over a newer one.
extension FileSystem {
    /// Moves `ino`'s filling buffer to `flushing` with the inode record that goes with it, and
    /// queues it (stripe lock held, no write-behind of `ino` running). False if a failed
    /// write-behind was merged back meanwhile (the caller then flushes synchronously).
    func detach(_ ino: UInt64) throws(Errno) -> Bool {
        guard let attrs = dirty.withLock({ $0.files[ino]?.attrs }) else { return true }
        let record = try loadInode(ino, dirty: .some(attrs)).encode()
        return dirty.withLock { t in
            guard t.flushing[ino] == nil, let f = t.files.removeValue(forKey: ino) else { return false }
            t.fillingBytes -= f.bytes
            t.flushingBytes += f.bytes
            t.flushing[ino] = DetachedFile(file: f, record: record)
            t.due.append(ino)
            return true
        }
    }

    /// Writes the detached buffers no thread has started (the FUSE write handler calls this
    /// after replying). Failures are logged and the buffer is merged back into the file's
    /// filling one: the next flush (fsync, release, periodic sync) retries and reports it.
    package func runDueFlushes() {
        while let (ino, d) = dirty.withLock({ t -> (UInt64, DetachedFile)? in
            while !t.due.isEmpty {
                let ino = t.due.removeFirst()
                if var d = t.flushing[ino], !d.started {
                    d.started = true
                    t.flushing[ino] = d
                    return (ino, d)
                }
            }
            return nil
        }) {
            writeDetached(ino, d)
        }
    }

    /// Returns once no write-behind of `ino` is queued or running (running a queued one itself).
    func waitForWriteBehind(_ ino: UInt64) {
        while true {
            let state = dirty.withLock { t -> (running: Bool, take: DetachedFile?) in
                guard var d = t.flushing[ino] else { return (false, nil) }
                if d.started { return (true, nil) }
                d.started = true
                t.flushing[ino] = d
                t.due.removeAll { $0 == ino }
                return (true, d)
            }
            if let d = state.take {
                writeDetached(ino, d)
            } else if state.running {
                var ts = timespec(tv_sec: 0, tv_nsec: 100_000)
                nanosleep(&ts, nil)
            } else {
                return
            }
        }
    }

    /// One write-behind store write: the chunks and the record in one batch; the buffer stays
    /// visible to readers until the store has it.
    func writeDetached(_ ino: UInt64, _ d: DetachedFile) {
        var failure: Errno?
        do throws(Errno) {
            var batch = WriteBatch()
            try addChunks(of: d.file, ino, to: &batch)
            batch.put(Keys.inode(ino), d.record)
            try write(batch, "write behind buffered writes of \(ino)")
        } catch { failure = error }
        if let failure { fsLog.error("write-behind of inode \(ino) failed (\(failure)); kept buffered for the next flush") }
        dirty.withLock { t in
            guard let d = t.flushing.removeValue(forKey: ino) else { return }
            t.flushingBytes -= d.file.bytes
            guard failure != nil else { return }
            // Merged back under the newer filling buffer (whose attributes already include it).
            var f = t.files.removeValue(forKey: ino) ?? DirtyFile(attrs: d.file.attrs)
            let before = f.bytes
            for (idx, c) in d.file.chunks where f.chunks[idx] == nil {
                f.chunks[idx] = c
                f.partial[idx] = d.file.partial[idx]
                f.storedPatches[idx] = d.file.storedPatches[idx]
                f.holes[idx] = d.file.holes[idx]
                f.bytes += c.count
            }
            // A newer partial chunk built on this buffer assumed its flush (an empty base
            // stored, or not): the store still holds what this buffer found (hole chunks).
            for (idx, p) in d.file.partial where f.partial[idx] != nil && f.partial[idx]!.emptyBase != p.emptyBase {
                let old = f.pages(idx)
                f.partial[idx]!.emptyBase = p.emptyBase
                f.attrs.blocks = InodeRecord.adjust(f.attrs.blocks, fromPages: old, toPages: f.pages(idx))
            }
            t.fillingBytes += f.bytes - before
            t.files[ino] = f
        }
    }
}
