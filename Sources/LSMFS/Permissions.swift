import Glibc
import Synchronization
import SystemPackage

/// Permission checks made by the filesystem itself, for mounts where the kernel does not make
/// them (no `default_permissions`; see `Caller.checksAccess`). They follow Linux's VFS rules
/// (`generic_permission`, `may_delete`, `may_create`, `setattr_prepare`, `xattr_permission`)
/// for mode bits, with root (uid 0) standing for the capabilities Linux grants it:
/// CAP_DAC_OVERRIDE (read/write anything, search any directory, execute a file some x bit
/// allows), CAP_FOWNER (chmod/utimes/sticky deletes of others' files), CAP_CHOWN, CAP_FSETID.
///
/// Why in the filesystem: under `default_permissions` every change of a directory (create,
/// unlink, rename, ...) makes the kernel drop the directory's cached mode, and its next
/// permission check costs a GETATTR round trip — one extra request per created or removed
/// file. Checked here, the mode comes from the record the operation reads anyway.
public struct AccessMask: OptionSet, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let read = AccessMask(rawValue: 4)
    public static let write = AccessMask(rawValue: 2)
    public static let exec = AccessMask(rawValue: 1)
}

/// The capabilities (linux/capability.h bit numbers) that override the checks made here.
enum Capability: UInt64 {
    case chown = 0, dacOverride = 1, dacReadSearch = 2, fowner = 3, fsetid = 4, sysAdmin = 21
}

extension Caller {
    var isRoot: Bool { uid == 0 }

    /// Whether the caller holds `cap`: uid 0 holds every one (a uid-0 process that dropped
    /// capabilities is still root here: reading them would cost a /proc read per request);
    /// anyone else by its effective set, read from /proc only when a check would deny.
    func has(_ cap: Capability) -> Bool {
        if isRoot { return true }
        guard let capabilities else { return false }
        return capabilities() & (1 << cap.rawValue) != 0
    }

    /// in_group_p: the primary group or a supplementary one.
    func inGroup(_ gid: UInt32) -> Bool {
        if gid == self.gid { return true }
        return supplementaryGroups?().contains(gid) ?? false
    }
}

extension FileSystem {
    /// Set by the FUSE layer when the kernel accepted FUSE_HANDLE_KILLPRIV_V2: it then sends
    /// no mode change of its own to kill set-ID bits on a write (see `checkSetattr`).
    package static let daemonKillsPrivileges = Atomic<Bool>(false)

    /// Whether `caller` may access `rec` for `want` by its mode bits (Linux's
    /// acl_permission_check plus the root override). Group membership is asked only when the
    /// group and other bits differ in what is wanted.
    static func permits(_ rec: InodeRecord, _ caller: Caller, _ want: AccessMask) -> Bool {
        let mask = want.rawValue & 7
        if caller.isRoot {
            return mask & 1 == 0 || rec.isDirectory || rec.mode & 0o111 != 0
        }
        var mode = rec.mode & 0o777
        if caller.uid == rec.uid {
            mode >>= 6
        } else if mask & (mode ^ (mode >> 3)) != 0 && caller.inGroup(rec.gid) {
            mode >>= 3
        }
        return mask & ~mode == 0 || overrides(rec, caller, mask)
    }

    /// The end of Linux's generic_permission for a caller the mode bits deny: directories
    /// by CAP_DAC_READ_SEARCH (read and search) or CAP_DAC_OVERRIDE; files by
    /// CAP_DAC_READ_SEARCH (read only) or CAP_DAC_OVERRIDE (execute only if some x bit is set).
    private static func overrides(_ rec: InodeRecord, _ caller: Caller, _ mask: UInt32) -> Bool {
        guard let capabilities = caller.capabilities else { return false }
        let caps = capabilities()
        let readSearch = caps & (1 << Capability.dacReadSearch.rawValue) != 0
        let override = caps & (1 << Capability.dacOverride.rawValue) != 0
        if rec.isDirectory { return (mask & 2 == 0 && readSearch) || override }
        if mask == 4 && readSearch { return true }
        return override && (mask & 1 == 0 || rec.mode & 0o111 != 0)
    }

    /// `mode` without set-user-ID, and without set-group-ID when group-executable (without
    /// group x the bit marks mandatory locking and stays): what Linux's kill-privileges clears.
    static func withoutSetID(_ mode: UInt32) -> UInt32 {
        var m = mode & ~UInt32(S_ISUID)
        if m & UInt32(S_ISGID | S_IXGRP) == UInt32(S_ISGID | S_IXGRP) { m &= ~UInt32(S_ISGID) }
        return m
    }

    /// EACCES unless `caller` (when it is checked) may access `rec` for `want`.
    func requireAccess(_ rec: InodeRecord, _ caller: Caller?, _ want: AccessMask) throws(Errno) {
        guard let caller, caller.checksAccess else { return }
        if !FileSystem.permits(rec, caller, want) { throw .access }
    }

    /// Removing (or renaming away) entry `victim` of directory `dir`: write and search
    /// permission on the directory (EACCES), and in a sticky directory only the owner of the
    /// entry or of the directory (EPERM) — Linux's may_delete.
    func requireDelete(dir: InodeRecord, victim: InodeRecord, _ caller: Caller?) throws(Errno) {
        guard let caller, caller.checksAccess else { return }
        try requireAccess(dir, caller, [.write, .exec])
        if dir.mode & UInt32(S_ISVTX) != 0 && caller.uid != victim.uid && caller.uid != dir.uid && !caller.has(.fowner) {
            throw .perm
        }
    }

    /// Owner-only changes (chmod, setting explicit times): the owner or root, else EPERM.
    func requireOwner(_ rec: InodeRecord, _ caller: Caller?) throws(Errno) {
        guard let caller, caller.checksAccess else { return }
        if caller.uid != rec.uid && !caller.has(.fowner) { throw .perm }
    }

    /// The checks of one setattr (Linux's setattr_prepare and may_setattr), given the stored
    /// record; returns the mode to store when a chmod by someone outside the file's group must
    /// lose set-group-ID (Linux clears it silently). `viaHandle`: the request names an open
    /// file (ftruncate, the kernel's own time updates), whose open already checked access.
    func checkSetattr(_ rec: InodeRecord, _ s: SetAttr, _ caller: Caller?, viaHandle: Bool) throws(Errno) -> UInt32? {
        guard let caller, caller.checksAccess else { return nil }
        var mode: UInt32?
        if let m = s.mode {
            let requested = rec.type | (m & 0o7777)
            // Only clearing set-user/group-ID (the kernel's kill-privileges on a write or
            // truncate by someone who may write but does not own the file, without
            // KILLPRIV_V2) is allowed to a non-owner, and only to one who may write the file:
            // anyone else's chmod is EPERM, as on Linux. Under KILLPRIV_V2 the kernel never
            // sends such a chmod (the daemon clears the bits itself, `killSetID`), so a
            // non-owner's mode change is a chmod(2) and EPERM like any other.
            let onlyClearsSetID = requested != rec.mode && requested & ~rec.mode == 0
                && requested | UInt32(S_ISUID | S_ISGID) == rec.mode | UInt32(S_ISUID | S_ISGID)
                && !FileSystem.daemonKillsPrivileges.load(ordering: .relaxed)
            if !onlyClearsSetID || !FileSystem.permits(rec, caller, .write) { try requireOwner(rec, caller) }
            if requested & UInt32(S_ISGID) != 0 && !caller.inGroup(s.gid ?? rec.gid) && !caller.has(.fsetid) {
                mode = requested & ~UInt32(S_ISGID)
            }
        }
        // chown: root only, except a no-op by the owner.
        if let u = s.uid, u != rec.uid || caller.uid != rec.uid, !caller.has(.chown) { throw .perm }
        if let g = s.gid, caller.uid != rec.uid || (g != rec.gid && !caller.inGroup(g)), !caller.has(.chown) {
            // chgrp: the owner, to a group it belongs to (or the current one), or CAP_CHOWN.
            throw .perm
        }
        if s.size != nil && !viaHandle && rec.isRegular {
            try requireAccess(rec, caller, .write)
        }
        if s.atime != nil || s.mtime != nil, !viaHandle {
            // (under the writeback cache the kernel sends utimes(NULL)'s mtime as a time)
            let touch = s.atime == .now && (s.mtime == .now || (s.mtime != nil && usesWritebackCache))
            if touch {
                // utimes(NULL): the owner, root, or anyone who may write the file.
                if caller.uid != rec.uid && !FileSystem.permits(rec, caller, .write) && !caller.has(.fowner) { throw .access }
            } else {
                try requireOwner(rec, caller)
            }
        }
        return mode
    }

    /// open(2) of an existing file: read and/or write permission by the access mode, write for
    /// O_TRUNC; an exec (`__FMODE_EXEC`) needs execute permission only (Linux's open_exec asks
    /// MAY_EXEC alone: an execute-only file runs). Root is let through without a store read
    /// (the kernel itself refuses to exec a regular file no x bit allows).
    package func checkOpen(_ ino: UInt64, flags: Int32, caller: Caller?) throws(Errno) {
        guard let caller, caller.checksAccess, !caller.isRoot, !FileSystem.isPseudo(ino) else { return }
        try requireOpenAccess(try loadInode(ino), flags: flags, caller)
    }

    /// `checkOpen` on a record the caller has loaded (`open` checks the one it reads anyway).
    func requireOpenAccess(_ rec: InodeRecord, flags: Int32, _ caller: Caller?) throws(Errno) {
        guard let caller, caller.checksAccess, !caller.isRoot else { return }
        var want: AccessMask = []
        if flags & FileSystem.fmodeExec != 0 {
            want = .exec
        } else {
            switch flags & O_ACCMODE {
            case O_RDONLY: want.insert(.read)
            case O_WRONLY: want.insert(.write)
            default: want.formUnion([.read, .write])
            }
            if flags & O_TRUNC != 0 { want.insert(.write) }
        }
        try requireAccess(rec, caller, want)
    }

    /// The kernel's `__FMODE_EXEC` open flag (set in f_flags when a file is opened to execute).
    static let fmodeExec: Int32 = 0o40

    /// access(2) and chdir: `mask` of R_OK/W_OK/X_OK (F_OK = 0: existence only).
    package func access(_ ino: UInt64, mask: Int32, caller: Caller) throws(Errno) {
        if FileSystem.isPseudo(ino) {
            if mask & (W_OK | X_OK) != 0 { throw .access }
            return
        }
        let rec = try loadInode(ino)
        // Linux's sb_permission: a read-only filesystem refuses writes to what lives in it
        // (files, directories, symlinks); a FIFO, socket or device node stays writable.
        if mask & W_OK != 0 && options.readOnly && (rec.isRegular || rec.isDirectory || rec.isSymlink) { throw .roFS }
        guard caller.checksAccess else { return }
        // access(2) checks with the real ids and, for a non-root real uid, without
        // capabilities (Linux's access_override_creds). chdir asks the same request (X_OK on
        // a directory) with the capabilities kept; that one case keeps them, so a process
        // holding CAP_DAC_READ_SEARCH can still chdir.
        var c = caller
        if !(mask == X_OK && rec.isDirectory) { c.capabilities = nil }
        if !FileSystem.permits(rec, c, AccessMask(rawValue: UInt32(mask & 7))) { throw .access }
    }

    /// Search permission on directory `parent` for a lookup (root always has it).
    func requireSearch(_ parent: UInt64, _ caller: Caller?) throws(Errno) {
        guard let caller, caller.checksAccess, !caller.isRoot else { return }
        try requireAccess(try loadInode(parent), caller, .exec)
    }

    /// `fs.protected_hardlinks` (read once; on by default on Linux).
    package static let protectedHardlinks: Bool = {
        let fd = Glibc.open("/proc/sys/fs/protected_hardlinks", O_RDONLY)
        guard fd >= 0 else { return false }
        defer { Glibc.close(fd) }
        var c: UInt8 = 0
        return Glibc.read(fd, &c, 1) == 1 && c == UInt8(ascii: "1")
    }()

    /// Linking `rec` under `fs.protected_hardlinks` (Linux's may_linkat, which asks the
    /// filesystem's permission check and so checks nothing on FUSE without
    /// default_permissions): the owner or root, or anyone who may read and write a regular
    /// file that is neither set-user-ID nor executable set-group-ID; else EPERM.
    func requireLinkable(_ rec: InodeRecord, _ caller: Caller?) throws(Errno) {
        guard let caller, caller.checksAccess, !caller.isRoot, caller.uid != rec.uid,
              FileSystem.protectedHardlinks else { return }
        let setID = FileSystem.withoutSetID(rec.mode) != rec.mode
        if (!rec.isRegular || setID || !FileSystem.permits(rec, caller, [.read, .write])) && !caller.has(.fowner) { throw .perm }
    }

    /// Whether a readdirplus may hand `caller` the entries of directory `dir` with their
    /// attributes. Those become kernel dentries that later path walks use without a LOOKUP
    /// (the kernel checks nothing itself here), so only a caller with search permission gets
    /// them, as a lookup would need; anyone else gets the names alone, as a plain readdir.
    package func maySearch(_ dir: UInt64, _ caller: Caller?) -> Bool {
        guard let caller, caller.checksAccess, !caller.isRoot else { return true }
        guard let rec = try? loadInode(dir) else { return false }
        return FileSystem.permits(rec, caller, .exec)
    }

    /// Reading or writing an xattr: `user.*` names need read/write permission on the file and,
    /// in a sticky directory, writes need its owner (Linux's xattr_permission). `trusted.*`
    /// (CAP_SYS_ADMIN), `security.*` and `system.*` are left to the kernel's own checks.
    func requireXattrAccess(_ rec: InodeRecord, _ name: [UInt8], write: Bool, _ caller: Caller?) throws(Errno) {
        guard let caller, caller.checksAccess, name.starts(with: FileSystem.userPrefix) else { return }
        if write && rec.isDirectory && rec.mode & UInt32(S_ISVTX) != 0 && caller.uid != rec.uid && !caller.has(.fowner) {
            throw .perm
        }
        try requireAccess(rec, caller, write ? .write : .read)
    }
}
