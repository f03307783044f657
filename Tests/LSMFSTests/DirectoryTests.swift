import Glibc
import LSMFS
import SystemPackage
import Testing

@Suite struct DirectoryTests {
    @Test func readdirPagesWithStableOffsets() throws {
        let fs = try Rig.fresh().fs
        let d = try fs.mkdir(root, n("d"), mode: 0o755, caller: me)
        let names = (0..<300).map { "file-\($0)" }  // more than one 128-entry page
        for name in names { _ = try fs.createFile(d.ino, name) }
        for perCall in [1, 7, 1000] {
            let listed = try fs.listAll(d.ino, perCall: perCall)
            #expect(listed.count == 302)
            #expect(Array(listed[0..<2]) == [".", ".."])
            #expect(Set(listed[2...]) == Set(names))
        }
    }

    @Test func readdirResumesMidBatchAndAfterChanges() throws {
        let fs = try Rig.fresh().fs
        for i in 0..<20 { _ = try fs.createFile(root, String(format2(i))) }
        let fh = try fs.opendir(root)
        var first: [DirEntry] = []
        try fs.readdir(fh, offset: 0) { first.append($0); return first.count < 12 }
        // the kernel consumed only 5 of the 12: resume after the 5th
        var rest: [DirEntry] = []
        try fs.readdir(fh, offset: first[4].nextOffset) { rest.append($0); return true }
        let names = (first[0..<5] + rest).map { String(decoding: $0.name, as: UTF8.self) }
        #expect(names == [".", ".."] + (0..<20).map(format2))
        // a name removed before the cursor does not shift the names after it
        try fs.unlink(root, n(format2(0)))
        var again: [DirEntry] = []
        try fs.readdir(fh, offset: rest[10].nextOffset) { again.append($0); return true }
        #expect(again.map { String(decoding: $0.name, as: UTF8.self) } == (14..<20).map(format2))
        fs.releasedir(fh)
    }

    @Test func reservedStatsNamesAreHiddenAndProtected() throws {
        let fs = try Rig.fresh().fs
        let listed = try fs.listAll(root)
        #expect(listed == [".", ".."])
        #expect(throws: errno(EEXIST)) { try fs.createFile(root, ".lsmfs-stats") }
        #expect(throws: errno(EEXIST)) { try fs.mkdir(root, n(".lsmfs-stats.json"), mode: 0o755, caller: me) }
        _ = try fs.createFile(root, "x")
        #expect(throws: errno(EPERM)) { try fs.rename(root, n("x"), root, n(".lsmfs-stats")) }
        #expect(throws: errno(EPERM)) { try fs.unlink(root, n(".lsmfs-stats")) }
        // only at the root
        let d = try fs.mkdir(root, n("d"), mode: 0o755, caller: me)
        _ = try fs.createFile(d.ino, ".lsmfs-stats")
    }
}

func format2(_ i: Int) -> String { i < 10 ? "n0\(i)" : "n\(i)" }
