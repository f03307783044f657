import IMRDisk

/// What the track allocator knows: which tracks are free (per kind), which are in use, and
/// which were freed but may not be reused yet (pending the next durable checkpoint).
///
/// Every track is in exactly one of three states: free, used, pending. Policies read this
/// state and decide; only `allocate`, `free` and `releasePending` change it.
public struct AllocatorState: Sendable, Equatable {
    public let geometry: IMRGeometry
    public private(set) var freeBottom: TrackSet
    public private(set) var freeTop: TrackSet
    /// Freed tracks waiting for a durable checkpoint that no longer names them.
    public private(set) var pending: TrackSet
    /// Bytes of all pending tracks (free again after the next durable checkpoint).
    public private(set) var pendingCapacityBytes: UInt64 = 0
    /// Used tracks that may still be written: the last track of every unsealed file (a hint
    /// for policies; it never changes which tracks are free).
    public private(set) var open: TrackSet
    /// Expected-lifetime class of the file on each used track (`KVIMRPolicy.lifetimeClass`;
    /// higher lives longer), kept by KVIMR as a hint for compaction-aware policies.
    public private(set) var lifetime: [UInt8]
    /// The allocation clock: tracks allocated so far (since open). Lifetimes are measured in
    /// its ticks, so they scale with the write rate rather than with wall time.
    public private(set) var clock: UInt64 = 0
    /// Clock value when each used track was allocated.
    public private(set) var born: [UInt64]
    /// Learned lifetime per lifetime class (index = class): the running mean, in clock ticks,
    /// of the lifetimes of deleted files of that class (0 = none observed yet), and how many
    /// were observed. Fed by KVIMR on every delete (`observeLifetime`).
    public private(set) var learnedLifetime: [Double]
    public private(set) var observedDeaths: [UInt32]
    public static let lifetimeClasses = 16
    /// Per lifetime class, the last tracks (at most `groupMemory`, oldest first) allocated to
    /// files of that class: a compaction writes its outputs one after another, files next to
    /// each other in key order that a later compaction tends to delete together, so a policy
    /// can keep them side by side.
    public private(set) var recent: [[Int]]
    public static let groupMemory = 8
    /// Free bottoms whose neighbouring tops are free too (`isCleanBottom`), kept up to date by
    /// every change of the free sets so policies need not scan the drive to count them.
    public private(set) var cleanBottomCount = 0

    /// All tracks free except `used`.
    public init(geometry: IMRGeometry, used: some Sequence<Int> = []) {
        self.geometry = geometry
        freeBottom = TrackSet(capacity: geometry.trackCount)
        freeTop = TrackSet(capacity: geometry.trackCount)
        pending = TrackSet(capacity: geometry.trackCount)
        open = TrackSet(capacity: geometry.trackCount)
        lifetime = [UInt8](repeating: 0, count: geometry.trackCount)
        born = [UInt64](repeating: 0, count: geometry.trackCount)
        learnedLifetime = [Double](repeating: 0, count: AllocatorState.lifetimeClasses)
        observedDeaths = [UInt32](repeating: 0, count: AllocatorState.lifetimeClasses)
        recent = [[Int]](repeating: [], count: AllocatorState.lifetimeClasses)
        for t in 0..<geometry.trackCount {
            if geometry.isBottom(t) { freeBottom.insert(t) } else { freeTop.insert(t) }
        }
        for t in used where t >= 0 && t < geometry.trackCount {
            if geometry.isBottom(t) { freeBottom.remove(t) } else { freeTop.remove(t) }
        }
        var b = 0
        while b < geometry.trackCount {
            if isCleanBottom(b) { cleanBottomCount += 1 }
            b += 1
        }
    }

    /// Whether `track` is a free bottom whose neighbouring tops (those on the drive) are free:
    /// writing it meets no valid data.
    public func isCleanBottom(_ track: Int) -> Bool {
        guard track >= 0, track < geometry.trackCount, geometry.isBottom(track),
              freeBottom.contains(track) else { return false }
        return validTopNeighbours(ofBottom: track) == 0
    }

    /// Neighbouring tops of bottom `b` (those on the drive) that may hold valid data: used or
    /// pending.
    func validTopNeighbours(ofBottom b: Int) -> Int {
        var n = 0
        if b > 0, !freeTop.contains(b - 1) { n += 1 }
        if b + 1 < geometry.trackCount, !freeTop.contains(b + 1) { n += 1 }
        return n
    }

    /// Clean bottoms among those whose cleanliness depends on `track` (itself if a bottom,
    /// else its two neighbouring bottoms).
    private func cleanAround(_ track: Int) -> Int {
        if geometry.isBottom(track) { return isCleanBottom(track) ? 1 : 0 }
        return (isCleanBottom(track - 1) ? 1 : 0) + (isCleanBottom(track + 1) ? 1 : 0)
    }

    /// Moves `track` into or out of its free set, keeping `cleanBottomCount`; whether it changed.
    private mutating func setFree(_ track: Int, _ free: Bool) -> Bool {
        let before = cleanAround(track)
        let changed: Bool
        if geometry.isBottom(track) {
            changed = free ? freeBottom.insert(track) : freeBottom.remove(track)
        } else {
            changed = free ? freeTop.insert(track) : freeTop.remove(track)
        }
        if changed { cleanBottomCount += cleanAround(track) - before }
        return changed
    }

    public func isFree(_ track: Int) -> Bool {
        geometry.isBottom(track) ? freeBottom.contains(track) : freeTop.contains(track)
    }
    public func isPending(_ track: Int) -> Bool { pending.contains(track) }
    public func isUsed(_ track: Int) -> Bool {
        track >= 0 && track < geometry.trackCount && !isFree(track) && !isPending(track)
    }

    public var freeCount: Int { freeBottom.count + freeTop.count }
    /// Tracks not free (used or pending), per kind.
    public var bottomTracksInUse: Int { (geometry.trackCount + 1) / 2 - freeBottom.count }
    public var topTracksInUse: Int { geometry.trackCount / 2 - freeTop.count }

    /// Bytes of all free tracks.
    public var freeCapacityBytes: UInt64 {
        UInt64(freeBottom.count) * UInt64(geometry.bottomSectors * geometry.sectorSize)
            + UInt64(freeTop.count) * UInt64(geometry.topSectors * geometry.sectorSize)
    }

    /// Marks `track` as (not) open, i.e. the growing end of an unsealed file.
    public mutating func setOpen(_ track: Int, _ isOpen: Bool) {
        guard track >= 0 && track < geometry.trackCount else { return }
        if isOpen { open.insert(track) } else { open.remove(track) }
    }

    /// Records the lifetime class of the file that owns `track`.
    public mutating func setLifetime(_ track: Int, _ cls: Int) {
        guard track >= 0 && track < geometry.trackCount else { return }
        lifetime[track] = UInt8(clamping: cls)
    }

    /// Marks a free track used; false (and no change) if it was not free.
    @discardableResult
    public mutating func allocate(_ track: Int) -> Bool {
        guard track >= 0 && track < geometry.trackCount else { return false }
        let ok = setFree(track, false)
        if ok { born[track] = clock; clock += 1 }
        return ok
    }

    /// Records that `track` was just allocated to a file of lifetime class `cls` (`recent`).
    public mutating func noteAllocation(_ track: Int, lifetimeClass cls: Int) {
        guard cls >= 0 && cls < AllocatorState.lifetimeClasses else { return }
        recent[cls].append(track)
        if recent[cls].count > AllocatorState.groupMemory { recent[cls].removeFirst() }
    }

    /// Records that a file of lifetime class `cls` lived `ticks` clock ticks (from its first
    /// track to its delete). The learned value is a running mean that follows the workload:
    /// the first observations average plainly, later ones weigh 1/16 each.
    public mutating func observeLifetime(_ cls: Int, _ ticks: UInt64) {
        guard cls >= 0 && cls < AllocatorState.lifetimeClasses else { return }
        observedDeaths[cls] &+= 1
        let w = 1.0 / Double(min(observedDeaths[cls], 16))
        learnedLifetime[cls] += (Double(ticks) - learnedLifetime[cls]) * w
    }

    /// The learned lifetime of class `cls` in clock ticks, nil before any file of it died.
    public func expectedLifetime(_ cls: Int) -> Double? {
        guard cls >= 0 && cls < AllocatorState.lifetimeClasses, observedDeaths[cls] > 0 else { return nil }
        return learnedLifetime[cls]
    }

    /// Age of the data on used track `track`, in clock ticks.
    public func age(_ track: Int) -> UInt64 { clock &- born[track] }

    /// A used track becomes pending; false (and no change) if it was not used.
    @discardableResult
    public mutating func free(_ track: Int) -> Bool {
        guard isUsed(track) else { return false }
        open.remove(track)
        pending.insert(track)
        pendingCapacityBytes += UInt64(geometry.capacity(of: track))
        return true
    }

    /// A used track that no durable checkpoint ever named (allocated, then abandoned after a
    /// failed write) becomes free at once; false (and no change) if it was not used.
    @discardableResult
    public mutating func release(_ track: Int) -> Bool {
        guard isUsed(track) else { return false }
        open.remove(track)
        _ = setFree(track, true)
        return true
    }

    /// Every pending track becomes free (call once a checkpoint without them is durable).
    /// Returns the released tracks.
    @discardableResult
    public mutating func releasePending() -> [Int] {
        let released = pending.members
        pendingCapacityBytes = 0
        for t in released {
            pending.remove(t)
            _ = setFree(t, true)
        }
        return released
    }
}
