/// Appends little-endian binary fields to a growing byte array.
///
/// The layout primitives of the wire protocol: fixed-width integers and floats in little-endian
/// order, byte strings and UTF-8 strings prefixed by a `UInt32` length, and `[Float]`/`[Double]`
/// as raw little-endian element bytes (one `memcpy` on little-endian hosts).
public struct ByteWriter: Sendable {
    /// The bytes written so far.
    public private(set) var bytes: [UInt8]

    /// Creates an empty writer.
    /// - Parameter capacity: bytes to reserve up front.
    public init(capacity: Int = 64) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    /// The number of bytes written so far.
    public var count: Int { bytes.count }

    /// Appends an integer in little-endian order.
    public mutating func write<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    /// Appends the IEEE-754 bits of a `Float`, little-endian.
    public mutating func write(_ value: Float) { write(value.bitPattern) }

    /// Appends the IEEE-754 bits of a `Double`, little-endian.
    public mutating func write(_ value: Double) { write(value.bitPattern) }

    /// Appends a `Bool` as one byte (0 or 1).
    public mutating func write(_ value: Bool) { bytes.append(value ? 1 : 0) }

    /// Appends raw bytes with no length prefix.
    public mutating func writeRaw(_ raw: some Collection<UInt8>) { bytes.append(contentsOf: raw) }

    /// Appends raw bytes with no length prefix.
    public mutating func writeRaw(_ raw: UnsafeRawBufferPointer) { bytes.append(contentsOf: raw) }

    /// Appends a `UInt32` byte count followed by the bytes.
    public mutating func writeLengthPrefixed(_ raw: some Collection<UInt8>) {
        precondition(raw.count <= UInt32.max, "field longer than 4 GiB")
        write(UInt32(raw.count))
        bytes.append(contentsOf: raw)
    }

    /// Appends a `UInt32` byte count followed by the UTF-8 bytes of `string`.
    public mutating func write(_ string: String) { writeLengthPrefixed(string.utf8) }

    /// Appends an unsigned LEB128 variable-length integer (1 byte below 128).
    public mutating func writeVarint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    /// Appends the elements of `values` as raw little-endian bytes, with no count prefix.
    public mutating func writeRaw(floats values: [Float]) {
        #if _endian(little)
            values.withUnsafeBytes { bytes.append(contentsOf: $0) }
        #else
            for v in values { write(v) }
        #endif
    }

    /// Appends the elements of `values` as raw little-endian bytes, with no count prefix.
    public mutating func writeRaw(doubles values: [Double]) {
        #if _endian(little)
            values.withUnsafeBytes { bytes.append(contentsOf: $0) }
        #else
            for v in values { write(v) }
        #endif
    }

    /// Appends a `UInt32` element count followed by the raw little-endian bytes of `values`.
    public mutating func write(_ values: [Float]) {
        precondition(values.count <= UInt32.max, "array longer than 2^32 elements")
        write(UInt32(values.count))
        writeRaw(floats: values)
    }
}
