/// Scalars the binary coder writes as fixed little-endian bytes (strings as raw UTF-8).
protocol BinaryPrimitive {
    /// The encoded bytes.
    func binaryBytes() -> [UInt8]
    /// Decodes `raw` (the whole content of one value), or returns `nil` if its size is wrong.
    init?(binaryBytes raw: UnsafeRawBufferPointer)
}

extension BinaryPrimitive where Self: FixedWidthInteger {
    func binaryBytes() -> [UInt8] { withUnsafeBytes(of: littleEndian) { Array($0) } }
    init?(binaryBytes raw: UnsafeRawBufferPointer) {
        guard raw.count == MemoryLayout<Self>.size else { return nil }
        self.init(littleEndian: raw.loadUnaligned(as: Self.self))
    }
}

extension Int8: BinaryPrimitive {}
extension Int16: BinaryPrimitive {}
extension Int32: BinaryPrimitive {}
extension Int64: BinaryPrimitive {}
extension UInt8: BinaryPrimitive {}
extension UInt16: BinaryPrimitive {}
extension UInt32: BinaryPrimitive {}
extension UInt64: BinaryPrimitive {}

extension Int: BinaryPrimitive {
    func binaryBytes() -> [UInt8] { Int64(self).binaryBytes() }
    init?(binaryBytes raw: UnsafeRawBufferPointer) {
        guard let v = Int64(binaryBytes: raw), let i = Int(exactly: v) else { return nil }
        self = i
    }
}

extension UInt: BinaryPrimitive {
    func binaryBytes() -> [UInt8] { UInt64(self).binaryBytes() }
    init?(binaryBytes raw: UnsafeRawBufferPointer) {
        guard let v = UInt64(binaryBytes: raw), let u = UInt(exactly: v) else { return nil }
        self = u
    }
}

extension Float: BinaryPrimitive {
    func binaryBytes() -> [UInt8] { bitPattern.binaryBytes() }
    init?(binaryBytes raw: UnsafeRawBufferPointer) {
        guard let bits = UInt32(binaryBytes: raw) else { return nil }
        self.init(bitPattern: bits)
    }
}

extension Double: BinaryPrimitive {
    func binaryBytes() -> [UInt8] { bitPattern.binaryBytes() }
    init?(binaryBytes raw: UnsafeRawBufferPointer) {
        guard let bits = UInt64(binaryBytes: raw) else { return nil }
        self.init(bitPattern: bits)
    }
}

extension Bool: BinaryPrimitive {
    func binaryBytes() -> [UInt8] { [self ? 1 : 0] }
    init?(binaryBytes raw: UnsafeRawBufferPointer) {
        guard raw.count == 1, raw[0] <= 1 else { return nil }
        self = raw[0] == 1
    }
}

extension String: BinaryPrimitive {
    func binaryBytes() -> [UInt8] { Array(utf8) }
    init?(binaryBytes raw: UnsafeRawBufferPointer) {
        guard let s = String(validating: raw, as: UTF8.self) else { return nil }
        self = s
    }
}

/// Arrays of fixed-size scalars, coded as their raw little-endian element bytes in one piece
/// (an 8 MiB `[Float]` is one `memcpy` each way instead of two million container calls).
protocol RawArrayCodable {
    /// The size of ``withRawBytes(_:)``'s bytes.
    var rawByteCount: Int { get }
    /// Calls `body` with the raw little-endian bytes (the array's own storage where it can).
    func withRawBytes(_ body: (UnsafeRawBufferPointer) -> Void)
    /// Decodes `raw`, or returns `nil` if its size is not a multiple of the element size.
    static func fromRaw(_ raw: UnsafeRawBufferPointer) -> Self?
}

/// Element types of ``RawArrayCodable`` arrays.
protocol RawElement: BitwiseCopyable {
    static func fromLittleEndian(_ raw: UnsafeRawBufferPointer, at offset: Int) -> Self
    var littleEndianBytes: [UInt8] { get }
}

extension RawElement where Self: FixedWidthInteger {
    static func fromLittleEndian(_ raw: UnsafeRawBufferPointer, at offset: Int) -> Self {
        Self(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: Self.self))
    }
    var littleEndianBytes: [UInt8] { withUnsafeBytes(of: littleEndian) { Array($0) } }
}

extension Int8: RawElement {}
extension Int16: RawElement {}
extension Int32: RawElement {}
extension Int64: RawElement {}
extension UInt8: RawElement {}
extension UInt16: RawElement {}
extension UInt32: RawElement {}
extension UInt64: RawElement {}
extension Int: RawElement {}
extension UInt: RawElement {}

extension Float: RawElement {
    static func fromLittleEndian(_ raw: UnsafeRawBufferPointer, at offset: Int) -> Float {
        Float(bitPattern: UInt32.fromLittleEndian(raw, at: offset))
    }
    var littleEndianBytes: [UInt8] { bitPattern.littleEndianBytes }
}

extension Double: RawElement {
    static func fromLittleEndian(_ raw: UnsafeRawBufferPointer, at offset: Int) -> Double {
        Double(bitPattern: UInt64.fromLittleEndian(raw, at: offset))
    }
    var littleEndianBytes: [UInt8] { bitPattern.littleEndianBytes }
}

extension Array: RawArrayCodable where Element: RawElement {
    var rawByteCount: Int { count * MemoryLayout<Element>.size }

    func withRawBytes(_ body: (UnsafeRawBufferPointer) -> Void) {
        #if _endian(little)
            withUnsafeBytes(body)
        #else
            flatMap(\.littleEndianBytes).withUnsafeBytes(body)
        #endif
    }

    static func fromRaw(_ raw: UnsafeRawBufferPointer) -> [Element]? {
        let size = MemoryLayout<Element>.size
        guard raw.count % size == 0 else { return nil }
        let count = raw.count / size
        return [Element](unsafeUninitializedCapacity: count) { out, initialized in
            #if _endian(little)
                if count > 0 { UnsafeMutableRawBufferPointer(out).copyMemory(from: raw) }
            #else
                for i in 0..<count { out[i] = Element.fromLittleEndian(raw, at: i * size) }
            #endif
            initialized = count
        }
    }
}
