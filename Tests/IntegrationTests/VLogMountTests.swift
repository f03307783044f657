import Foundation
import Testing

/// Issue 5 through a real mount: large file contents stream through the value log, `lsmfs gc`
/// reaches the daemon and frees segments without touching content, and `rm` of a large file
/// is one range delete whose value-log bytes become collectable garbage.
@Suite(.serialized)
struct VLogMountTests {
    static let mib = 1 << 20
    /// Size of the large file: 300 MiB keeps the whole integration suite well under 20
    /// minutes; LSMFS_VLOG_TEST_MIB=2048 (say) runs the multi-GiB version.
    static let bigMiB = Int(ProcessInfo.processInfo.environment["LSMFS_VLOG_TEST_MIB"] ?? "") ?? 300
    /// A sparse image with room for the file, its overwrites and the GC's moves.
    static var imageSize: String { "\(max(4, bigMiB * 6 / 1024 + 2))G" }

    /// One section of `/.lsmfs-stats.json` as numbers.
    static func stats(_ m: MountedImage, _ section: String) throws -> [String: Double] {
        let r = m.sh("cat .lsmfs-stats.json")
        try #require(r.ok, "cat stats failed: \(r.stderr)")
        let top = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let s = try #require(top[section] as? [String: Any], "no \(section) section in \(r.stdout)")
        return s.compactMapValues { ($0 as? NSNumber)?.doubleValue }
    }

    static func gc(_ m: MountedImage, _ args: String = "") -> Harness.Result {
        Harness.sh("'\(Harness.binary)' gc '\(m.mnt)' \(args)", timeout: 600)
    }

    /// Runs `lsmfs gc MOUNT` until `done` holds for the vLog stats (the engine accounts garbage
    /// as flushes and compactions drop pointers, so it may take a few rounds); returns the
    /// last stats and every gc output.
    /// `between` runs after each round that is not done yet (e.g. keep the filesystem in use).
    static func gcUntil(_ m: MountedImage, rounds: Int = 20, between: String = "sync; sleep 3",
                        _ done: ([String: Double]) -> Bool) throws
        -> (vlog: [String: Double], outputs: [String])
    {
        var outputs: [String] = []
        var v = try stats(m, "vlog")
        for _ in 0..<rounds {
            let r = gc(m)
            try #require(r.ok, "lsmfs gc failed: \(r.stderr)")
            outputs.append(r.stdout + r.stderr)
            v = try stats(m, "vlog")
            if done(v) { break }
            m.sh(between)
        }
        return (v, outputs)
    }

    @Test func largeFileStreamsThroughTheValueLogAndReadsBackAfterRemount() throws {
        let m = try MountedImage(size: Self.imageSize)
        defer { m.close() }
        try #require(m.sh("head -c \(Self.bigMiB)M /dev/urandom > '\(m.host)/big'").ok)
        let v0 = try Self.stats(m, "vlog")
        // `sync big` fsyncs the file (the daemon then stores every buffered write). A bare
        // `sync` is a syncfs the kernel does not pass to a FUSE daemon, and close(2) sends the
        // daemon an asynchronous RELEASE: the counters read right after it may not show the
        // file's last write buffer yet.
        let cp = m.sh("cp '\(m.host)/big' big && sync big", timeout: 600)
        try #require(cp.ok, "cp failed: \(cp.stderr)")
        let v1 = try Self.stats(m, "vlog")
        let grew = (v1["value_bytes_written"] ?? 0) - (v0["value_bytes_written"] ?? 0)
        #expect(grew >= Double(Self.bigMiB * Self.mib), "value log grew by \(grew) bytes only")
        #expect((v1["segments"] ?? 0) >= 1)
        #expect((v1["total_bytes"] ?? 0) >= Double(Self.bigMiB * Self.mib))
        #expect(m.sh("cmp '\(m.host)/big' big").ok)
        try m.unmount()
        try m.mount()
        let r = m.sh("cmp '\(m.host)/big' big", timeout: 600)
        #expect(r.ok, "content differs after remount: \(r.stdout) \(r.stderr)")
        #expect(((try Self.stats(m, "vlog"))["checksum_errors"] ?? 1) == 0)
    }

    @Test func overwritesThenGcFreeSegmentsAndKeepContent() throws {
        let m = try MountedImage(size: Self.imageSize)
        defer { m.close() }
        let size = Self.bigMiB
        try #require(m.sh("head -c \(size)M /dev/urandom > '\(m.host)/a' && head -c \(size)M /dev/urandom > '\(m.host)/b'").ok)
        try #require(m.sh("cp '\(m.host)/a' big && sync big", timeout: 600).ok)
        // Overwrite in place (same chunks, new values) three times: a, b, a, b.
        for src in ["b", "a", "b"] {
            let r = m.sh("dd if='\(m.host)/\(src)' of=big bs=1M conv=notrunc status=none && sync big", timeout: 600)
            try #require(r.ok, "overwrite failed: \(r.stderr)")
        }
        let before = try Self.stats(m, "vlog")
        #expect((before["value_bytes_written"] ?? 0) >= Double(4 * size * Self.mib))
        let live = Double(size * Self.mib)
        let (after, outputs) = try Self.gcUntil(m) { v in
            (v["gc_segments_freed"] ?? 0) >= 1 && (v["total_bytes"] ?? .infinity) <= 2 * live
        }
        #expect(outputs.contains { $0.contains("gc: freed") }, "gc printed: \(outputs)")
        #expect((after["gc_runs"] ?? 0) >= 1)
        #expect((after["gc_segments_freed"] ?? 0) >= 1, "no segment freed: \(after)")
        #expect((after["gc_bytes_freed"] ?? 0) > 0)
        #expect((after["total_bytes"] ?? .infinity) <= 2 * live,
                "value log holds \(after["total_bytes"] ?? -1) bytes for \(live) live")
        #expect((after["garbage_ratio"] ?? 1) < (before["garbage_ratio"] ?? 0) || (before["garbage_ratio"] ?? 0) == 0)
        #expect(m.sh("cmp '\(m.host)/b' big", timeout: 600).ok, "content changed by GC")
        try m.unmount()
        try m.mount()
        #expect(m.sh("cmp '\(m.host)/b' big", timeout: 600).ok, "content changed after GC and remount")
    }

    @Test func rmOfALargeFileIsOneRangeDeleteAndItsValuesBecomeGarbage() throws {
        let m = try MountedImage(size: Self.imageSize)
        defer { m.close() }
        let size = 200
        try #require(m.sh("head -c \(size)M /dev/urandom > big && sync big", timeout: 600).ok)
        let seq0 = try Self.stats(m, "engine")["sequence"] ?? 0
        let v0 = try Self.stats(m, "vlog")
        try #require(m.sh("rm big && sync").ok)
        let seq1 = try Self.stats(m, "engine")["sequence"] ?? 0
        // 3200 chunks: one range delete (plus the inode and dentry) is a handful of sequence
        // numbers, a delete per chunk would be thousands.
        #expect(seq1 - seq0 < 64, "rm took \(seq1 - seq0) sequence numbers")
        // The removed values are counted as garbage when a compaction drops them under the
        // range tombstone; compactions follow writes, so the filesystem stays in use (a small
        // file per round, and each gc flushes the memtable) as it would in real life.
        let (v, outputs) = try Self.gcUntil(m, between: "echo $RANDOM > small.$RANDOM && sync && sleep 1") { v in
            (v["total_bytes"] ?? .infinity) < 0.5 * (v0["total_bytes"] ?? 0)
        }
        #expect((v["total_bytes"] ?? .infinity) < 0.5 * (v0["total_bytes"] ?? 0),
                "the removed file's values were not reclaimed: before \(v0), after \(v), gc said \(outputs.last ?? "")")
        #expect((v["gc_bytes_freed"] ?? 0) >= 0.5 * Double(size * Self.mib))
    }

    @Test func gcRefusesWhatIsNotAnUnmountedImageOrAnLsmfsMount() throws {
        let m = try MountedImage(size: "1G")
        defer { m.close() }
        let inUse = Harness.sh("'\(Harness.binary)' gc '\(m.image)'")
        #expect(!inUse.ok && inUse.stderr.contains("in use"), "\(inUse.stderr)")
        let notOurs = Harness.sh("'\(Harness.binary)' gc '\(m.host)'")
        #expect(!notOurs.ok && notOurs.stderr.contains("not an lsmfs mount"), "\(notOurs.stderr)")
        let missing = Harness.sh("'\(Harness.binary)' gc '\(m.dir)/nope'")
        #expect(!missing.ok && missing.stderr.contains("No such file"), "\(missing.stderr)")
        let badRatio = Harness.sh("'\(Harness.binary)' gc '\(m.mnt)' --min-garbage-ratio 3")
        #expect(!badRatio.ok)
        // On the live mount and, once unmounted, on the image: both succeed (nothing to do).
        let live = Self.gc(m)
        #expect(live.ok && live.stdout.contains("gc: freed"), "\(live.stdout) \(live.stderr)")
        try m.unmount()
        let offline = Harness.sh("'\(Harness.binary)' gc '\(m.image)' --max-segments 1")
        #expect(offline.ok && offline.stdout.contains("vlog after"), "\(offline.stdout) \(offline.stderr)")
    }
}
