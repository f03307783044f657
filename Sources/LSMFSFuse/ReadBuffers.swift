import CFuse
import Glibc
import LSMFS
import Synchronization

/// Reply buffers for READ, reused across requests: a fresh 1 MiB array per read was an mmap,
/// a page fault and a kernel page clear per 4 KiB, plus a zero fill, before any data was
/// copied in. A few buffers of the largest read size are kept (one per concurrent reader).
final class ReadBuffers: Sendable {
    static let shared = ReadBuffers()
    /// Buffers kept for reuse; requests beyond them allocate and free their own.
    static let kept = 8
    /// Free buffers as (address, bytes): raw pointers are not Sendable.
    private let free = Mutex<[(address: UInt, count: Int)]>([])

    /// Runs `body` with a buffer of `size` bytes (uninitialized).
    func with<R, E: Error>(size: Int, _ body: (UnsafeMutableRawBufferPointer) throws(E) -> R) throws(E) -> R {
        let reused = free.withLock { list -> (address: UInt, count: Int)? in
            guard let i = list.firstIndex(where: { $0.count >= size }) else { return nil }
            return list.remove(at: i)
        }
        let b: UnsafeMutableRawBufferPointer
        if let reused {
            b = UnsafeMutableRawBufferPointer(start: UnsafeMutableRawPointer(bitPattern: reused.address), count: reused.count)
        } else {
            b = UnsafeMutableRawBufferPointer.allocate(byteCount: max(size, 1), alignment: 4096)
        }
        defer {
            let entry = (address: UInt(bitPattern: b.baseAddress), count: b.count)
            let kept = free.withLock { list -> Bool in
                guard list.count < ReadBuffers.kept else { return false }
                list.append(entry)
                return true
            }
            if !kept { b.deallocate() }
        }
        return try body(UnsafeMutableRawBufferPointer(rebasing: b[0..<size]))
    }
}
