import Testing
import Glibc
import IMRDisk

/// A fresh temporary directory, removed (with its files) when the test ends.
final class TempDir {
    let path: String
    init() {
        var template = Array("/tmp/imrdisk-test-XXXXXX".utf8CString)
        path = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
    }
    func file(_ name: String) -> String { path + "/" + name }
    deinit {
        if let d = opendir(path) {
            while let e = readdir(d) {
                let name = withUnsafeBytes(of: e.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
                if name != "." && name != ".." { _ = unlink(file(name)); _ = rmdir(file(name)) }
            }
            closedir(d)
        }
        rmdir(path)
    }
}

func fileSize(_ path: String) -> Int {
    var st = stat(); return stat(path, &st) == 0 ? Int(st.st_size) : -1
}

func makeFile(_ path: String, size: Int, prefix: [UInt8] = []) {
    let fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0o644)
    _ = prefix.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
    _ = ftruncate(fd, off_t(size))
    close(fd)
}

func openError(_ path: String, readOnly: Bool = false) -> DeviceError? {
    deviceError { () throws(DeviceError) in _ = try ImageTrackDevice.open(path: path, readOnly: readOnly) }
}

@Suite struct ImageTrackDeviceTests {
    let mib: UInt64 = 1 << 20

    @Test func createIsSparseAndExact() throws {
        let tmp = TempDir(), p = tmp.file("a.img")
        let d = try ImageTrackDevice.create(path: p, size: 100 * mib, policy: "kvimr")
        #expect(d.geometry == IMRGeometry.fitting(imageBytes: 100 * mib))
        #expect(UInt64(fileSize(p)) == d.geometry.imageBytes)
        #expect(d.geometry.imageBytes <= 100 * mib)
        var st = stat(); stat(p, &st)
        #expect(Int(st.st_blocks) * 512 < 1 << 20, "image should be sparse")
        #expect(d.superblock.policy == "kvimr" && d.superblock.uuid.count == 16)
        try d.close()
        #expect(deviceError { () throws(DeviceError) in try d.sync() }?.kind == .closed)
    }

    @Test func createRejects() throws {
        let tmp = TempDir(), p = tmp.file("a.img")
        #expect(deviceError { () throws(DeviceError) in _ = try ImageTrackDevice.create(path: p, size: 32 * mib, policy: "kvimr") }?
            .message.contains("too small") == true)
        #expect(fileSize(p) == -1)
        #expect(deviceError { () throws(DeviceError) in
            _ = try ImageTrackDevice.create(path: p, size: 64 * mib, policy: String(repeating: "x", count: 40)) } != nil)
        #expect(deviceError { () throws(DeviceError) in
            _ = try ImageTrackDevice.create(path: p, size: 64 * mib, policy: "kvimr", bottomSectors: 0, topSectors: 0) }?
            .message.contains("out of range") == true)
        #expect(fileSize(p) == -1)
        let d = try ImageTrackDevice.create(path: p, size: 64 * mib, policy: "kvimr")
        try d.close()
        let exists = deviceError { () throws(DeviceError) in _ = try ImageTrackDevice.create(path: p, size: 64 * mib, policy: "kvimr") }
        #expect(exists?.errno == EEXIST && exists?.message == "image already exists: \(p)")
        let again = try ImageTrackDevice.create(path: p, size: 80 * mib, policy: "two-phase", overwrite: true)
        #expect(again.superblock.policy == "two-phase" && UInt64(fileSize(p)) == again.geometry.imageBytes)
        try again.close()
    }

    @Test func reopenByteForByte() throws {
        let tmp = TempDir(), p = tmp.file("a.img")
        let d = try ImageTrackDevice.create(path: p, size: 64 * mib, policy: "kvimr")
        let sb = d.superblock
        let bottom = pattern(1, sectors: 568), top = pattern(2, sectors: 5), meta = pattern(3, sectors: 2)
        try write(d, 22, 0, bottom)
        try write(d, 23, 451, top)
        try writeMeta(d, d.metaCapacity - 8192, meta)
        try d.sync()
        try d.close()

        let r = try ImageTrackDevice.open(path: p)
        #expect(r.superblock == sb)
        #expect(same(try read(r, 22, 0, sectors: 568), bottom))
        #expect(same(try read(r, 23, 451, sectors: 5), top))
        #expect(same(try readMeta(r, d.metaCapacity - 8192, bytes: 8192), meta))
        #expect(allBytes(try read(r, 1, 0, sectors: 456), 0))
        #expect(r.isValid(22, sector: 0) && r.isValid(23, sector: 455))   // rebuilt from the data extents
        try r.close()

        // the bytes sit exactly where docs/format/imr.md says
        let fd = open(p, O_RDONLY); defer { close(fd) }
        var buf = [UInt8](repeating: 0, count: 5 * 4096)
        _ = buf.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, off_t(sb.geometry.byteOffset(of: 23) + 451 * 4096)) }
        #expect(same(buf, top))
        var head = [UInt8](repeating: 0, count: 4096)
        _ = head.withUnsafeMutableBytes { pread(fd, $0.baseAddress, 4096, 0) }
        #expect(try Superblock.decode(head) == sb)
        _ = buf.withUnsafeMutableBytes { pread(fd, $0.baseAddress, 8192, off_t(sb.geometry.metaZoneBytes - 8192)) }
        #expect(same(Array(buf[0..<8192]), meta))
    }

    @Test func invalidImages() throws {
        let tmp = TempDir()
        let missing = tmp.file("nope.img")
        #expect(openError(missing)?.message == "image not found: \(missing)")
        #expect(openError(missing)?.kind == .invalidImage)
        #expect(openError(tmp.path)?.message.contains("not a regular file") == true)

        let zero = tmp.file("zero.img"); makeFile(zero, size: 64 << 20)
        #expect(openError(zero)?.message == "no lsmfs superblock: image is all zero")
        let empty = tmp.file("empty.img"); makeFile(empty, size: 0)
        #expect(openError(empty)?.message == "no lsmfs superblock: image is empty")
        let foreign = tmp.file("foreign.img"); makeFile(foreign, size: 64 << 20, prefix: Array("#!/bin/sh\necho hi\n".utf8))
        #expect(openError(foreign)?.message == "not an lsmfs image (bad magic)")
        let text = tmp.file("short.txt"); makeFile(text, size: 5, prefix: Array("hello".utf8))
        #expect(openError(text)?.message == "not an lsmfs image (bad magic)")

        let p = tmp.file("t.img")
        let d = try ImageTrackDevice.create(path: p, size: 64 * mib, policy: "kvimr")
        try d.close()
        #expect(truncate(p, 32 << 20) == 0)
        #expect(openError(p)?.message == "image truncated: \(32 << 20) bytes, superblock needs \(64 << 20)")
        #expect(truncate(p, 100) == 0)
        #expect(openError(p)?.message == "image truncated: 100 bytes, superblock needs 4096")

        let c = tmp.file("c.img")
        try ImageTrackDevice.create(path: c, size: 64 * mib, policy: "kvimr").close()
        let fd = open(c, O_RDWR); var byte: UInt8 = 0x55
        pwrite(fd, &byte, 1, 90); close(fd)
        #expect(openError(c)?.message.contains("checksum mismatch") == true)
    }

    @Test func lockConflict() throws {
        let tmp = TempDir(), p = tmp.file("a.img")
        let d = try ImageTrackDevice.create(path: p, size: 64 * mib, policy: "kvimr")
        #expect(openError(p)?.message.contains("image is in use by another process") == true)
        #expect(openError(p, readOnly: true)?.message.contains("image is in use by another process") == true)
        try d.close()
        let r1 = try ImageTrackDevice.open(path: p, readOnly: true)
        let r2 = try ImageTrackDevice.open(path: p, readOnly: true)     // readers share
        #expect(openError(p)?.message.contains("in use") == true)
        try r1.close(); try r2.close()
        let w = try ImageTrackDevice.open(path: p)
        #expect(deviceError { () throws(DeviceError) in
            _ = try ImageTrackDevice.create(path: p, size: 64 * mib, policy: "kvimr", overwrite: true) }?.message.contains("in use") == true)
        try write(w, 0, 0, pattern(1, sectors: 1))    // the failed overwrite left the image alone
        try w.close()
        #expect(try ImageTrackDevice.open(path: p).superblock.policy == "kvimr")
    }

    @Test func readOnly() throws {
        let tmp = TempDir(), p = tmp.file("a.img")
        let d = try ImageTrackDevice.create(path: p, size: 64 * mib, policy: "kvimr")
        try write(d, 5, 0, pattern(9, sectors: 2))
        try d.close()
        let r = try ImageTrackDevice.open(path: p, readOnly: true)
        #expect(r.readOnly)
        #expect(same(try read(r, 5, 0, sectors: 2), pattern(9, sectors: 2)))
        let e = deviceError { () throws(DeviceError) in try write(r, 5, 0, pattern(1, sectors: 1)) }
        #expect(e?.errno == EROFS && e?.kind == .io)
        #expect(deviceError { () throws(DeviceError) in try writeMeta(r, 0, pattern(1, sectors: 1)) }?.errno == EROFS)
        try r.sync()
        try r.close()
    }

    @Test func boundsAndCounters() throws {
        let tmp = TempDir(), p = tmp.file("a.img")
        let d = try ImageTrackDevice.create(path: p, size: 64 * mib, policy: "kvimr")
        #expect(deviceError { () throws(DeviceError) in try write(d, 24, 0, pattern(0, sectors: 1)) }?.kind == .outOfRange)
        #expect(deviceError { () throws(DeviceError) in try write(d, 1, 456, pattern(0, sectors: 1)) }?.kind == .outOfRange)
        #expect(deviceError { () throws(DeviceError) in try writeMeta(d, d.metaCapacity, pattern(0, sectors: 1)) }?.kind == .outOfRange)
        try write(d, 2, 0, pattern(0, sectors: 3))
        _ = try read(d, 3, 0, sectors: 1)
        try d.sync()
        let c = d.counters()
        #expect(c.bottom.writes == 1 && c.bottom.bytesWritten == 3 * 4096 && c.top.reads == 1 && c.syncs == 1)
        try d.close()
    }

    @Test func hostManagedDamageIsReal() throws {
        let tmp = TempDir(), p = tmp.file("a.img")
        let d = try ImageTrackDevice.create(path: p, size: 64 * mib, policy: "kvimr")
        let top = pattern(4, sectors: 456)
        try write(d, 3, 0, top)
        try write(d, 4, 0, pattern(5, sectors: 10), .deviceManaged)
        #expect(same(try read(d, 3, 0, sectors: 456), top))
        try write(d, 2, 0, pattern(5, sectors: 10), .hostManaged)
        let got = try read(d, 3, 0, sectors: 456)
        #expect(allBytes(got[0..<(9 * 4096)], IMRFormat.damagePattern))   // ceil(10*456/568) = 9 sectors
        #expect(same(got[(9 * 4096)...], top[(9 * 4096)...]))
        try d.close()
    }
}
