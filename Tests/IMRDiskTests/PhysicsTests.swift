import Testing
import IMRDisk

/// IMR write physics (DESIGN.md §2) on the in-memory device: device-managed bottom writes
/// read-modify-write the valid overlapped top sectors and never damage anything; host-managed
/// ones really damage them.
@Suite struct PhysicsTests {
    let ss = 4096

    @Test func overlapMath() {
        let g = IMRGeometry(trackCount: 8)
        #expect(DriveModel.overlap(g, bottom: 0..<568) == 0..<456)
        #expect(DriveModel.overlap(g, bottom: 0..<1) == 0..<1)
        #expect(DriveModel.overlap(g, bottom: 567..<568) == 455..<456)
        #expect(DriveModel.overlap(g, bottom: 100..<110) == 80..<89)
        #expect(DriveModel.overlap(g, bottom: 5..<5).isEmpty)
    }

    @Test func deviceManagedRewritesValidNeighboursAndDamagesNothing() throws {
        let d = MemoryTrackDevice(trackCount: 8)
        let t1 = pattern(1, sectors: 456), t3 = pattern(3, sectors: 456)
        try write(d, 1, 0, t1); try write(d, 3, 0, t3)
        try write(d, 2, 0, pattern(2, sectors: 568), .deviceManaged)
        var c = d.counters()
        #expect(c.top.rmwOps == 2 && c.top.rmwBytes == UInt64(2 * 456 * ss))
        #expect(try same(read(d, 1, 0, sectors: 456), t1) && same(read(d, 3, 0, sectors: 456), t3))

        try write(d, 2, 100, pattern(4, sectors: 10), .deviceManaged)
        c = d.counters()
        #expect(c.top.rmwOps == 4 && c.top.rmwBytes == UInt64((2 * 456 + 2 * 9) * ss))

        d.trim(3, sector: 0, count: 456)                       // free neighbours cost nothing
        try write(d, 2, 0, pattern(5, sectors: 1), .deviceManaged)
        c = d.counters()
        #expect(c.top.rmwOps == 5 && c.top.rmwBytes == UInt64((2 * 456 + 2 * 9 + 1) * ss))
        #expect(c.bottom.writes == 3 && c.top.writes == 2)    // RMW I/O is not host I/O
        #expect(same(try read(d, 3, 0, sectors: 456), t3))     // trim never destroys data
    }

    /// A gather write is one command: one RMW per valid neighbour for the whole bottom chunk
    /// (as many pieces written one by one would each read and rewrite their overlap), the
    /// pieces land back to back.
    @Test func gatherWriteIsOneCommand() throws {
        let t1 = pattern(1, sectors: 456), t3 = pattern(3, sectors: 456)
        let whole = pattern(2, sectors: 568)
        func scene() throws -> MemoryTrackDevice {
            let d = MemoryTrackDevice(trackCount: 8)
            try write(d, 1, 0, t1); try write(d, 3, 0, t3)
            return d
        }
        let d = try scene()
        let cuts = [0, 64, 128, 300, 568]
        try whole.withUnsafeBytes { (p) -> Result<Void, DeviceError> in
            let pieces = (0..<4).map { UnsafeRawBufferPointer(rebasing: p[(cuts[$0] * ss)..<(cuts[$0 + 1] * ss)]) }
            return Result { () throws(DeviceError) in try d.writeTrack(2, sector: 0, pieces: pieces, mode: .deviceManaged) }
        }.get()
        let c = d.counters()
        #expect(c.bottom.writes == 1 && c.top.rmwOps == 2 && c.top.rmwBytes == UInt64(2 * 456 * ss))
        #expect(same(try read(d, 2, 0, sectors: 568), whole))
        #expect(try same(read(d, 1, 0, sectors: 456), t1) && same(read(d, 3, 0, sectors: 456), t3))
        // The same bytes in four commands: four RMWs per neighbour, more simulated time.
        let e = try scene()
        for i in 0..<4 {
            try write(e, 2, cuts[i], Array(whole[(cuts[i] * ss)..<(cuts[i + 1] * ss)]), .deviceManaged)
        }
        #expect(e.counters().top.rmwOps == 8 && e.counters().totalBusyNanos > c.totalBusyNanos)
        #expect(same(try read(e, 2, 0, sectors: 568), whole))
    }

    @Test func hostManagedDamagesValidNeighboursOnly() throws {
        let d = MemoryTrackDevice(trackCount: 8)
        let t1 = pattern(1, sectors: 456), t3 = pattern(3, sectors: 456)
        try write(d, 1, 0, t1); try write(d, 3, 0, t3)
        d.trim(3, sector: 0, count: 456)
        try d.sync()
        try write(d, 2, 100, pattern(2, sectors: 10), .hostManaged)
        let g1 = try read(d, 1, 0, sectors: 456)
        #expect(same(g1[0..<(80 * ss)], t1[0..<(80 * ss)]))
        #expect(allBytes(g1[(80 * ss)..<(89 * ss)], IMRFormat.damagePattern))
        #expect(same(g1[(89 * ss)...], t1[(89 * ss)...]))
        #expect(same(try read(d, 3, 0, sectors: 456), t3))    // invalid: not damaged
        #expect(d.counters().top.rmwOps == 0)
        // the damage belongs to the unsynced write: a crash that drops the write drops it too
        #expect(same(try read(d.crashed(), 1, 0, sectors: 456), t1))
        #expect(allBytes(try read(d.crashed(keepUnsynced: 1), 1, 80, sectors: 9), IMRFormat.damagePattern))
    }

    @Test func topWritesNeverTouchBottoms() throws {
        let d = MemoryTrackDevice(trackCount: 8)
        let b0 = pattern(1, sectors: 568), b2 = pattern(2, sectors: 568)
        try write(d, 0, 0, b0); try write(d, 2, 0, b2)
        try write(d, 1, 0, pattern(3, sectors: 456), .hostManaged)
        #expect(try same(read(d, 0, 0, sectors: 568), b0) && same(read(d, 2, 0, sectors: 568), b2))
        #expect(d.counters().top.rmwOps == 0)
    }

    @Test func crashRebuildsValidityFromStoredSectors() throws {
        let d = MemoryTrackDevice(trackCount: 8)
        try write(d, 1, 0, pattern(1, sectors: 4))
        try d.sync()
        try write(d, 3, 0, pattern(1, sectors: 4))
        let c = d.crashed()
        #expect(c.isValid(1, sector: 3) && !c.isValid(1, sector: 4) && !c.isValid(3, sector: 0))
        #expect(c.counters().validTopSectors == 4)
        c.markValid(5, sector: 0, count: 2)
        #expect(c.counters().validTopSectors == 6)
    }
}

@Suite struct LatencyTests {
    let g = IMRGeometry(trackCount: 1001)

    @Test func seekCurve() {
        let m = LatencyModel(geometry: g)
        #expect(m.seekNanos(from: 5, to: 5) == 0)
        #expect(m.seekNanos(from: 5, to: 6) >= m.settleNanos)
        #expect(m.seekNanos(from: 0, to: 1000) == m.fullStrokeNanos)
        #expect(m.seekNanos(from: 1000, to: 0) == m.fullStrokeNanos)
        var last: UInt64 = 0
        for d in [1, 10, 100, 250, 500, 1000] {
            let s = m.seekNanos(from: 0, to: d)
            #expect(s > last); last = s
        }
        // square-root curve: a quarter stroke costs about half the full one
        let quarter = Double(m.seekNanos(from: 0, to: 250) - m.settleNanos)
        #expect(abs(quarter / Double(m.fullStrokeNanos - m.settleNanos) - 0.5) < 0.01)
    }

    @Test func rotationAndTransfer() {
        var m = LatencyModel(geometry: g)
        let rev = LatencyModel.revolutionNanos
        #expect(rev == 8_333_333)
        #expect(m.transferNanos(track: 0, count: 568) == rev)      // a whole track in one revolution
        #expect(m.transferNanos(track: 1, count: 456) == rev)
        #expect(m.transferNanos(track: 0, count: 100) < m.transferNanos(track: 1, count: 100))  // bottom is denser
        let first = m.access(track: 0, sector: 0, count: 10)
        #expect(first == rev / 2 + m.transferNanos(track: 0, count: 10))
        let seq = m.access(track: 0, sector: 10, count: 10)
        #expect(seq == m.transferNanos(track: 0, count: 10))
        _ = m.access(track: 0, sector: 20, count: 548)               // to the end of track 0
        let next = m.access(track: 1, sector: 0, count: 10)          // head switch, no rotation
        #expect(next == m.seekNanos(from: 0, to: 1) + m.transferNanos(track: 1, count: 10))
        let random = m.access(track: 900, sector: 7, count: 1)
        #expect(random == m.seekNanos(from: 1, to: 900) + rev / 2 + m.transferNanos(track: 900, count: 1))
    }

    @Test func devicesAccountBusyTime() throws {
        let d = MemoryTrackDevice(trackCount: 200)
        for s in stride(from: 0, to: 560, by: 8) { try write(d, 0, s, pattern(s, sectors: 8)) }
        let sequential = d.counters().bottom.busyNanos
        let r = MemoryTrackDevice(trackCount: 200)
        for (i, s) in stride(from: 0, to: 560, by: 8).enumerated() { try write(r, i % 2 == 0 ? 0 : 198, s, pattern(s, sectors: 8)) }
        #expect(r.counters().bottom.busyNanos > 10 * sequential)
        #expect(sequential < 2 * LatencyModel.revolutionNanos)
    }
}
