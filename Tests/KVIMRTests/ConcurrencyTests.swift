import Dispatch
import IMRDisk
import KVIMR
import Testing

@Suite struct ConcurrencyTests {
    /// Several threads append, sync and read their own files at once; one more reads stats and
    /// file lists. Every file ends up exactly as its thread wrote it, on tracks of its own.
    @Test func parallelWritersAndReaders() throws {
        let (dev, k) = try makeKVIMR(smallGeometry(tracks: 200))
        let threads = 6
        var numbers: [FileNumber] = []
        for i in 0..<threads { numbers.append(try k.create(kind: .sstable, level: i)) }
        let files = numbers
        DispatchQueue.concurrentPerform(iterations: threads + 1) { t in
            guard t < threads else {
                for _ in 0..<200 { _ = k.stats(); _ = k.files() }
                return
            }
            let n = files[t]
            var size = 0
            for step in 0..<40 {
                let len = 100 + (step * 131 + t * 17) % 2500
                do {
                    try k.append(n, pattern(len, seed: n, from: size))
                    size += len
                    if step % 5 == 4 { try k.sync([n]) }
                    let back = try readRange(k, n, at: max(0, size - 700), count: 700)
                    #expect(back == pattern(min(700, size), seed: n, from: max(0, size - 700)))
                } catch {
                    Issue.record("thread \(t): \(error)")
                    return
                }
            }
        }
        try k.close()
        let k2 = try KVIMR(device: dev.reopened())
        #expect(tracksAreExclusive(k2))
        for n in files {
            let size = Int(try #require(k2.size(n)))
            #expect(size > 0)
            #expect(try readAll(k2, n) == pattern(size, seed: n))
        }
    }
}
