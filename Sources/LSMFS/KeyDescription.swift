import Glibc

extension FileSystem {
    /// One line describing a stored key/value of the filesystem schema, for `lsmfs dump`:
    /// `inode 17 mode=100644 size=300000 blocks=592 nlink=1 ...`, `dentry 1/"name" -> 17 (reg)`,
    /// `chunk 17#3 65536 bytes`, `orphan 17`, `record ...`; nil for a key outside the schema.
    public static func describe(key: [UInt8], value: [UInt8]) -> String? {
        guard let p = key.first else { return nil }
        switch p {
        case FSFormat.recordKeyPrefix where key.count == 1:
            guard let r = FSRecord.decode(value) else { return "record (undecodable, \(value.count) bytes)" }
            return "record lsmfs v\(r.version) chunk=\(r.chunkSize) inoLimit=\(r.inoLimit)"
        case FSFormat.inodePrefix where key.count == 9:
            let ino = Keys.ino(of: key)!
            guard let r = InodeRecord.decode(value) else { return "inode \(ino) (undecodable, \(value.count) bytes)" }
            var s = "inode \(ino) mode=\(String(r.mode, radix: 8)) uid=\(r.uid) gid=\(r.gid) size=\(r.size)"
            s += " blocks=\(r.blocks) nlink=\(r.nlink) mtime=\(r.mtime.sec).\(r.mtime.nsec)"
            if r.isDirectory { s += " parent=\(r.parent)" }
            if r.isSymlink { s += " -> \(printable(r.inline))" }
            if r.rdev != 0 { s += " rdev=\(r.rdev)" }
            return s
        case FSFormat.dentryPrefix where key.count > 9:
            let parent = Keys.ino(of: key)!
            guard let d = DentryRecord.decode(value) else { return "dentry \(parent)/\(printable(Array(key[9...]))) (undecodable)" }
            return "dentry \(parent)/\(printable(Array(key[9...]))) -> \(d.ino) (\(typeName(d.type)))"
        case FSFormat.chunkPrefix where key.count == FSFormat.chunkKeyLength:
            return "chunk \(Keys.ino(of: key)!)#\(key.readBE(UInt64.self, at: 9)) \(value.count) bytes"
        case FSFormat.chunkPrefix where key.count == FSFormat.patchKeyLength:
            return "chunk \(Keys.ino(of: key)!)#\(key.readBE(UInt64.self, at: 9)) patch block \(key[FSFormat.chunkKeyLength]) \(value.count) bytes"
        case FSFormat.orphanPrefix where key.count == 9:
            return "orphan \(Keys.ino(of: key)!)"
        case FSFormat.xattrPrefix where key.count > 9:
            return "xattr \(Keys.ino(of: key)!) \(printable(Array(key[9...]))) \(value.count) bytes"
        default:
            return nil
        }
    }

    private static func printable(_ b: [UInt8]) -> String {
        var s = "\""
        for c in b {
            if c >= 0x20 && c < 0x7F && c != 0x22 && c != 0x5C { s.unicodeScalars.append(Unicode.Scalar(c)) } else {
                s += "\\x" + (c < 16 ? "0" : "") + String(c, radix: 16)
            }
        }
        return s + "\""
    }

    private static func typeName(_ t: UInt8) -> String {
        switch Int(t) {
        case DT_REG: return "reg"
        case DT_DIR: return "dir"
        case DT_LNK: return "lnk"
        case DT_FIFO: return "fifo"
        case DT_SOCK: return "sock"
        case DT_CHR: return "chr"
        case DT_BLK: return "blk"
        default: return "type \(t)"
        }
    }
}
