import Foundation
import Testing

/// Issue 2, points 2 and 3: ordinary shell tools behave as on the host filesystem, and every
/// byte is there after an unmount and a new mount.
@Suite(.serialized)
struct ShellToolsTests {
    /// The same script run on the host and in the mount must leave the same tree.
    static let script = """
        echo hi > f
        cat f
        mkdir -p a/b/c
        echo data > a/b/c/file
        mv a/b/c/file a/moved
        mv a/b a/renamed_dir
        ln -s moved a/link
        cat a/link
        readlink a/link
        truncate -s 100000 a/moved
        truncate -s 3 a/moved
        truncate -s 5000 sparse
        chmod 600 a/moved
        chmod 750 a/renamed_dir
        mkdir -p x/y/z && touch x/y/z/1 x/y/2 && echo more > x/y/3
        rm -r x
        printf 'abc' >> f
        seq 1 20000 > numbers && sed -i 's/1/one/' numbers
        mv numbers a/renamed_dir/numbers
        ln -s /nonexistent/target dangling
        mkdir empty && rmdir empty
        ls -la . a > /dev/null
        """

    /// Name, type, size (files), mode, link count, link target and content hash of every entry.
    /// (st_blocks is left out: ext4 allocates whole 4 KiB blocks; sparse accounting is issue 6.)
    static let listing = """
        find . -mindepth 1 -not -name '.lsmfs-stats*' | LC_ALL=C sort | while read -r p; do
          t=$(stat -c '%F' "$p")
          case "$t" in
            directory) stat -c '%n %F %a %h' "$p" ;;
            "symbolic link") echo "$(stat -c '%n %F %a' "$p") -> $(readlink "$p")" ;;
            *) echo "$(stat -c '%n %F %s %a %h' "$p") $(md5sum < "$p" | cut -c1-32)" ;;
          esac
        done
        """

    @Test func shellToolsMatchHostAndSurviveRemount() throws {
        let m = try MountedImage()
        defer { m.close() }

        let hostRun = Harness.sh(Self.script, cwd: m.host)
        try #require(hostRun.ok, "script failed on the host: \(hostRun.stderr)")
        let run = m.sh(Self.script)
        #expect(run.ok, "script failed in the mount: \(run.stderr)")
        #expect(run.stdout == hostRun.stdout)
        #expect(run.stdout.hasPrefix("hi\n"))

        // `cp -r` of a real source tree, compared with `diff -r`.
        let cp = m.sh("mkdir -p a/b && cp -r /usr/include/linux a/b/ && diff -r /usr/include/linux a/b/linux")
        #expect(cp.ok, "cp -r / diff -r failed: \(cp.stderr)")

        // A 50 MB file copied and compared with cmp.
        let big = Harness.sh("head -c 50000000 /dev/urandom > '\(m.host)/big' && cp '\(m.host)/big' '\(m.mnt)/big' && cmp '\(m.host)/big' '\(m.mnt)/big'")
        #expect(big.ok, "50 MB copy failed: \(big.stderr)")

        // Host reference tree gets the same extra files so the listings can be compared.
        let hostExtra = Harness.sh("mkdir -p a/b && cp -r /usr/include/linux a/b/ && cp big ../host-big-copy && mv ../host-big-copy big", cwd: m.host)
        try #require(hostExtra.ok)
        let expected = Harness.sh(Self.listing, cwd: m.host)
        let before = m.sh(Self.listing)
        #expect(before.ok, "listing failed: \(before.stderr)")
        #expect(before.stdout == expected.stdout)

        // Unmount, mount again: byte for byte the same.
        try m.unmount()
        #expect(!Harness.isMounted(m.mnt))
        try m.mount()
        let after = m.sh(Self.listing)
        #expect(after.stdout == expected.stdout)
        let again = m.sh("diff -r /usr/include/linux a/b/linux && cmp '\(m.host)/big' big && printf 'hi\\nabc' | cmp - f")
        #expect(again.ok, "after remount: \(again.stderr)")

        // rm -r of everything leaves an empty root.
        let rm = m.sh("rm -r a big f sparse dangling && ls -A | wc -l")
        #expect(rm.ok, "rm -r failed: \(rm.stderr)")
        #expect(rm.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "0")
    }

    @Test func errnoOfCommonMistakes() throws {
        let m = try MountedImage(size: "512M")
        defer { m.close() }
        let long = String(repeating: "n", count: 256)
        let ok255 = String(repeating: "n", count: 255)
        let r = m.sh("""
            fails_with() { local msg="$1"; shift; local out
              if out=$("$@" 2>&1); then echo "unexpected success: $*"; return 1; fi
              case "$out" in *"$msg"*) return 0 ;; *) echo "$*: $out"; return 1 ;; esac; }
            touch \(ok255) && test -f \(ok255)
            fails_with 'File name too long' touch \(long)
            fails_with 'File name too long' mkdir \(long)
            mkdir d && touch d/x
            fails_with 'not empty' rmdir d
            fails_with 'No such file' cat nothing
            fails_with 'File exists' mkdir d
            fails_with 'Not a directory' rmdir \(ok255)
            fails_with 'Is a directory' sh -c 'echo x > d'
            """)
        #expect(r.ok, "errno checks failed: \(r.stdout) \(r.stderr)")
        // The syscall itself: open(O_CREAT) of a 256-byte name is ENAMETOOLONG.
        let fd = open(m.mnt + "/" + long, O_CREAT | O_WRONLY, 0o644)
        let err = errno
        #expect(fd == -1)
        #expect(err == ENAMETOOLONG)
    }
}
