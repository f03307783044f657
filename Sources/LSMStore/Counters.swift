import Synchronization

/// Engine counters behind `stats()`; relaxed atomics, updated on the hot paths.
final class Counters: Sendable {
    let flushes = Atomic<UInt64>(0)
    let compactions = Atomic<UInt64>(0)
    let userBytesWritten = Atomic<UInt64>(0)
    let tableBytesWritten = Atomic<UInt64>(0)
    let walBytesWritten = Atomic<UInt64>(0)
    let gets = Atomic<UInt64>(0)
    let tablesProbed = Atomic<UInt64>(0)
    let bloomChecks = Atomic<UInt64>(0)
    let bloomNegatives = Atomic<UInt64>(0)
    let stallMicros = Atomic<UInt64>(0)

}

extension Atomic where Value == UInt64 {
    func bump(_ n: UInt64 = 1) { add(n, ordering: .relaxed) }
    var value: UInt64 { load(ordering: .relaxed) }
}
