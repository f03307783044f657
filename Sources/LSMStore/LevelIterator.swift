/// Concatenates the tables of one sorted, non-overlapping level, opening them lazily; both
/// directions.
package final class LevelIterator: InternalIterator {
    let files: [FileMeta]
    let open: (FileMeta) throws(LSMError) -> Table
    private var index = 0
    private var current: TableIterator?

    /// Whether data blocks read go into the block cache (compactions pass false).
    let fillCache: Bool
    package init(files: [FileMeta], fillCache: Bool = true, open: @escaping (FileMeta) throws(LSMError) -> Table) {
        self.fillCache = fillCache
        self.files = files; self.open = open
    }

    package var isValid: Bool { current?.isValid ?? false }
    package var key: [UInt8] { current!.key }
    package var value: [UInt8] { current!.value }

    /// Opens file `i` (no file when out of range); keeps the iterator when it is already on it.
    private func openFile(_ i: Int) throws(LSMError) {
        guard i >= 0, i < files.count else { index = i; current = nil; return }
        if i == index, current != nil { return }
        index = i
        current = try open(files[i]).iterator(fillCache: fillCache)
    }
    private func skipEmptyForward() throws(LSMError) {
        while let c = current, !c.isValid {
            try openFile(index + 1)
            try current?.seekToFirst()
        }
    }
    private func skipEmptyBackward() throws(LSMError) {
        while let c = current, !c.isValid {
            try openFile(index - 1)
            try current?.seekToLast()
        }
    }
    package func seekToFirst() throws(LSMError) {
        try openFile(0)
        try current?.seekToFirst()
        try skipEmptyForward()
    }
    package func seekToLast() throws(LSMError) {
        try openFile(files.count - 1)
        try current?.seekToLast()
        try skipEmptyBackward()
    }
    package func seek(_ target: [UInt8]) throws(LSMError) {
        var lo = 0, hi = files.count // first file whose largest >= target
        while lo < hi {
            let mid = (lo + hi) / 2
            if InternalKey.compare(files[mid].largest, target) < 0 { lo = mid + 1 } else { hi = mid }
        }
        try openFile(lo)
        try current?.seek(target)
        try skipEmptyForward()
    }
    package func next() throws(LSMError) {
        guard let c = current, c.isValid else { return }
        try c.next()
        try skipEmptyForward()
    }
    package func prev() throws(LSMError) {
        guard let c = current, c.isValid else { return }
        try c.prev()
        try skipEmptyBackward()
    }
}
