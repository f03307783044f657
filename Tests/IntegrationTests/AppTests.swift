import Foundation
import Testing

/// Issue 6: "anything that works on ext4 and fails here is a bug". Real applications (git,
/// sqlite3, make + gcc + ar, tar, cp, Python's file idioms) run the same script on the host
/// filesystem and in a mount; the outputs must match line for line. Then the image is
/// unmounted, `lsmfs fsck` must call it clean, and after a new mount the application checks
/// its own data (git fsck, PRAGMA integrity_check, the built binary runs, mmap'd bytes).
@Suite(.serialized)
struct AppTests {
    /// Runs `script` on the host and in the mount (same relative paths), expects the same
    /// output; then unmount, fsck clean, mount again, and `after` must succeed in the mount.
    /// `unprivileged`: the script runs as uid 65534 (setpriv) in directories it owns, on a
    /// mount where the daemon checks permissions for several users.
    func sameAsHost(_ script: String, after: String, expect needle: String? = nil, unprivileged: Bool = false,
                    sourceLocation: SourceLocation = #_sourceLocation) throws {
        let options = unprivileged ? "allow_other,daemon_permissions" : nil
        let m = try MountedImage(size: "1G", options: options)
        defer { m.close() }
        let env = "export HOME='\(m.dir)/home' GIT_CONFIG_NOSYSTEM=1 LC_ALL=C TZ=UTC\nmkdir -p \"$HOME\"\numask 022\n"
        var run = { (dir: String) in Harness.sh(env + script, cwd: dir) }
        if unprivileged {
            let file = m.dir + "/script.sh"
            try (env + script).write(toFile: file, atomically: true, encoding: .utf8)
            let prep = Harness.sh("""
                mkdir -p '\(m.dir)/home' && chown 65534:65534 '\(m.dir)/home' '\(m.host)' '\(m.mnt)'
                chmod 755 '\(m.dir)' '\(file)'
                """)
            try #require(prep.ok, "\(prep.stderr)", sourceLocation: sourceLocation)
            run = { dir in Harness.sh("setpriv --reuid=65534 --regid=65534 --clear-groups bash -e -o pipefail '\(file)'", cwd: dir) }
        }
        let host = run(m.host)
        try #require(host.ok, "host run failed (\(host.status)): \(host.stdout)\n\(host.stderr)", sourceLocation: sourceLocation)
        if let needle { #expect(host.stdout.contains(needle), "host output: \(host.stdout)", sourceLocation: sourceLocation) }
        let got = run(m.mnt)
        #expect(got.ok, "lsmfs run failed (\(got.status)): \(got.stderr)", sourceLocation: sourceLocation)
        Harness.expectSameLines(host: host.stdout, lsmfs: got.stdout, sourceLocation: sourceLocation)
        try m.unmount()
        let fsck = Harness.sh("'\(Harness.binary)' fsck '\(m.image)'", timeout: 120)
        #expect(fsck.status == 0, "fsck: \(fsck.stdout)\n\(fsck.stderr)", sourceLocation: sourceLocation)
        try m.mount(options: options)
        let a = m.sh(env + after)
        #expect(a.ok, "after remount (\(a.status)): \(a.stdout)\n\(a.stderr)", sourceLocation: sourceLocation)
    }

    static let gitEnv = """
        export GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@example.com GIT_COMMITTER_NAME=t GIT_COMMITTER_EMAIL=t@example.com
        export GIT_AUTHOR_DATE='2020-01-01T00:00:00Z' GIT_COMMITTER_DATE='2020-01-01T00:00:00Z'
        """

    /// init, add, commit, branch, checkout, merge, many commits, gc --aggressive, repack,
    /// fsck, stash, worktree, clone; commit ids are deterministic, so they must match the host's.
    @Test func git() throws {
        try sameAsHost(Self.gitEnv + "\n" + #"""
            mkdir repo && cd repo
            git init -q -b main .
            for i in $(seq 1 40); do mkdir -p d$((i%5)); seq $i 2000 > d$((i%5))/f$i.txt; done
            git add -A && git commit -q -m one
            git checkout -q -b feature
            echo change >> d1/f1.txt; git rm -q d2/f2.txt; mkdir -p new; echo n > new/file; chmod +x new/file
            ln -s d1/f1.txt lnk
            git add -A && git commit -q -m two
            git checkout -q main
            test ! -e new/file && test ! -L lnk
            git merge -q --no-edit feature
            test -x new/file && test -L lnk
            for i in $(seq 1 20); do echo $i >> d3/f3.txt; git commit -q -am "c$i"; done
            git status --porcelain | wc -l
            git gc -q --aggressive
            git repack -adq
            git count-objects -v | grep -E '^(count|in-pack|packs):'
            git fsck --strict --no-dangling 2>&1
            git log --oneline | wc -l
            git rev-parse HEAD
            git checkout -q HEAD~5 && git checkout -q main
            echo x >> d4/f4.txt; git stash -q; git status --porcelain | wc -l; git stash pop -q
            git diff --stat | tail -n1
            git checkout -q -- .
            git worktree add -q ../wt feature && ls ../wt | wc -l
            git clone -q . ../clone && git -C ../clone log --oneline | wc -l
            git status --porcelain | wc -l
            """#, after: Self.gitEnv + "\n" + #"""
            cd repo && git fsck --strict --no-dangling && test "$(git status --porcelain | wc -l)" = 0
            test "$(git log --oneline | wc -l)" = 22 && git -C ../clone fsck --strict
            """#, expect: "\n22\n")
    }

    /// The same git workflow as uid 65534 on a mount where the daemon checks permissions
    /// (git's 0444 objects, its lock files and renames, gc's unlinks in its own directories).
    @Test func gitAsUnprivilegedUser() throws {
        try sameAsHost(Self.gitEnv + "\nmkdir repo && cd repo && git init -q -b main . && for i in $(seq 1 30); do seq $i 500 > f$i; done\n"
                       + "git add -A && git commit -q -m one && chmod 600 f1 && echo x >> f2 && git commit -q -am two\n"
                       + "git gc -q && git fsck --strict --no-dangling && git log --oneline | wc -l && git rev-parse HEAD && stat -c %a f1 .git/objects/pack\n",
                       after: "export GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=safe.directory GIT_CONFIG_VALUE_0='*'\n"
                           + "cd repo && git fsck --strict --no-dangling && test -z \"$(git status --porcelain)\"",
                       expect: "2\n", unprivileged: true)
    }

    /// journal_mode=DELETE and WAL: many transactions, VACUUM, concurrent writers and readers
    /// (fcntl locks), a long-lived WAL connection that sees other processes' commits (the -shm
    /// file is mmap'd shared by both); integrity_check after a remount.
    @Test func sqlite() throws {
        try sameAsHost(#"""
            for mode in delete wal; do
              db=t-$mode.db
              sqlite3 $db "PRAGMA journal_mode=$mode; CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, b BLOB); CREATE INDEX tv ON t(v);"
              for i in $(seq 1 150); do
                echo "BEGIN; INSERT INTO t(v,b) VALUES('v$i', randomblob(3000)); INSERT INTO t(v,b) VALUES('w$i', zeroblob(100));"
                echo "UPDATE t SET v=v||'x' WHERE id % 7 = $((i%7)); COMMIT;"
              done | sqlite3 $db
              sqlite3 $db "DELETE FROM t WHERE id % 3 = 0; VACUUM;"
              sqlite3 $db "PRAGMA integrity_check; SELECT count(*), sum(length(b)) FROM t; PRAGMA journal_mode;"
              ( for i in $(seq 1 40); do sqlite3 -cmd '.timeout 10000' $db "INSERT INTO t(v) VALUES('p$i');"; done ) &
              ( for i in $(seq 1 40); do sqlite3 -cmd '.timeout 10000' $db "SELECT count(*) FROM t;" >/dev/null; done ) &
              wait
              sqlite3 $db "PRAGMA integrity_check; SELECT count(*) FROM t;"
            done
            /usr/bin/python3 - <<'EOF'
            import sqlite3, subprocess, os
            a = sqlite3.connect('w.db', isolation_level=None)
            print(a.execute('PRAGMA journal_mode=WAL').fetchone())
            a.execute('CREATE TABLE t(x)')
            a.execute('INSERT INTO t VALUES(-1)')
            for i in range(25):
                subprocess.run(['sqlite3', 'w.db', f'INSERT INTO t VALUES({i})'], check=True)
                n = a.execute('SELECT count(*) FROM t').fetchone()[0]
                assert n == i + 2, (i, n)
            print('wal files', sorted(n for n in os.listdir('.') if n.startswith('w.db')))
            print(a.execute('PRAGMA wal_checkpoint(TRUNCATE)').fetchone())
            a.close()
            EOF
            ls
            """#, after: #"""
            for db in t-delete.db t-wal.db w.db; do test "$(sqlite3 $db 'PRAGMA integrity_check')" = ok; done
            test "$(sqlite3 t-wal.db 'SELECT count(*) FROM t')" = 240 && test "$(sqlite3 w.db 'SELECT count(*) FROM t')" = 26
            sqlite3 t-wal.db "PRAGMA journal_mode" | grep -qx wal
            """#, expect: "ok\n240\n")
    }

    /// A small C project: parallel make, gcc objects, an ar archive, link, run; make's
    /// timestamps (up to date, rebuild after touch), clean and rebuild.
    @Test func makeAndGcc() throws {
        try sameAsHost(#"""
            mkdir -p proj/src proj/lib && cd proj
            echo 'int add(int a, int b) { return a + b; }' > lib/add.c
            echo 'int mul(int a, int b) { return a * b; }' > lib/mul.c
            printf '#include <stdio.h>\nint add(int, int); int mul(int, int);\nint main(void) { printf("%%d %%d\\n", add(2, 3), mul(4, 5)); return 0; }\n' > src/main.c
            printf 'CFLAGS = -O1 -g -Wall\nall: app\nlib/libm2.a: lib/add.o lib/mul.o\n\tar rcs $@ $^\napp: src/main.o lib/libm2.a\n\t$(CC) -o $@ src/main.o -Llib -lm2\nclean:\n\trm -f app src/*.o lib/*.o lib/*.a\n' > Makefile
            make -s -j2
            ./app
            ar t lib/libm2.a
            make -q app && echo up-to-date
            touch -d '2000-01-01' app lib/libm2.a lib/*.o src/main.o && touch -d '2001-01-01' lib/add.c
            make -s; ./app
            make -q app && echo up-to-date-again
            make -s clean; ls src lib
            make -s -j2 && ./app && stat -c %a app
            """#, after: "cd proj && test \"$(./app)\" = '5 20' && make -q app", expect: "5 20\n")
    }

    /// tar round trip of modes (set-ID, sticky), times (ns), symlinks, a hard link, a FIFO,
    /// a sparse file and user xattrs (`--xattrs`); a gzip'd round trip compared with diff -r.
    @Test func tarRoundTrip() throws {
        try sameAsHost(#"""
            mkdir -p src/d/e && cd src
            echo hello > d/a; chmod 640 d/a
            head -c 70000 /dev/zero | tr '\0' x > d/big; chmod 4755 d/big
            ln d/a d/hard; ln -s a d/sym; ln -s ../nowhere d/e/dangle; mkfifo d/fifo
            truncate -s 3M d/sparse; echo tail >> d/sparse
            chmod 1777 d/e; chmod 2750 d
            /usr/bin/python3 -c "import os; os.setxattr('d/a', 'user.color', b'blue'); os.setxattr('d/e', 'user.dir', b'x'*300)"
            touch -h -d '2001-02-03 04:05:06.123456789' d/sym d/a d/big d/e/dangle d/fifo d/sparse
            touch -d '2002-01-01 00:00:00' d/e d
            cd ..
            tar --xattrs --xattrs-include='user.*' -cpf arch.tar -C src d
            mkdir out && tar --xattrs --xattrs-include='user.*' -xpf arch.tar -C out
            cd out
            find d | sort | while read -r p; do stat -c '%n %F %a %h %s %y' "$p"; done
            test "$(stat -c %i d/a)" = "$(stat -c %i d/hard)" && echo hard-linked
            /usr/bin/python3 -c "import os; print(os.getxattr('d/a','user.color'), len(os.getxattr('d/e','user.dir')), os.listxattr('d/a'))"
            cmp d/big ../src/d/big && cmp d/sparse ../src/d/sparse && echo same-bytes
            test "$(du -k d/sparse | cut -f1)" -le 64 && echo sparse-stays-sparse
            cd ..
            tar -tf arch.tar | sort
            tar -czf a.tgz -C src d && mkdir z && tar -xzf a.tgz -C z && diff -r --no-dereference -x fifo src/d z/d && echo gz-same
            tar -cf - -C out d | tar -xf - -C z --overwrite && echo re-extracted
            """#, after: #"""
            cd out && test "$(cat d/hard)" = hello && cmp d/big ../src/d/big
            test "$(stat -c '%a %y' d/big)" = '4755 2001-02-03 04:05:06.123456789 +0000'
            /usr/bin/python3 -c "import os; assert os.getxattr('d/a','user.color') == b'blue'"
            """#, expect: "hard-linked\n")
    }

    /// cp -a (modes, times, links, xattrs), cp --reflink=auto --sparse=always
    /// (copy_file_range, SEEK_DATA/SEEK_HOLE), mv of files and directories across directories.
    @Test func copiesAndMoves() throws {
        try sameAsHost(#"""
            mkdir -p s/sub && echo a > s/a && ln s/a s/sub/ha && ln -s a s/la && chmod 600 s/a
            truncate -s 10M s/sparse && printf 'mid' | dd of=s/sparse bs=1 seek=5000000 conv=notrunc status=none && echo end >> s/sparse
            head -c 300000 /dev/urandom > s/rand
            /usr/bin/python3 -c "import os; os.setxattr('s/a', 'user.k', b'v')"
            touch -h -d '2003-03-03 03:03:03.5' s/a s/rand s/la s/sparse
            cp -a s c
            cp --reflink=auto --sparse=always s/sparse c/sparse2
            cp --sparse=always s/rand c/rand2
            for f in a sub/ha la sparse rand; do stat -c '%n %F %a %h %s %y' c/$f; done
            cmp s/sparse c/sparse2 && cmp s/rand c/rand2 && cmp s/sparse c/sparse && echo same-bytes
            for f in c/sparse2 c/sparse; do test "$(du -k $f | cut -f1)" -le 256 && echo sparse; done
            /usr/bin/python3 -c "import os; print(os.getxattr('c/a','user.k'))"
            /usr/bin/python3 - <<'EOF'
            import os
            fd = os.open('c/sparse2', os.O_RDONLY)
            d = os.lseek(fd, 0, os.SEEK_DATA); h = os.lseek(fd, d, os.SEEK_HOLE)
            print('data', d <= 5000000, 'hole-after', h >= 5000003, 'last', os.lseek(fd, h, os.SEEK_DATA) <= 10485760)
            EOF
            mkdir -p x/y z; echo m > x/y/f; mv x/y z/; mv z/y/f x/g; ls -R x z
            mv c/rand z/ && cmp z/rand s/rand && echo moved
            mv z x/ && ls -R x
            """#, after: "cmp s/sparse c/sparse2 && cmp s/rand x/z/rand && test \"$(cat c/sub/ha)\" = a", expect: "same-bytes\n")
    }

    /// Python's file idioms: shutil.copytree/copy2/move/rmtree, mkstemp + fsync + os.replace,
    /// tempfile objects, flock and fcntl byte-range locks between processes, MAP_SHARED
    /// writes (msync'd and not), O_APPEND from two processes, copy_file_range.
    @Test func pythonFileIdioms() throws {
        try sameAsHost(#"""
            /usr/bin/python3 - <<'EOF'
            import os, shutil, tempfile, fcntl, mmap, subprocess
            out = []
            os.makedirs('tree/a/b')
            for i in range(5):
                with open(f'tree/a/f{i}', 'w') as f: f.write('x' * (i * 1000))
            os.symlink('f1', 'tree/a/l1')
            os.setxattr('tree/a/f1', 'user.t', b'1')
            shutil.copytree('tree', 'tree2', symlinks=True)
            out.append(('copytree', sorted(os.listdir('tree2/a')), os.readlink('tree2/a/l1'), os.getxattr('tree2/a/f1', 'user.t')))
            shutil.copy2('tree/a/f3', 'c3'); out.append(('copy2', os.path.getsize('c3')))
            shutil.move('tree2', 'moved'); out.append(('move', os.path.isdir('moved/a/b')))
            shutil.rmtree('moved'); out.append(('rmtree', os.path.exists('moved')))
            for i in range(30):
                fd, tmp = tempfile.mkstemp(dir='.', prefix='.cfg-')
                with os.fdopen(fd, 'w') as f:
                    f.write(f'version {i}\n'); f.flush(); os.fsync(f.fileno())
                os.replace(tmp, 'config')
            out.append(('replace', open('config').read().strip(), [n for n in os.listdir('.') if n.startswith('.cfg')]))
            with tempfile.TemporaryDirectory(dir='.') as td:
                with tempfile.NamedTemporaryFile(dir=td) as nt:
                    nt.write(b'abc'); nt.flush(); out.append(('named', open(nt.name).read()))
                with tempfile.TemporaryFile(dir=td) as tf:
                    tf.write(b'z' * 100000); tf.seek(0); out.append(('unnamed', len(tf.read())))
            out.append(('tmpdir-gone', [n for n in os.listdir('.') if n.startswith('tmp')]))
            open('lockf', 'w').close()
            fd = os.open('lockf', os.O_RDWR)
            fcntl.flock(fd, fcntl.LOCK_EX)
            out.append(('flock-held', subprocess.run(['flock', '-n', 'lockf', 'true']).returncode))
            fcntl.flock(fd, fcntl.LOCK_UN)
            out.append(('flock-free', subprocess.run(['flock', '-n', 'lockf', 'true']).returncode))
            probe = ("import fcntl, os\nfd = os.open('lockf', os.O_RDWR)\n"
                     "try:\n fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 5, 0); print('got')\n"
                     "except OSError as e: print('busy', e.errno in (11, 13))\n"
                     "fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 5, 20); print('other-range')")
            fcntl.lockf(fd, fcntl.LOCK_EX, 10, 0)
            out.append(('posix-lock', subprocess.run(['/usr/bin/python3', '-c', probe], capture_output=True, text=True).stdout.split()))
            fcntl.lockf(fd, fcntl.LOCK_UN, 10, 0)
            out.append(('posix-unlocked', subprocess.run(['/usr/bin/python3', '-c', probe], capture_output=True, text=True).stdout.split()))
            os.close(fd)
            for name, sync in (('mm', True), ('mm-nosync', False)):
                with open(name, 'wb') as f: f.truncate(3 * 4096 + 100)
                with open(name, 'r+b') as f:
                    m = mmap.mmap(f.fileno(), 0, mmap.MAP_SHARED)
                    m[0:5] = b'hello'; m[8190:8196] = b'across'; m[-3:] = b'end'
                    if sync: m.flush()
                    m.close()
                d = open(name, 'rb').read()
                out.append(('mmap', name, d[0:5], d[8190:8196], d[-3:], len(d)))
            with open('mm', 'r+b') as f:
                m = mmap.mmap(f.fileno(), 0, mmap.MAP_SHARED)
                os.pwrite(f.fileno(), b'WRITE', 100)
                out.append(('mmap-sees-write', m[100:105]))
                m[200:204] = b'MMAP'; m.flush()
                out.append(('read-sees-mmap', os.pread(f.fileno(), 4, 200)))
                m.close()
            open('ap', 'w').close()
            code = "import os, sys\nfd = os.open('ap', os.O_WRONLY | os.O_APPEND)\nfor i in range(300): os.write(fd, sys.argv[1].encode() * 10 + b'\\n')"
            ps = [subprocess.Popen(['/usr/bin/python3', '-c', code, c]) for c in 'AB']
            for p in ps: p.wait()
            lines = open('ap').read().splitlines()
            out.append(('append', len(lines), all(l in ('A' * 10, 'B' * 10) for l in lines)))
            with open('victim', 'w') as f: f.write('old')
            r = open('victim')
            with open('newer', 'w') as f: f.write('new')
            os.rename('newer', 'victim')
            out.append(('rename-over-open', r.read(), open('victim').read()))
            fd1 = os.open('c3', os.O_RDONLY); fd2 = os.open('cfr', os.O_CREAT | os.O_WRONLY, 0o644)
            out.append(('copy_file_range', os.copy_file_range(fd1, fd2, 5000)))
            os.close(fd1); os.close(fd2)
            out.append(('copied', open('cfr').read() == open('c3').read()))
            for o in out: print(*o)
            EOF
            md5sum mm mm-nosync
            """#, after: #"""
            /usr/bin/python3 -c "
            d = open('mm', 'rb').read(); assert d[0:5] == b'hello' and d[100:105] == b'WRITE' and d[200:204] == b'MMAP' and d[-3:] == b'end', d[:10]
            d = open('mm-nosync', 'rb').read(); assert d[0:5] == b'hello' and d[8190:8196] == b'across' and d[-3:] == b'end'
            assert open('config').read() == 'version 29\n'"
            """#, expect: "posix-lock ['busy', 'True', 'other-range']\n")
    }

    /// A shell left in a directory another process removed: stat and open of "." answer
    /// (nlink 0, an empty listing), creating in it is ENOENT, as on ext4.
    @Test func removedWorkingDirectory() throws {
        try sameAsHost(#"""
            /usr/bin/python3 - <<'EOF'
            import os, errno
            def e(f, *a):
                try: r = f(*a); return 'ok' if r is None else r
                except OSError as x: return errno.errorcode[x.errno]
            os.mkdir('gone'); top = os.getcwd(); os.chdir('gone')
            fd = os.open('.', os.O_RDONLY)
            os.rmdir(os.path.join(top, 'gone'))
            st = os.stat('.'); print('stat', st.st_nlink, oct(st.st_mode))
            print('fstat', os.fstat(fd).st_nlink)
            print('open', e(lambda: os.close(os.open('.', os.O_RDONLY | os.O_DIRECTORY))))
            print('list', e(os.listdir, '.'))
            print('create', e(os.open, 'x', os.O_CREAT | os.O_WRONLY))
            print('mkdir', e(os.mkdir, 'y'))
            os.close(fd); os.chdir(top)
            print('gone', os.path.exists('gone'))
            EOF
            """#, after: "test ! -e gone", expect: "stat 0 0o40755\n")
    }
}
