import Foundation
import Testing

/// Issue 2, point 4, and clean shutdown on signals.
@Suite(.serialized)
struct DurabilityTests {
    @Test func killDashNineKeepsWhatWasFsynced() throws {
        // Periodic sync off: only explicit syncs make data durable, so the test is honest.
        let m = try MountedImage(size: "1G", options: "sync_interval=0")
        defer { m.close() }
        let prep = Harness.sh("head -c 3000000 /dev/urandom > '\(m.host)/early' && head -c 7000000 /dev/urandom > '\(m.host)/fsynced'")
        try #require(prep.ok)
        let w = m.sh("""
            mkdir -p dir/sub && cp '\(m.host)/early' dir/sub/early && echo small > dir/small && sync
            dd if='\(m.host)/fsynced' of=dir/fsynced bs=1M conv=fsync status=none
            """)
        try #require(w.ok, "writes failed: \(w.stderr)")
        let pid = try #require(m.daemonPID(), "no daemon found")
        #expect(kill(pid, SIGKILL) == 0)
        try m.waitForDaemonExit(seconds: 30)
        Harness.sh("fusermount3 -uz '\(m.mnt)'", timeout: 60)
        #expect(!Harness.isMounted(m.mnt))
        try m.mount(options: "sync_interval=0")
        let check = m.sh("""
            cmp '\(m.host)/fsynced' dir/fsynced
            cmp '\(m.host)/early' dir/sub/early
            test "$(cat dir/small)" = small
            """)
        #expect(check.ok, "after kill -9: \(check.stderr)")
    }

    @Test func sigtermUnmountsCleanlyAndFlushes() throws {
        let m = try MountedImage(size: "1G", options: "sync_interval=0")
        defer { m.close() }
        let w = m.sh("seq 1 100000 > numbers && mkdir -p d && echo unsynced > d/note")
        try #require(w.ok)
        let pid = try #require(m.daemonPID())
        #expect(kill(pid, SIGTERM) == 0)
        try m.waitForDaemonExit(seconds: 60)
        #expect(!Harness.isMounted(m.mnt), "SIGTERM left the mount in place")
        #expect(m.log().contains("closed cleanly"), "log: \(m.log())")
        try m.mount()
        let check = m.sh("test \"$(cat d/note)\" = unsynced && seq 1 100000 | cmp - numbers")
        #expect(check.ok, "after SIGTERM: \(check.stderr)")
    }
}
