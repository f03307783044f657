import CHostIO
import Glibc
import LSMCommon
import Synchronization

/// Windows of the image read with O_DIRECT for KVIMR's sequential streams (`prefetch`, then
/// `readTrackBytes(streaming: true)`).
///
/// A buffered read of the image on this VM costs far more CPU than the bytes: a cold 1 GiB file
/// read with `dd bs=1M` took 0.81-1.13 s (0.6-0.9 s of it system time: page-cache pages
/// allocated, filled, put on the LRU and reclaimed), with `iflag=direct` 0.35-0.39 s (0.05 s).
/// A stream's prefetched extents are therefore read with O_DIRECT into aligned buffers held
/// here, and the stream's reads copy out of them; anything not held (the stream's first reads,
/// a window evicted or dropped) is read through the page cache as before.
///
/// Coherence: every write of the image is bracketed by `wrote(at:count:)` calls (before and
/// after), each dropping the windows it overlaps; a window being loaded while a write
/// overlapping it happens is not kept (a write counter and the recent writes' ranges are
/// checked when it is stored). O_DIRECT reads see
/// data written through the page cache (the kernel writes the range back first).
final class DirectStream: @unchecked Sendable {
    /// Bytes of windows kept (oldest dropped first): KVIMR's read-ahead keeps at most ~12 MiB
    /// ahead of a reader (ReadAhead.maxWindow plus a half), so two streams fit; more read
    /// partly through the page cache. Spare buffers add at most a third of it.
    static let maxBytes = 24 << 20
    /// Prefetches are loaded in pieces of at most this many bytes (`ImageTrackDevice.prefetch`).
    static let pieceBytes: UInt64 = 1 << 20
    /// O_DIRECT alignment of offsets, lengths and buffers (a 4 KiB logical block covers 512 too).
    static let alignment = 4096
    /// Recent writes remembered for windows being loaded meanwhile.
    static let recentWrites = 64

    private struct Window {
        let start: UInt64
        let count: Int
        /// The aligned buffer's address (raw pointers are not Sendable) and its size class.
        let address: UInt
        let slot: Int
        var buffer: UnsafeMutableRawPointer { UnsafeMutableRawPointer(bitPattern: address)! }
    }

    /// The size class of a window of `size` bytes: the next power of two from 256 KiB.
    private static func slot(_ size: Int) -> Int {
        var s = 256 << 10
        while s < size { s <<= 1 }
        return s
    }

    /// Drops window `w`, keeping its buffer for reuse.
    private static func retire(_ w: Window, _ s: inout State) {
        s.bytes -= w.slot
        recycle(w.address, slot: w.slot, &s)
    }

    /// Keeps buffer `address` of class `slot` for reuse while the spares stay under a third of `maxBytes`.
    private static func recycle(_ address: UInt, slot: Int, _ s: inout State) {
        if s.closed || s.spareBytes + slot > maxBytes / 3 {
            free(UnsafeMutableRawPointer(bitPattern: address))
            return
        }
        s.spare[slot, default: []].append(address)
        s.spareBytes += slot
    }

    private struct State {
        var windows: [Window] = []
        var bytes = 0
        /// Buffers of dropped windows by size class (`slot`), for reuse: a fresh allocation is
        /// page faults and zeroed pages for every window.
        var spare: [Int: [UInt]] = [:]
        var spareBytes = 0
        var writes: UInt64 = 0
        /// (write number, byte range) of the last `recentWrites` writes.
        var recent: [(UInt64, Range<UInt64>)] = []
        var closed = false
        /// Ranges asked for (`expect`) whose load has not finished, in queue order: a read of
        /// the first (the load running) waits for it instead of reading the bytes a second
        /// time through the page cache.
        var pending: [Range<UInt64>] = []
    }

    /// Broadcast when a load finishes (or the stream closes), for reads waiting on it.
    private let loaded = Signal()

    private let state = Mutex(State())
    private let fd: Int32

    /// An O_DIRECT descriptor of `path`, if it opens and is the same file as `sameAs`.
    init?(path: String, sameAs other: Int32) {
        let fd = lsm_open_direct(path)
        guard fd >= 0 else { return nil }
        guard FileIO.sameFile(other, fd) else {
            _ = Glibc.close(fd)
            return nil
        }
        self.fd = fd
    }

    /// The aligned range a load of `[at, at + length)` reads, nil if it would read nothing.
    private static func span(at: UInt64, length: Int) -> Range<UInt64>? {
        let a = UInt64(alignment)
        let lo = at / a * a, hi = (at + UInt64(length) + a - 1) / a * a
        guard hi > lo, slot(Int(hi - lo)) <= maxBytes / 2 else { return nil }
        return lo..<hi
    }

    /// Notes that `load(at:length:)` of these bytes is queued (call before queueing it): until
    /// it finishes, a read of bytes it covers waits for it.
    func expect(at: UInt64, length: Int) {
        guard let r = DirectStream.span(at: at, length: length) else { return }
        state.withLock { s in if !s.closed { s.pending.append(r) } }
    }

    /// Reads image bytes `[at, at + length)` (widened to the alignment) with O_DIRECT and keeps
    /// them. Run off the reader's thread (the device's prefetch queue). Failures only mean the
    /// reads go through the page cache.
    func load(at: UInt64, length: Int) {
        guard let r = DirectStream.span(at: at, length: length) else { return }
        defer {
            state.withLock { s in
                if let i = s.pending.firstIndex(of: r) { s.pending.remove(at: i) }
            }
            loaded.broadcast()
        }
        let lo = r.lowerBound
        let size = r.count
        let issued = state.withLock { $0.closed ? nil : $0.writes }
        guard let issued else { return }
        let slot = DirectStream.slot(size)
        let reused = state.withLock { s -> UInt? in
            guard var list = s.spare[slot], let a = list.popLast() else { return nil }
            s.spare[slot] = list
            s.spareBytes -= slot
            return a
        }
        var raw: UnsafeMutableRawPointer? = reused.flatMap { UnsafeMutableRawPointer(bitPattern: $0) }
        if raw == nil, posix_memalign(&raw, DirectStream.alignment, slot) != 0 { return }
        guard let buffer = raw else { return }
        var done = 0
        while done < size {
            let n = pread(fd, buffer + done, size - done, off_t(lo) + off_t(done))
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }   // error, or the image's end: keep what was read
            done += n
        }
        let count = done / DirectStream.alignment * DirectStream.alignment
        let address = UInt(bitPattern: buffer)
        let kept = state.withLock { s -> Bool in
            guard !s.closed, count > 0 else { return false }
            if s.writes != issued {
                // Writes happened while reading: keep the window only if none of them touched it
                // (and all of them are still remembered).
                let since = s.writes - issued
                guard since <= UInt64(s.recent.count) else { return false }
                let range = lo..<(lo + UInt64(count))
                if s.recent.contains(where: { $0.0 > issued && $0.1.overlaps(range) }) { return false }
            }
            s.windows.append(Window(start: lo, count: count, address: address, slot: slot))
            s.bytes += slot
            while s.bytes > DirectStream.maxBytes, !s.windows.isEmpty {
                DirectStream.retire(s.windows.removeFirst(), &s)
            }
            return true
        }
        if !kept { state.withLock { DirectStream.recycle(address, slot: slot, &$0) } }
    }

    /// Copies image bytes `[at, at + dst.count)` into `dst` when windows hold all of them
    /// (adjacent windows each give their part), waiting first for loads of them that are
    /// queued or running (`expect`). False: read them elsewhere (`dst` may hold part of them).
    func read(at: UInt64, into dst: UnsafeMutableRawBufferPointer) -> Bool {
        guard dst.count > 0 else { return false }
        let end = at + UInt64(dst.count)
        var pos = at
        enum Found { case copied, loading, absent }
        /// Whether the load running now covers `pos`: wait only for it, not for a queued one. A
        /// reader that is not really streaming (random reads near each other pass for a
        /// stream) would otherwise wait behind a queue of loads it does not need.
        func loading(_ s: State) -> Bool {
            guard let head = s.pending.first else { return false }
            return head.lowerBound <= pos && pos < head.upperBound
        }
        while pos < end {
            let found = state.withLock { s -> Found in
                var copied = false
                // Newest first: a window loaded after another overlapping it holds newer bytes.
                while pos < end, let w = s.windows.last(where: { $0.start <= pos && pos < $0.start + UInt64($0.count) }) {
                    let n = Int(min(end, w.start + UInt64(w.count)) - pos)
                    (dst.baseAddress! + Int(pos - at)).copyMemory(from: w.buffer + Int(pos - w.start), byteCount: n)
                    pos += UInt64(n)
                    copied = true
                }
                if copied || pos >= end { return .copied }
                return loading(s) ? .loading : .absent
            }
            switch found {
            case .copied: continue
            case .absent: return false
            case .loading:
                // The generation is read only here (not on every read), then the load checked
                // again: one that finished before the read of the generation is seen by the
                // check, one that finishes after it wakes the wait.
                let g = loaded.generation
                if state.withLock({ loading($0) }) { loaded.wait(past: g, timeoutMillis: 100) }
            }
        }
        return true
    }

    /// Brackets a write of image bytes `[at, at + count)`: call it right before the write and
    /// again right after it. Each call drops the windows the range overlaps and counts as a
    /// write for the loads in flight (`load` keeps no window that overlaps a write counted
    /// since it began). The second call matters: a load that began after the first call and
    /// read the image before the write landed holds the old bytes, and would otherwise be kept.
    func wrote(at: UInt64, count: Int) {
        guard count > 0 else { return }
        let range = at..<(at + UInt64(count))
        state.withLock { s in
            s.writes += 1
            s.recent.append((s.writes, range))
            if s.recent.count > DirectStream.recentWrites { s.recent.removeFirst(s.recent.count - DirectStream.recentWrites) }
            guard s.windows.contains(where: { range.overlaps($0.start..<($0.start + UInt64($0.count))) }) else { return }
            let windows = s.windows
            s.windows = []
            for w in windows {
                if range.overlaps(w.start..<(w.start + UInt64(w.count))) {
                    DirectStream.retire(w, &s)
                } else {
                    s.windows.append(w)
                }
            }
        }
    }

    /// Frees the windows and closes the descriptor; later loads keep nothing, reads find nothing.
    func close() {
        state.withLock { s in
            guard !s.closed else { return }
            s.closed = true
            s.pending.removeAll()
            for w in s.windows { free(w.buffer) }
            for list in s.spare.values { for a in list { free(UnsafeMutableRawPointer(bitPattern: a)) } }
            s.windows.removeAll()
            s.spare.removeAll()
            s.bytes = 0
            s.spareBytes = 0
            _ = Glibc.close(fd)
        }
        loaded.broadcast()
    }

    deinit { close() }
}
