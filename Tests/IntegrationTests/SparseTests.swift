import Foundation
import Testing

/// fallocate (allocate, keep size, punch hole, zero range), SEEK_DATA/SEEK_HOLE and
/// copy_file_range through a real mount, with st_blocks following the stored data.
@Suite(.serialized)
struct SparseTests {
    @Test func fallocatePunchSeekAndCopy() throws {
        let m = try MountedImage(size: "512M")
        defer { m.close() }
        let script = """
            import os, errno
            def err(f, *a):
                try: return f(*a)
                except OSError as e: return errno.errorcode[e.errno]
            data = bytearray(os.urandom(1 << 20))
            open('f', 'wb').write(data)
            os.system('sync')
            print('blocks0', os.stat('f').st_blocks)
            # punch two whole chunks, then a few bytes inside a chunk
            os.system('fallocate -p -o 65536 -l 131072 f')
            data[65536:196608] = bytes(131072)
            os.system('fallocate -p -o 1000 -l 100 f')
            data[1000:1100] = bytes(100)
            os.system('fallocate -z -o 5000 -l 10 f')
            data[5000:5010] = bytes(10)
            st = os.stat('f')
            print('after-punch', st.st_size, st.st_blocks, open('f', 'rb').read() == bytes(data))
            fd = os.open('f', os.O_RDONLY)
            print('seek', os.lseek(fd, 0, os.SEEK_HOLE), os.lseek(fd, 65536, os.SEEK_DATA),
                  os.lseek(fd, 70000, os.SEEK_DATA), os.lseek(fd, 196608, os.SEEK_HOLE),
                  err(os.lseek, fd, 1 << 20, os.SEEK_DATA), err(os.lseek, fd, 5 << 20, os.SEEK_HOLE))
            os.close(fd)
            # allocation: grows the size unless KEEP_SIZE; reads zeros
            os.system('fallocate -l 4M g')
            os.system('fallocate -n -o 0 -l 8M g')
            print('alloc', os.stat('g').st_size, open('g', 'rb').read() == bytes(4 << 20))
            r = os.system('fallocate -l 100G h 2>/dev/null')
            print('nospc', r != 0)
            r = os.system('fallocate -c -o 0 -l 65536 f 2>/dev/null')
            print('collapse-refused', r != 0, os.stat('f').st_size)
            # copy_file_range
            src = os.open('f', os.O_RDONLY); dst = os.open('copy', os.O_WRONLY | os.O_CREAT, 0o644)
            n = 0
            while True:
                k = os.copy_file_range(src, dst, 1 << 20)
                if k == 0: break
                n += k
            os.close(src); os.close(dst)
            print('copied', n, open('copy', 'rb').read() == bytes(data))
            # a sparse file made by truncate + a write far out has one data region
            with open('s', 'wb') as s:
                s.truncate(10 << 20); s.seek(8 << 20); s.write(b'x' * 10)
            fd = os.open('s', os.O_RDONLY)
            print('sparse', os.lseek(fd, 0, os.SEEK_DATA), os.lseek(fd, 8 << 20, os.SEEK_HOLE), os.stat('s').st_blocks)
            os.close(fd)
            """
        let r = m.sh("/usr/bin/python3 - <<'EOF'\n\(script)\nEOF")
        try #require(r.ok, "\(r.stderr)")
        let out = r.stdout
        #expect(out.contains("blocks0 2048"), "\(out)")
        // Two whole 64 KiB chunks freed (256 blocks); partial punches keep their chunk.
        #expect(out.contains("after-punch 1048576 1792 True"), "\(out)")
        #expect(out.contains("seek 65536 196608 196608 1048576 ENXIO ENXIO"), "\(out)")
        #expect(out.contains("alloc 4194304 True"), "\(out)")
        #expect(out.contains("nospc True"), "\(out)")
        #expect(out.contains("collapse-refused True 1048576"), "\(out)")
        #expect(out.contains("copied 1048576 True"), "\(out)")
        #expect(out.contains("sparse 8388608 8388618 8"), "\(out)")
        try m.unmount()
        let f = Harness.sh("'\(Harness.binary)' fsck '\(m.image)'")
        #expect(f.status == 0, "\(f.stdout)\n\(f.stderr)")
    }

    /// Block writes into holes of a chunk store and count only their blocks (hole chunks,
    /// docs/format/keys.md): `dd seek=15 count=1 bs=4k` on a new file is 8 blocks and 4 KiB
    /// of du, as on the host's ext4; scattered blocks count one page each.
    @Test func blockWritesIntoHolesCountLikeExt4() throws {
        let m = try MountedImage(size: "256M")
        defer { m.close() }
        let cmd = """
            dd if=/dev/zero of=f bs=4k seek=15 count=1 status=none && \
            for s in 3 40 7 12; do dd if=/dev/urandom of=g bs=4k seek=$s count=1 conv=notrunc status=none; done && \
            sync && stat -c '%n %s %b' f g && du -k f g && cmp -n 65536 f /dev/zero && echo zeros
            """
        let host = Harness.sh(cmd, cwd: m.host)
        let got = m.sh(cmd)
        try #require(got.ok, "\(got.stderr)")
        #expect(got.stdout.contains("f 65536 8\n") && got.stdout.contains("g 167936 32\n"), "\(got.stdout)")
        #expect(got.stdout.contains("4\tf\n") && got.stdout.contains("16\tg\n"), "\(got.stdout)")
        #expect(got.stdout == host.stdout, "lsmfs:\n\(got.stdout)host:\n\(host.stdout)")
        #expect(got.stdout.hasSuffix("zeros\n"), "\(got.stdout)")
        // g is random: its bytes through a remount and fsck
        let sum = m.sh("md5sum g").stdout
        try m.unmount()
        let fsck = Harness.sh("'\(Harness.binary)' fsck '\(m.image)'")
        #expect(fsck.status == 0, "\(fsck.stdout)\n\(fsck.stderr)")
        try m.mount()
        #expect(m.sh("md5sum g").stdout == sum)
        #expect(m.sh("stat -c '%b' f g").stdout == "8\n32\n")
        try m.unmount()
    }
}
