import IMRDisk

/// KVIMR's own read-ahead for files read sequentially (not SSTables: `KVIMR.read`); their reads
/// then skip the kernel's (`ImageTrackDevice.readTrackBytes(streaming:)`, through a second image
/// descriptor without it). The kernel's window runs on over the image's byte range, past a
/// file's last written sector and across top tracks between bottoms — holes the page cache
/// fills with zeros; this one asks the device for the file's own extents only.
///
/// A file is read sequentially when a read starts near where the previous reads of it ended
/// (requests served in parallel arrive a little out of order, so "near" is a slack, not an
/// exact match). The window ahead of the reader starts at `firstWindow` and doubles up to
/// `maxWindow` while the file keeps being read in order; a read elsewhere starts over.
package struct ReadAhead: Sendable {
    package struct Stream: Sendable {
        /// The end of the furthest read so far.
        var next: UInt64
        /// File bytes up to here were handed to the device to prefetch.
        var ahead: UInt64
        /// The next top-up's size (doubles up to `maxWindow`).
        var window: UInt64
        /// The last top-up's size: the next comes once less than half of it is left ahead.
        var asked: UInt64 = ReadAhead.firstWindow
        var hits: Int
    }

    package static let firstWindow: UInt64 = 1 << 20
    package static let maxWindow: UInt64 = 8 << 20
    /// A read starting this close to `next` (either side) continues the stream.
    package static let slack: UInt64 = 4 << 20
    /// Files followed at once; past it the state starts over (cheap: a stream re-forms in two reads).
    package static let maxStreams = 64

    private var streams: [FileNumber: Stream] = [:]

    package init() {}

    /// Notes a read of bytes `[offset, end)` of `file`; returns the file bytes to prefetch now
    /// (nil: none) and whether the read is part of an in-order stream (from the second
    /// in-order read on: prefetching has started).
    package mutating func note(_ file: FileNumber, offset: UInt64, end: UInt64) -> (prefetch: Range<UInt64>?, inOrder: Bool) {
        guard var s = streams[file] else {
            if streams.count >= ReadAhead.maxStreams { streams.removeAll(keepingCapacity: true) }
            streams[file] = Stream(next: end, ahead: end, window: ReadAhead.firstWindow, hits: 0)
            return (nil, false)
        }
        let near = offset >= s.next ? offset - s.next <= ReadAhead.slack : s.next - offset <= ReadAhead.slack
        guard near else {
            streams[file] = Stream(next: end, ahead: end, window: ReadAhead.firstWindow, hits: 0)
            return (nil, false)
        }
        s.next = max(s.next, end)
        s.hits += 1
        defer { streams[file] = s }
        // Top up once less than half the last top-up is left ahead of the reader: a quarter left
        // the reader catching up with the loads in flight (a cold 1 GiB read waited for them:
        // FUSE READ handlers' mean 108 µs at a quarter, 94 µs at half).
        let from = max(s.ahead, s.next)
        guard from - s.next < s.asked / 2 else { return (nil, true) }
        let target = s.next + s.window
        s.ahead = target
        s.asked = s.window
        s.window = min(s.window * 2, ReadAhead.maxWindow)
        return (from..<target, true)
    }

    /// Forgets a file (deleted).
    package mutating func forget(_ file: FileNumber) { streams[file] = nil }

    /// Asks `device` to prefetch bytes `range` of the file `rec` describes, clipped to its
    /// stored bytes, extent by extent (only sectors the file owns).
    package static func prefetch(_ range: Range<UInt64>, of rec: FileRecord, on device: ImageTrackDevice) {
        let ss = UInt64(device.geometry.sectorSize)
        let end = min(range.upperBound, rec.size)
        var extentStart: UInt64 = 0
        for e in rec.extents {
            let extentEnd = extentStart + UInt64(e.sectorCount) * ss
            defer { extentStart = extentEnd }
            if extentStart >= end { break }
            guard range.lowerBound < extentEnd else { continue }
            let lo = max(range.lowerBound, extentStart) - extentStart
            let hi = min(end, extentEnd) - extentStart
            let first = Int(lo / ss), last = Int((hi + ss - 1) / ss)
            if first < last { device.prefetch(e.track, sector: e.firstSector + first, count: last - first) }
        }
    }
}
