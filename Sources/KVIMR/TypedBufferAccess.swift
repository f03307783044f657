/// `Array.withUnsafe(Mutable)Bytes` rethrow untyped errors; these keep the error type, so the
/// typed-throws code of KVIMR stays typed.
extension Array where Element == UInt8 {
    @inline(__always)
    func withBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        var result: Result<R, E>?
        withUnsafeBytes { p in result = Result { () throws(E) -> R in try body(p) } }
        return try result!.get()
    }

    @inline(__always)
    mutating func withMutableBytes<R, E: Error>(_ body: (UnsafeMutableRawBufferPointer) throws(E) -> R) throws(E) -> R {
        var result: Result<R, E>?
        withUnsafeMutableBytes { p in result = Result { () throws(E) -> R in try body(p) } }
        return try result!.get()
    }
}
