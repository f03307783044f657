/// Little helpers to append and read fixed-width integers and varints.
/// On-disk structures are little-endian unless a format document says otherwise;
/// *keys* of the filesystem schema are big-endian so they sort numerically.
extension Array where Element == UInt8 {
    @inlinable public mutating func appendLE<T: FixedWidthInteger>(_ v: T) {
        Swift.withUnsafeBytes(of: v.littleEndian) { append(contentsOf: $0) }
    }
    @inlinable public mutating func appendBE<T: FixedWidthInteger>(_ v: T) {
        Swift.withUnsafeBytes(of: v.bigEndian) { append(contentsOf: $0) }
    }
    @inlinable public mutating func appendVarint(_ v: UInt64) {
        var x = v
        while x >= 0x80 { append(UInt8(truncatingIfNeeded: x) | 0x80); x >>= 7 }
        append(UInt8(x))
    }
}

extension UnsafeRawBufferPointer {
    @inlinable public func readLE<T: FixedWidthInteger>(_: T.Type, at offset: Int) -> T {
        T(littleEndian: loadUnaligned(fromByteOffset: offset, as: T.self))
    }
    @inlinable public func readBE<T: FixedWidthInteger>(_: T.Type, at offset: Int) -> T {
        T(bigEndian: loadUnaligned(fromByteOffset: offset, as: T.self))
    }
    /// Decodes a varint at `offset`, advancing it; nil if truncated or over 10 bytes.
    @inlinable public func readVarint(at offset: inout Int) -> UInt64? {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while offset < count && shift <= 63 {
            let b = self[offset]; offset += 1
            result |= UInt64(b & 0x7F) << shift
            if b < 0x80 { return result }
            shift += 7
        }
        return nil
    }
}

extension Array where Element == UInt8 {
    @inlinable public func readLE<T: FixedWidthInteger>(_: T.Type, at offset: Int) -> T {
        withUnsafeBytes { $0.readLE(T.self, at: offset) }
    }
    @inlinable public func readBE<T: FixedWidthInteger>(_: T.Type, at offset: Int) -> T {
        withUnsafeBytes { $0.readBE(T.self, at: offset) }
    }
}

/// Lexicographic byte comparison (memcmp order), the order of every key in lsmfs.
@inlinable public func compareBytes(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Int {
    let n = Swift.min(a.count, b.count)
    if n > 0 {
        let r = memcmpBytes(a.baseAddress!, b.baseAddress!, n)
        if r != 0 { return r }
    }
    return a.count < b.count ? -1 : (a.count > b.count ? 1 : 0)
}

@inlinable public func compareBytes(_ a: [UInt8], _ b: [UInt8]) -> Int {
    a.withUnsafeBytes { pa in b.withUnsafeBytes { pb in compareBytes(pa, pb) } }
}

@usableFromInline func memcmpBytes(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer, _ n: Int) -> Int {
    var i = 0
    while i + 8 <= n {
        let x = UInt64(bigEndian: a.loadUnaligned(fromByteOffset: i, as: UInt64.self))
        let y = UInt64(bigEndian: b.loadUnaligned(fromByteOffset: i, as: UInt64.self))
        if x != y { return x < y ? -1 : 1 }
        i += 8
    }
    while i < n {
        let x = a.load(fromByteOffset: i, as: UInt8.self), y = b.load(fromByteOffset: i, as: UInt8.self)
        if x != y { return x < y ? -1 : 1 }
        i += 1
    }
    return 0
}
