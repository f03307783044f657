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

/// Replies to a READ with `pieces` (FileSystem.readPieces) as one iovec list: chunk bytes from
/// their arrays, holes from a shared page of zeros. Returns the byte count sent.
func replyPieces(_ req: fuse_req_t?, _ pieces: [ReadPiece]) -> UInt64 {
    var iov: [iovec] = []
    iov.reserveCapacity(pieces.count)
    var total = 0
    func send(_ i: Int) {
        guard i < pieces.count else {
            _ = iov.withUnsafeBufferPointer { fuse_reply_iov(req, $0.baseAddress, Int32($0.count)) }
            return
        }
        switch pieces[i] {
        case .bytes(let chunk, let range):
            chunk.withUnsafeBytes { b in
                iov.append(iovec(iov_base: UnsafeMutableRawPointer(mutating: b.baseAddress! + range.lowerBound), iov_len: range.count))
                total += range.count
                send(i + 1)   // inside: the array's bytes stay put until the reply is sent
            }
        case .zeros(var n):
            while n > 0 {
                let k = min(n, zeroPageBytes)
                iov.append(iovec(iov_base: zeroPage, iov_len: k))
                total += k
                n -= k
            }
            send(i + 1)
        }
    }
    send(0)
    return UInt64(total)
}

/// Zeros for the holes of a READ reply (never written).
private let zeroPageBytes = 64 << 10
private nonisolated(unsafe) let zeroPage: UnsafeMutableRawPointer = {
    let p = UnsafeMutableRawPointer.allocate(byteCount: zeroPageBytes, alignment: 4096)
    p.initializeMemory(as: UInt8.self, repeating: 0, count: zeroPageBytes)
    return p
}()
