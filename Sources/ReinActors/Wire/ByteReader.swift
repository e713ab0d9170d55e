/// Reads little-endian binary fields from a byte buffer, with a bounds check on every read.
///
/// Every read that would run past the end throws ``WireError`` (`.truncated`) instead of trapping,
/// so a reader can be pointed at untrusted input. The reader borrows its buffer: use it only inside
/// the scope that lends the bytes (`ByteReader.read(_:_:)`, `ZMQMessage.withUnsafeBytes`…).
public struct ByteReader {
    /// The bytes being read.
    public let buffer: UnsafeRawBufferPointer
    /// The offset of the next byte to read.
    public private(set) var offset: Int = 0

    /// A reader over `buffer`, starting at offset 0.
    public init(_ buffer: UnsafeRawBufferPointer) { self.buffer = buffer }

    /// Lends a reader over `bytes` to `body`.
    public static func read<R>(_ bytes: [UInt8], _ body: (inout ByteReader) throws -> R) rethrows -> R {
        try bytes.withUnsafeBytes { raw in
            var reader = ByteReader(raw)
            return try body(&reader)
        }
    }

    /// Bytes not read yet.
    public var remaining: Int { buffer.count - offset }

    /// Whether every byte was read.
    public var isAtEnd: Bool { offset >= buffer.count }

    /// Throws unless every byte was read.
    public func expectEnd(_ what: String) throws(WireError) {
        if remaining != 0 { throw WireError(.lengthMismatch, "\(what): \(remaining) trailing bytes") }
    }

    /// Takes the next `count` bytes as a view into the buffer.
    public mutating func take(_ count: Int, _ what: String = "field") throws(WireError)
        -> UnsafeRawBufferPointer
    {
        guard count >= 0, count <= remaining else { throw .truncated(what, need: count, have: remaining) }
        let slice = UnsafeRawBufferPointer(rebasing: buffer[offset..<offset + count])
        offset += count
        return slice
    }

    /// Reads a little-endian integer.
    public mutating func read<T: FixedWidthInteger>(_: T.Type = T.self, _ what: String = "integer")
        throws(WireError)
        -> T
    {
        let raw = try take(MemoryLayout<T>.size, what)
        return T(littleEndian: raw.loadUnaligned(as: T.self))
    }

    /// Reads a little-endian `Float`.
    public mutating func readFloat(_ what: String = "float") throws(WireError) -> Float {
        Float(bitPattern: try read(UInt32.self, what))
    }

    /// Reads a little-endian `Double`.
    public mutating func readDouble(_ what: String = "double") throws(WireError) -> Double {
        Double(bitPattern: try read(UInt64.self, what))
    }

    /// Reads a `Bool` written as one byte; any value other than 0 or 1 is malformed.
    public mutating func readBool(_ what: String = "bool") throws(WireError) -> Bool {
        switch try read(UInt8.self, what) {
        case 0: return false
        case 1: return true
        case let b: throw WireError(.malformed, "\(what): \(b) is not a bool")
        }
    }

    /// Reads a `UInt32` byte count and returns that many bytes as a view into the buffer.
    public mutating func readLengthPrefixed(_ what: String = "bytes") throws(WireError)
        -> UnsafeRawBufferPointer
    {
        let count = try read(UInt32.self, what)
        guard Int(count) <= remaining else {
            throw WireError(.lengthMismatch, "\(what): declares \(count) bytes, \(remaining) left")
        }
        return try take(Int(count), what)
    }

    /// Reads a `UInt32`-length-prefixed UTF-8 string; invalid UTF-8 is malformed.
    public mutating func readString(_ what: String = "string") throws(WireError) -> String {
        let raw = try readLengthPrefixed(what)
        guard let string = String(validating: raw, as: UTF8.self) else {
            throw WireError(.malformed, "\(what): invalid UTF-8")
        }
        return string
    }

    /// Reads an unsigned LEB128 integer (at most 10 bytes; overlong or overflowing is malformed).
    public mutating func readVarint(_ what: String = "varint") throws(WireError) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            let byte = try read(UInt8.self, what)
            if shift == 63 && byte > 1 { throw WireError(.malformed, "\(what): varint overflows 64 bits") }
            result |= UInt64(byte & 0x7f) << shift
            if byte & 0x80 == 0 { return result }
            shift += 7
            if shift > 63 { throw WireError(.malformed, "\(what): varint longer than 10 bytes") }
        }
    }

    /// Reads `count` raw little-endian floats.
    public mutating func readFloats(count: Int, _ what: String = "floats") throws(WireError) -> [Float] {
        guard count >= 0, count <= remaining / MemoryLayout<Float>.size else {
            throw WireError(.lengthMismatch, "\(what): declares \(count) floats, \(remaining) bytes left")
        }
        let raw = try take(count * MemoryLayout<Float>.size, what)
        return Self.floats(raw)
    }

    /// Reads a `UInt32` element count followed by that many raw little-endian floats.
    public mutating func readFloats(_ what: String = "floats") throws(WireError) -> [Float] {
        let count = try read(UInt32.self, what)
        return try readFloats(count: Int(count), what)
    }

    /// The raw little-endian bytes `raw` as floats (`raw.count` must be a multiple of 4).
    static func floats(_ raw: UnsafeRawBufferPointer) -> [Float] {
        let count = raw.count / MemoryLayout<Float>.size
        return [Float](unsafeUninitializedCapacity: count) { out, initialized in
            #if _endian(little)
                if count > 0 {
                    UnsafeMutableRawBufferPointer(out).copyMemory(
                        from: UnsafeRawBufferPointer(rebasing: raw[..<(count * 4)]))
                }
            #else
                for i in 0..<count {
                    out[i] = Float(
                        bitPattern: UInt32(
                            littleEndian: raw.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self)))
                }
            #endif
            initialized = count
        }
    }

    /// The raw little-endian bytes `raw` as doubles (`raw.count` must be a multiple of 8).
    static func doubles(_ raw: UnsafeRawBufferPointer) -> [Double] {
        let count = raw.count / MemoryLayout<Double>.size
        return [Double](unsafeUninitializedCapacity: count) { out, initialized in
            #if _endian(little)
                if count > 0 {
                    UnsafeMutableRawBufferPointer(out).copyMemory(
                        from: UnsafeRawBufferPointer(rebasing: raw[..<(count * 8)]))
                }
            #else
                for i in 0..<count {
                    out[i] = Double(
                        bitPattern: UInt64(
                            littleEndian: raw.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self)))
                }
            #endif
            initialized = count
        }
    }
}
