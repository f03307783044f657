import LSMCommon

/// Builds one block of sorted entries (data and index blocks), docs/format/sstable.md "Block".
package struct BlockBuilder {
    private var buffer: [UInt8] = []
    private var restarts: [UInt32] = [0]
    private var counter = 0
    private var lastKey: [UInt8] = []
    package private(set) var entries = 0
    let restartInterval: Int

    package init(restartInterval: Int = LSMFormat.restartInterval) { self.restartInterval = restartInterval }

    package var isEmpty: Bool { entries == 0 }
    /// Size of the block if finished now (without the trailer).
    package var estimatedSize: Int { buffer.count + restarts.count * 4 + 4 }

    /// Adds an entry; keys must arrive in increasing order. Byte layout of an entry:
    ///   [varint shared key bytes][varint unshared key bytes][varint value length]
    ///   [unshared key bytes][value]
    /// Every `restartInterval` entries the key is stored whole (shared = 0): a restart point.
    package mutating func add(_ key: [UInt8], _ value: [UInt8]) {
        var shared = 0
        if counter < restartInterval {
            let n = min(lastKey.count, key.count)
            while shared < n && lastKey[shared] == key[shared] { shared += 1 }
        } else {
            restarts.append(UInt32(buffer.count))
            counter = 0
        }
        buffer.appendVarint(UInt64(shared))
        buffer.appendVarint(UInt64(key.count - shared))
        buffer.appendVarint(UInt64(value.count))
        buffer.append(contentsOf: key[shared...])
        buffer.append(contentsOf: value)
        lastKey = key
        counter += 1
        entries += 1
    }

    /// Finishes the block. Byte layout: [entries][restart offset: 4 LE]×n [n: 4 LE]
    package mutating func finish() -> [UInt8] {
        var out = buffer
        for r in restarts { out.appendLE(r) }
        out.appendLE(UInt32(restarts.count))
        self = BlockBuilder(restartInterval: restartInterval)
        return out
    }
}
