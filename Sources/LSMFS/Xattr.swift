import Glibc
import LSMStore
import Synchronization
import SystemPackage

/// Which inodes are known to hold extended attributes. The kernel asks for
/// `security.capability` before every write (to know whether it must drop file capabilities);
/// an inode known to hold no xattrs answers ENODATA from memory, without a store lookup.
/// Entries are filled under the inode's stripe lock (so a concurrent setxattr cannot be
/// overtaken by a stale "none") and changed only under it. Bounded: cleared when large.
struct XattrPresence {
    var known: [UInt64: Bool] = [:]
    static let limit = 1 << 18
}

extension FileSystem {
    /// The namespaces lsmfs stores; a name outside them is EOPNOTSUPP, as on ext4. `system.`
    /// (POSIX ACLs) is left out on purpose: lsmfs does not enforce ACLs, and storing
    /// `system.posix_acl_access` as an opaque value would make tools that copy a mode through an
    /// ACL (gnulib's qset_acl in `sed -i`, `cp -p`) believe the mode was set when it was not.
    /// EOPNOTSUPP makes them fall back to fchmod, as on ext4 mounted with `noacl`.
    static let xattrNamespaces: [[UInt8]] = ["user.", "trusted.", "security."].map { Array($0.utf8) }

    func checkXattrName(_ name: [UInt8]) throws(Errno) {
        if name.isEmpty || name.contains(0) { throw .inval }
        if name.count > FSFormat.xattrNameMax { throw Errno(rawValue: ERANGE) }
        guard FileSystem.inStoredNamespace(name) else { throw FileSystem.unstoredNameError(name) }
    }

    /// Why `name` (outside the stored namespaces) is refused: a bare prefix ("user.") names no
    /// attribute, EINVAL as in Linux's xattr_resolve_name; an unknown namespace EOPNOTSUPP.
    static func unstoredNameError(_ name: [UInt8]) -> Errno {
        Errno(rawValue: xattrNamespaces.contains(name) ? EINVAL : EOPNOTSUPP)
    }

    /// Whether `name` is a non-empty name in one of `xattrNamespaces`.
    static func inStoredNamespace(_ name: [UInt8]) -> Bool {
        xattrNamespaces.contains(where: { name.starts(with: $0) && name.count > $0.count })
    }

    /// Whether `ino` holds any xattr (cached). Stripe lock of `ino` held.
    func hasXattrsLocked(_ ino: UInt64) throws(Errno) -> Bool {
        if let k = xattrPresence.withLock({ $0.known[ino] }) { return k }
        var any = false
        try kv("xattrs of \(ino)", { () throws(LSMError) in
            try store.scan(from: Keys.xattrStart(ino), to: Keys.xattrEnd(ino)) { _, _ in any = true; return false }
        })
        setXattrPresence(ino, any)
        return any
    }

    func setXattrPresence(_ ino: UInt64, _ has: Bool) {
        xattrPresence.withLock { p in
            if p.known.count >= XattrPresence.limit { p.known.removeAll(keepingCapacity: true) }
            p.known[ino] = has
        }
    }

    /// setxattr(2): `flags` XATTR_CREATE (EEXIST if present) / XATTR_REPLACE (ENODATA if absent).
    /// Values up to 64 KiB (E2BIG beyond). `user.` attributes only on files and directories.
    package func setxattr(_ ino: UInt64, _ name: [UInt8], _ value: UnsafeRawBufferPointer, flags: Int32,
                          caller: Caller? = nil) throws(Errno) {
        if FileSystem.isPseudo(ino) { throw .perm }
        try checkXattrName(name)
        if value.count > FSFormat.xattrValueMax { throw Errno(rawValue: E2BIG) }
        try requireWritable()
        let bytes = [UInt8](value)
        try withInodeLock(ino) { () throws(Errno) in
            try flushDirtyLocked(ino)  // the record stored below carries the size of stored chunks only
            var rec = try loadInode(ino)
            if name.starts(with: FileSystem.userPrefix) && !rec.isRegular && !rec.isDirectory { throw .perm }
            try requireXattrAccess(rec, name, write: true, caller)
            let key = Keys.xattr(ino, name)
            var exists = false
            if try hasXattrsLocked(ino) {
                exists = try kv("getxattr", { () throws(LSMError) in try store.get(key) }) != nil
            }
            if flags & FSFormat.xattrCreate != 0 && exists { throw .exists }
            if flags & FSFormat.xattrReplace != 0 && !exists { throw Errno(rawValue: ENODATA) }
            rec.ctime = TimeSpec.now()
            var batch = WriteBatch()
            batch.put(key, bytes)
            batch.put(Keys.inode(ino), rec.encode())
            try write(batch, "setxattr")
            setXattrPresence(ino, true)
        }
    }

    /// getxattr(2): the value; ENODATA if absent. The caller applies the size rules
    /// (`size == 0` asks for the length; a smaller buffer is ERANGE).
    /// A name outside the stored namespaces is EOPNOTSUPP, as setxattr says (POSIX ACLs:
    /// `system.posix_acl_access`, as on ext4 mounted `noacl`), and so is an absent
    /// `security.selinux`: lsmfs keeps no security-module labels (a host whose SELinux is on
    /// answers that name in the kernel and never asks), only values stored explicitly.
    /// "Unsupported" rather than "absent" matters for speed: `ls -l` (coreutils) then stops
    /// asking for that device, instead of two round trips per listed file.
    package func getxattr(_ ino: UInt64, _ name: [UInt8], caller: Caller? = nil) throws(Errno) -> [UInt8] {
        if FileSystem.isPseudo(ino) { throw Errno(rawValue: ENODATA) }
        if name.isEmpty || name.count > FSFormat.xattrNameMax { throw Errno(rawValue: name.isEmpty ? EINVAL : ERANGE) }
        guard FileSystem.inStoredNamespace(name) else { throw FileSystem.unstoredNameError(name) }
        if let caller, caller.checksAccess, name.starts(with: FileSystem.userPrefix) {
            try requireXattrAccess(try loadInode(ino), name, write: false, caller)
        }
        let absent = Errno(rawValue: name == FileSystem.selinuxName ? EOPNOTSUPP : ENODATA)
        // Fast path: an inode known to hold no xattrs (the per-write security.capability probe).
        if xattrPresence.withLock({ $0.known[ino] }) == false { throw absent }
        let has = try withInodeLock(ino) { () throws(Errno) -> Bool in try hasXattrsLocked(ino) }
        if !has { throw absent }
        guard let v = try kv("getxattr", { () throws(LSMError) in try store.get(Keys.xattr(ino, name)) }) else {
            _ = try loadInode(ino)
            throw absent
        }
        return v
    }

    /// listxattr(2): every name, each followed by a NUL. `trusted.*` names are listed only to
    /// root (CAP_SYS_ADMIN), as ext4 and XFS do.
    package func listxattr(_ ino: UInt64, caller: Caller = .process) throws(Errno) -> [UInt8] {
        if FileSystem.isPseudo(ino) { return [] }
        _ = try loadInode(ino)
        if xattrPresence.withLock({ $0.known[ino] }) == false { return [] }
        var out: [UInt8] = []
        var any = false
        try kv("listxattr", { () throws(LSMError) in
            try store.scan(from: Keys.xattrStart(ino), to: Keys.xattrEnd(ino)) { key, _ in
                any = true
                if caller.uid != 0 && key[9...].starts(with: FileSystem.trustedPrefix) { return true }
                out.append(contentsOf: key[9...])
                out.append(0)
                return true
            }
        })
        if !any { try withInodeLock(ino) { () throws(Errno) in _ = try hasXattrsLocked(ino) } }
        return out
    }

    /// removexattr(2): ENODATA if absent.
    package func removexattr(_ ino: UInt64, _ name: [UInt8], caller: Caller? = nil) throws(Errno) {
        if FileSystem.isPseudo(ino) { throw .perm }
        if name.isEmpty || name.count > FSFormat.xattrNameMax { throw Errno(rawValue: name.isEmpty ? EINVAL : ERANGE) }
        guard FileSystem.inStoredNamespace(name) else { throw FileSystem.unstoredNameError(name) }
        try requireWritable()
        try withInodeLock(ino) { () throws(Errno) in
            // (mode and owner: the stored record, no wait for a write-behind of the file)
            try requireXattrAccess(try loadInode(ino, dirty: .some(nil)), name, write: true, caller)
            let has = try hasXattrsLocked(ino)
            let key = Keys.xattr(ino, name)
            if !has { throw Errno(rawValue: ENODATA) }
            if try kv("getxattr", { () throws(LSMError) in try store.get(key) }) == nil { throw Errno(rawValue: ENODATA) }
            // Buffered writes are stored only once there is something to remove (`killSetID`
            // asks for security.capability before each write by non-root to a file with
            // xattrs: ENODATA must not store the file's buffer every time).
            try flushDirtyLocked(ino)  // the record stored below carries the size of stored chunks only
            var rec = try loadInode(ino)
            rec.ctime = TimeSpec.now()
            var batch = WriteBatch()
            batch.delete(key)
            batch.put(Keys.inode(ino), rec.encode())
            try write(batch, "removexattr")
            // Whether others remain is found on the next question.
            xattrPresence.withLock { _ = $0.known.removeValue(forKey: ino) }
        }
    }

    /// Drops `security.capability` (Linux's killpriv on write/truncate/chown). Stripe lock held;
    /// adds to `batch`. Cheap when the inode is known to hold no xattrs.
    func addKillCapability(_ ino: UInt64, _ batch: inout WriteBatch) throws(Errno) {
        guard try hasXattrsLocked(ino) else { return }
        batch.delete(Keys.xattr(ino, FileSystem.capabilityName))
        xattrPresence.withLock { _ = $0.known.removeValue(forKey: ino) }
    }

    static let userPrefix: [UInt8] = Array("user.".utf8)
    static let trustedPrefix: [UInt8] = Array("trusted.".utf8)
    static let capabilityName: [UInt8] = Array("security.capability".utf8)
    static let selinuxName: [UInt8] = Array("security.selinux".utf8)
}
