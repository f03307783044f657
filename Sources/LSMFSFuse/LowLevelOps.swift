import CFuse
import Glibc
import LSMFS
import SystemPackage

/// The libfuse low-level operations table. Every callback is a capture-free `@convention(c)`
/// thunk: it finds the FileSystem in the request's userdata, calls one FileSystem operation
/// through `serve` (which replies with the errno on failure) and sends exactly one reply.
/// Entry replies (lookup, mkdir, mknod, symlink, link, create) each carry one lookup
/// reference the FileSystem took; forget/forget_multi drop them.
func makeLowLevelOps() -> fuse_lowlevel_ops {
    var ops = fuse_lowlevel_ops()

    ops.`init` = { userdata, conn in
        guard let conn else { return }
        // FUSE_CAP_WRITEBACK_CACHE only when asked (-o writeback_cache): the kernel then owns
        // O_APPEND positions and file sizes between flushes, and the FileSystem must stop
        // applying O_APPEND itself. No FUSE_CAP_EXPORT_SUPPORT (no lookups of "." / "..").
        conn.pointee.want &= ~UInt32(FUSE_CAP_EXPORT_SUPPORT)
        if writebackWanted.load(ordering: .relaxed) && conn.pointee.capable & UInt32(FUSE_CAP_WRITEBACK_CACHE) != 0 {
            conn.pointee.want |= UInt32(FUSE_CAP_WRITEBACK_CACHE)
            if let userdata { Unmanaged<FileSystem>.fromOpaque(userdata).takeUnretainedValue().enableWritebackCache() }
        } else {
            conn.pointee.want &= ~UInt32(FUSE_CAP_WRITEBACK_CACHE)
        }
        // The kernel clears set-user/group-ID bits on write and chown itself (via setattr).
        conn.pointee.want &= ~UInt32(FUSE_CAP_HANDLE_KILLPRIV)
        // No FUSE_CAP_AUTO_INVAL_DATA: with it the kernel re-asks the attributes before each
        // read once a write invalidated them, and drops the file's whole page cache when the
        // mtime moved (every write moves it), so a random reader beside a writer read every
        // page from the daemon again. Every change to a file's data goes through this kernel
        // mount, which keeps its own pages right (written pages are updated, truncate and
        // punch hole drop theirs), so cached pages cannot go stale.
        conn.pointee.want &= ~UInt32(FUSE_CAP_AUTO_INVAL_DATA)
        conn.pointee.max_write = 1 << 20
        conn.pointee.max_readahead = 1 << 20
        let maxRead = maxReadWanted.load(ordering: .relaxed)
        if maxRead != 0 { conn.pointee.max_read = maxRead }
    }

    ops.lookup = { req, parent, name in
        serve(req, .lookup) { fs throws(Errno) in
            do throws(Errno) {
                replyEntry(req, fs, try fs.lookup(parent, nameBytes(name), caller: checkedCaller(req)))
            } catch where error.rawValue == ENOENT {
                // A negative entry the kernel may cache: every create comes through this daemon.
                var e = fuse_entry_param()
                e.ino = 0
                e.entry_timeout = entryTimeout
                fuse_reply_entry(req, &e)
            }
            return 0
        }
    }
    ops.forget = { req, ino, nlookup in
        let fs = fileSystem(req)
        fs.forget(ino, nlookup)
        fs.recordOp(.forget, nanos: 0, failed: false)
        fuse_reply_none(req)
    }
    ops.forget_multi = { req, count, forgets in
        let fs = fileSystem(req)
        if let forgets {
            for i in 0..<count { fs.forget(forgets[i].ino, forgets[i].nlookup) }
        }
        fs.recordOp(.forget, nanos: 0, failed: false)
        fuse_reply_none(req)
    }
    ops.getattr = { req, ino, _ in
        serve(req, .getattr) { fs throws(Errno) in
            replyAttr(req, try fs.getattr(ino))
            return 0
        }
    }
    ops.setattr = { req, ino, attr, toSet, fi in
        serve(req, .setattr) { fs throws(Errno) in
            guard let st = attr?.pointee else { throw Errno(rawValue: EINVAL) }
            var s = SetAttr()
            if toSet & FUSE_SET_ATTR_MODE != 0 { s.mode = st.st_mode }
            if toSet & FUSE_SET_ATTR_UID != 0 { s.uid = st.st_uid }
            if toSet & FUSE_SET_ATTR_GID != 0 { s.gid = st.st_gid }
            if toSet & FUSE_SET_ATTR_SIZE != 0 {
                guard st.st_size >= 0 else { throw Errno(rawValue: EINVAL) }
                s.size = UInt64(st.st_size)
            }
            if toSet & FUSE_SET_ATTR_ATIME_NOW != 0 { s.atime = .now } else if toSet & FUSE_SET_ATTR_ATIME != 0 {
                s.atime = .time(TimeSpec(sec: Int64(st.st_atim.tv_sec), nsec: UInt32(st.st_atim.tv_nsec)))
            }
            if toSet & FUSE_SET_ATTR_MTIME_NOW != 0 { s.mtime = .now } else if toSet & FUSE_SET_ATTR_MTIME != 0 {
                s.mtime = .time(TimeSpec(sec: Int64(st.st_mtim.tv_sec), nsec: UInt32(st.st_mtim.tv_nsec)))
            }
            var a = try fs.setattr(ino, s, caller: checkedCaller(req), viaHandle: fi != nil)
            // Under KILLPRIV_V2 the daemon clears set-ID bits on truncate, and on the empty
            // SETATTR the kernel sends before a write by someone without CAP_FSETID to a
            // set-ID file (its reply carries the new mode to the kernel's cache); see KillPriv.
            // chown(f, -1, -1) sends the same empty SETATTR: only the owner or a writer clears.
            if (s.size != nil || toSet == 0) && killsSetID(req),
               let k = try fs.killSetID(ino, caller: toSet == 0 ? checkedCaller(req) : nil) { a = k }
            replyAttr(req, a)
            return 0
        }
    }
    ops.readlink = { req, ino in
        serve(req, .readlink) { fs throws(Errno) in
            var target = try fs.readlink(ino)
            target.append(0)
            target.withUnsafeBufferPointer { p in
                p.withMemoryRebound(to: CChar.self) { _ = fuse_reply_readlink(req, $0.baseAddress) }
            }
            return 0
        }
    }
    ops.mknod = { req, parent, name, mode, rdev in
        serve(req, .mknod) { fs throws(Errno) in
            replyEntry(req, fs, try fs.mknod(parent, nameBytes(name), mode: mode, rdev: UInt64(rdev), caller: caller(req)))
            return 0
        }
    }
    ops.mkdir = { req, parent, name, mode in
        serve(req, .mkdir) { fs throws(Errno) in
            replyEntry(req, fs, try fs.mkdir(parent, nameBytes(name), mode: mode, caller: caller(req)))
            return 0
        }
    }
    ops.unlink = { req, parent, name in
        serve(req, .unlink) { fs throws(Errno) in
            try fs.unlink(parent, nameBytes(name), caller: checkedCaller(req))
            fuse_reply_err(req, 0)
            return 0
        }
    }
    ops.rmdir = { req, parent, name in
        serve(req, .rmdir) { fs throws(Errno) in
            try fs.rmdir(parent, nameBytes(name), caller: checkedCaller(req))
            fuse_reply_err(req, 0)
            return 0
        }
    }
    ops.symlink = { req, link, parent, name in
        serve(req, .symlink) { fs throws(Errno) in
            replyEntry(req, fs, try fs.symlink(nameBytes(link), parent, nameBytes(name), caller: caller(req)))
            return 0
        }
    }
    ops.rename = { req, parent, name, newParent, newName, flags in
        serve(req, .rename) { fs throws(Errno) in
            // a whiteout is owned by the caller even when the kernel checks permissions
            let who = flags & FileSystem.renameWhiteout != 0 ? caller(req) : checkedCaller(req)
            try fs.rename(parent, nameBytes(name), newParent, nameBytes(newName), flags: flags, caller: who)
            fuse_reply_err(req, 0)
            return 0
        }
    }
    ops.link = { req, ino, newParent, newName in
        serve(req, .link) { fs throws(Errno) in
            replyEntry(req, fs, try fs.link(ino, newParent, nameBytes(newName), caller: checkedCaller(req)))
            return 0
        }
    }
    ops.open = { req, ino, fi in
        serve(req, .open) { fs throws(Errno) in
            guard let fi else { throw Errno(rawValue: EINVAL) }
            let r = try fs.open(ino, flags: fi.pointee.flags, caller: checkedCaller(req))
            if fi.pointee.flags & O_TRUNC != 0 && killsSetID(req) {
                do throws(Errno) { _ = try fs.killSetID(ino) } catch {
                    try? fs.release(r.fh)
                    throw error
                }
            }
            fi.pointee.fh = r.fh
            fi.pointee.direct_io = r.directIO ? 1 : 0
            fi.pointee.keep_cache = r.keepCache ? 1 : 0
            fi.pointee.noflush = r.noFlush ? 1 : 0
            if fuse_reply_open(req, fi) != 0 { try? fs.release(r.fh) }
            return 0
        }
    }
    ops.create = { req, parent, name, mode, fi in
        serve(req, .create) { fs throws(Errno) in
            guard let fi else { throw Errno(rawValue: EINVAL) }
            let r = try fs.create(parent, nameBytes(name), mode: mode, flags: fi.pointee.flags, caller: caller(req))
            fi.pointee.fh = r.fh
            fi.pointee.noflush = 1  // see OpenReply.noFlush
            var e = entryParam(r.attr)
            if fuse_reply_create(req, &e, fi) != 0 {
                fs.forget(r.attr.ino, 1)
                try? fs.release(r.fh)
            }
            return 0
        }
    }
    ops.read = { req, _, size, off, fi in
        serve(req, .read) { fs throws(Errno) in
            guard let fi, off >= 0 else { throw Errno(rawValue: EINVAL) }
            // The bytes are read into the reply's place: a ring worker's entry payload (not
            // copied again when the reply is stored, FuseRing.replyBuffer), else a reused
            // buffer written to /dev/fuse. A file without buffered writes is read from the
            // drive straight into it (FileSystem.readStored).
            func reply(_ buf: UnsafeMutableRawBufferPointer) throws(Errno) -> UInt64 {
                let n = try fs.read(fi.pointee.fh, offset: UInt64(off), into: buf)
                fuse_reply_buf(req, buf.baseAddress?.assumingMemoryBound(to: CChar.self), n)
                return UInt64(n)
            }
            if size > 0, let payload = FuseRing.replyBuffer(size) { return try reply(payload) }
            return try ReadBuffers.shared.with(size: size) { (buf) throws(Errno) -> UInt64 in try reply(buf) }
        }
    }
    ops.write = { req, ino, buf, size, off, fi in
        let fs = fileSystem(req)  // req is freed by the reply; fs outlives it
        serve(req, .write) { fs throws(Errno) in
            guard let fi, off >= 0 else { throw Errno(rawValue: EINVAL) }
            if killsSetID(req) { _ = try fs.killSetID(ino) }  // see KillPriv
            let n = try fs.writeBehind(fi.pointee.fh, offset: UInt64(off), data: UnsafeRawBufferPointer(start: buf, count: size))
            fuse_reply_write(req, n)
            return UInt64(n)
        }
        // A file buffer that filled is stored now, after the reply and after the write was
        // counted (a stats reader that saw the reply sees the count): the writer's next
        // request is taken by another worker meanwhile (see DirtyFile, write-behind), or by a
        // background thread when this is a ring worker (see FuseRing.runDueFlushes).
        FuseRing.runDueFlushes(fs)
    }
    ops.flush = { req, _, fi in
        serve(req, .flush) { fs throws(Errno) in
            try fs.flush(fi?.pointee.fh ?? 0)
            fuse_reply_err(req, 0)
            return 0
        }
    }
    ops.release = { req, _, fi in
        serve(req, .release) { fs throws(Errno) in
            try fs.release(fi?.pointee.fh ?? 0)
            fuse_reply_err(req, 0)
            return 0
        }
    }
    ops.fsync = { req, _, datasync, fi in
        serve(req, .fsync) { fs throws(Errno) in
            try fs.fsync(fi?.pointee.fh, datasync: datasync != 0)
            fuse_reply_err(req, 0)
            return 0
        }
    }
    ops.opendir = { req, ino, fi in
        serve(req, .opendir) { fs throws(Errno) in
            guard let fi else { throw Errno(rawValue: EINVAL) }
            let fh = try fs.opendir(ino, caller: checkedCaller(req))
            fi.pointee.fh = fh
            if fuse_reply_open(req, fi) != 0 { fs.releasedir(fh) }
            return 0
        }
    }
    ops.readdir = { req, _, size, off, fi in
        serve(req, .readdir) { fs throws(Errno) in
            guard let fi else { throw Errno(rawValue: EINVAL) }
            return try replyDirectory(req, fs, fi.pointee.fh, size: size, offset: off) { dst, room, name, e in
                var st = stat()
                st.st_ino = UInt(e.ino)
                st.st_mode = UInt32(e.type) << 12
                return (fuse_add_direntry(req, dst, room, name, &st, off_t(e.nextOffset)), nil)
            }
        }
    }
    ops.readdirplus = { req, ino, size, off, fi in
        serve(req, .readdir) { fs throws(Errno) in
            guard let fi else { throw Errno(rawValue: EINVAL) }
            // Attributes make kernel dentries, reached later without a LOOKUP: only for a
            // caller who may search the directory (FileSystem.maySearch).
            let plus = fs.maySearch(ino, checkedCaller(req))
            return try replyDirectory(req, fs, fi.pointee.fh, size: size, offset: off) { dst, room, name, e in
                // "." and ".." (and every name without `plus`): name and type only (ino 0:
                // no attributes, no reference)
                var ep = fuse_entry_param()
                let attr = plus ? fs.entryAttr(e) : nil
                if let attr {
                    ep = entryParam(attr)
                } else {
                    ep.attr.st_ino = UInt(e.ino)
                    ep.attr.st_mode = UInt32(e.type) << 12
                }
                let need = fuse_add_direntry_plus(req, dst, room, name, &ep, off_t(e.nextOffset))
                // Not sent: give the lookup reference back.
                return (need, attr.map { a in { fs.forget(a.ino, 1) } })
            }
        }
    }
    ops.releasedir = { req, _, fi in
        serve(req, .releasedir) { fs throws(Errno) in
            fs.releasedir(fi?.pointee.fh ?? 0)
            fuse_reply_err(req, 0)
            return 0
        }
    }
    ops.fsyncdir = { req, _, _, _ in
        serve(req, .fsyncdir) { fs throws(Errno) in
            try fs.fsync(nil, datasync: false)
            fuse_reply_err(req, 0)
            return 0
        }
    }
    // Sent only when the kernel does not check permissions (access(2), chdir).
    ops.access = { req, ino, mask in
        serve(req, .access) { fs throws(Errno) in
            try fs.access(ino, mask: mask, caller: caller(req))
            fuse_reply_err(req, 0)
            return 0
        }
    }
    ops.statfs = { req, _ in
        serve(req, .statfs) { fs throws(Errno) in
            let s = fs.statfs()
            var v = statvfs()
            v.f_bsize = UInt(s.blockSize)
            v.f_frsize = UInt(s.blockSize)
            v.f_blocks = UInt(s.blocks)
            v.f_bfree = UInt(s.blocksFree)
            v.f_bavail = UInt(s.blocksAvailable)
            v.f_files = UInt(s.files)
            v.f_ffree = UInt(s.filesFree)
            v.f_favail = UInt(s.filesFree)
            v.f_namemax = UInt(s.nameMax)
            fuse_reply_statfs(req, &v)
            return 0
        }
    }
    installXattrOps(&ops)
    installExtraOps(&ops)
    installControlOps(&ops)
    return ops
}

/// Fills one readdir/readdirplus reply: entries from `offset` until the buffer of `size` bytes is
/// full, then sends it (exactly one reply). `add` writes one entry at `dst` with `room` bytes
/// left and returns the size it needs, plus what to undo when the entry did not fit. One
/// NUL-terminated name buffer is reused for every entry.
private func replyDirectory(
    _ req: fuse_req_t?, _ fs: FileSystem, _ fh: UInt64, size: Int, offset: off_t,
    _ add: (_ dst: UnsafeMutablePointer<CChar>, _ room: Int, _ name: UnsafePointer<CChar>, _ entry: DirEntry)
        -> (need: Int, undo: (() -> Void)?)
) throws(Errno) -> UInt64 {
    var buf = [CChar](repeating: 0, count: size)
    var used = 0
    var name = [CChar](repeating: 0, count: 256)
    try buf.withUnsafeMutableBufferPointer { (p) throws(Errno) in
        try fs.readdir(fh, offset: Int64(offset)) { e in
            if name.count < e.name.count + 1 { name = [CChar](repeating: 0, count: e.name.count + 1) }
            for (i, c) in e.name.enumerated() { name[i] = CChar(bitPattern: c) }
            name[e.name.count] = 0
            let (need, undo) = name.withUnsafeBufferPointer { n in add(p.baseAddress! + used, size - used, n.baseAddress!, e) }
            if need > size - used {
                undo?()
                return false
            }
            used += need
            return true
        }
    }
    fuse_reply_buf(req, buf, used)
    return UInt64(used)
}
