/// The WAL/manifest track reserve.
///
/// KVIMR hands out whole tracks. On a drive filled by tables and value logs, the engine would
/// find no track left for what it needs to *open* (a fresh WAL and manifest before the old ones
/// may go) or to log the edits that free space. So a few tracks are kept back: files of kind
/// `.wal` and `.manifest` may take them (WALs all but the last one, see `floor`), `.sstable`
/// and `.vlog` files see them as used and get `.noSpace` while they are the only free tracks.
/// `freeBytes` in the stats leaves them out.
public enum TrackReserve {
    /// Most tracks ever reserved.
    public static let maxTracks = 4

    /// Tracks reserved on a drive of `trackCount` tracks: none on tiny drives (under 16
    /// tracks), else about a sixth of the drive, at most `maxTracks`.
    public static func tracks(trackCount: Int) -> Int {
        trackCount < 16 ? 0 : min(maxTracks, trackCount / 6)
    }

    /// Free tracks a file of `kind` must leave to others when it takes a new track, with
    /// `reserved` tracks reserved: tables and value logs leave the whole reserve; WALs leave
    /// one track, so a manifest can always be rewritten (at open, the new manifest is written
    /// before the old one goes); manifests may take the last track.
    public static func floor(_ kind: FileKind, reserved: Int) -> Int {
        switch kind {
        case .sstable, .vlog: return reserved
        case .wal: return min(reserved, 1)
        case .manifest: return 0
        }
    }
}
