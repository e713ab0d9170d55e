import ZeroMQ

/// A compact binary `Encoder` for `Codable` values (the serialization of actor-call arguments and
/// results). Not JSON: see <doc:WireProtocol> for the layout.
///
/// Every value is one *framed value*: a LEB128 varint `n + 1` followed by `n` content bytes, or the
/// single byte `0` for `nil`. Scalars are fixed-size little-endian, strings raw UTF-8, keyed
/// containers a sequence of (key, value) pairs (so fields may be decoded in any order and optional
/// fields may be absent), unkeyed containers a sequence of values. Arrays of fixed-size scalars
/// (`[Float]`, `[Double]`, `[Int32]`…) are one raw little-endian block.
public struct BinaryEncoder {
    /// Context for `encode(to:)` implementations.
    public var userInfo: [CodingUserInfoKey: Any]

    /// An encoder passing `userInfo` to `encode(to:)` implementations.
    public init(userInfo: [CodingUserInfoKey: Any] = [:]) { self.userInfo = userInfo }

    /// Encodes `value` into bytes.
    public func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        let root = EncodingNode()
        try encodeValue(value, into: root, codingPath: [], userInfo: userInfo)
        var writer = ByteWriter(capacity: root.framedSize)
        root.write(framed: &writer)
        return writer.bytes
    }

    /// Encoded values of at least this many bytes are written straight into a buffer libzmq sends
    /// without copying (below it, a byte array that libzmq copies, as cheap for small values).
    public static let zeroCopyBytes = 16 << 10

    /// Encodes `value` into one frame to send. The raw blocks of its arrays (a work order's
    /// weights) are copied once, from the array into the frame: not into a byte array, then into
    /// the encoded bytes, then into libzmq's message.
    public func encodeFrame<T: Encodable>(_ value: T) throws -> WireFrame {
        let root = EncodingNode()
        try encodeValue(value, into: root, codingPath: [], userInfo: userInfo)
        let size = root.framedSize
        guard size >= Self.zeroCopyBytes else {
            var writer = ByteWriter(capacity: size)
            root.write(framed: &writer)
            return WireFrame(writer.bytes)
        }
        return WireFrame(
            ZMQBuffer(count: size) { out in
                var writer = BufferWriter(buffer: out)
                root.write(framed: &writer)
                precondition(writer.offset == size, "encoded \(writer.offset) bytes of \(size)")
            })
    }
}

/// Where ``EncodingNode/write(framed:)`` puts the bytes.
protocol EncodedBytesSink {
    mutating func writeVarint(_ value: UInt64)
    mutating func writeRaw(_ raw: UnsafeRawBufferPointer)
}

extension ByteWriter: EncodedBytesSink {}

/// Writes into a buffer sized beforehand (``EncodingNode/framedSize``).
struct BufferWriter: EncodedBytesSink {
    let buffer: UnsafeMutableRawBufferPointer
    private(set) var offset = 0

    init(buffer: UnsafeMutableRawBufferPointer) { self.buffer = buffer }

    mutating func writeVarint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            buffer[offset] = UInt8(truncatingIfNeeded: v) | 0x80
            offset += 1
            v >>= 7
        }
        buffer[offset] = UInt8(v)
        offset += 1
    }

    mutating func writeRaw(_ raw: UnsafeRawBufferPointer) {
        guard raw.count > 0 else { return }
        precondition(offset + raw.count <= buffer.count, "encoded value larger than its size")
        UnsafeMutableRawBufferPointer(rebasing: buffer[offset..<(offset + raw.count)]).copyMemory(from: raw)
        offset += raw.count
    }
}

/// The encoded tree, built while `encode(to:)` runs and written once its sizes are known.
final class EncodingNode {
    enum Kind { case empty, null, bytes, raw, keyed, unkeyed }
    var kind: Kind = .empty
    var bytes: [UInt8] = []
    /// A ``Kind/raw`` node's array, written from its own storage.
    var raw: (any RawArrayCodable)?
    var keys: [String] = []
    var children: [EncodingNode] = []
    private var cachedSize = -1

    var contentSize: Int {
        if cachedSize >= 0 { return cachedSize }
        let size: Int
        switch kind {
        case .empty, .null: size = 0
        case .bytes: size = bytes.count
        case .raw: size = raw?.rawByteCount ?? 0
        case .keyed:
            size = zip(keys, children).reduce(0) { sum, entry in
                let keyCount = entry.0.utf8.count
                return sum + varintSize(UInt64(keyCount)) + keyCount + entry.1.framedSize
            }
        case .unkeyed: size = children.reduce(0) { $0 + $1.framedSize }
        }
        cachedSize = size
        return size
    }

    var framedSize: Int { kind == .null ? 1 : varintSize(UInt64(contentSize) + 1) + contentSize }

    func write<Sink: EncodedBytesSink>(framed w: inout Sink) {
        if kind == .null {
            w.writeVarint(0)
            return
        }
        w.writeVarint(UInt64(contentSize) + 1)
        switch kind {
        case .empty, .null: break
        case .bytes: bytes.withUnsafeBytes { w.writeRaw($0) }
        case .raw: raw?.withRawBytes { w.writeRaw($0) }
        case .keyed:
            for (key, child) in zip(keys, children) {
                var key = key
                w.writeVarint(UInt64(key.utf8.count))
                key.withUTF8 { w.writeRaw(UnsafeRawBufferPointer($0)) }
                child.write(framed: &w)
            }
        case .unkeyed:
            for child in children { child.write(framed: &w) }
        }
    }

    func become(_ newKind: Kind) {
        if kind == newKind { return }
        kind = newKind
        bytes = []
        raw = nil
        keys = []
        children = []
    }

    func set(bytes: [UInt8]) {
        kind = .bytes
        self.bytes = bytes
    }

    func set(raw: any RawArrayCodable) {
        kind = .raw
        self.raw = raw
    }
}

func varintSize(_ value: UInt64) -> Int {
    var v = value
    var n = 1
    while v >= 0x80 {
        v >>= 7
        n += 1
    }
    return n
}

func encodeValue<T: Encodable>(
    _ value: T, into node: EncodingNode, codingPath: [any CodingKey], userInfo: [CodingUserInfoKey: Any]
) throws {
    // Checked on the static type, not the value: a dynamic cast would look through `Optional`.
    if T.self is any BinaryPrimitive.Type, let primitive = value as? any BinaryPrimitive {
        node.set(bytes: primitive.binaryBytes())
    } else if T.self is any RawArrayCodable.Type, let array = value as? any RawArrayCodable {
        node.set(raw: array)
    } else {
        try value.encode(to: NodeEncoder(node: node, codingPath: codingPath, userInfo: userInfo))
    }
}

struct NodeEncoder: Encoder {
    let node: EncodingNode
    let codingPath: [any CodingKey]
    let userInfo: [CodingUserInfoKey: Any]

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        node.become(.keyed)
        return KeyedEncodingContainer(KeyedNodeEncoder<Key>(encoder: self))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        node.become(.unkeyed)
        return UnkeyedNodeEncoder(encoder: self)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer { SingleNodeEncoder(encoder: self) }

    func child(_ key: any CodingKey) -> (EncodingNode, [any CodingKey]) {
        (EncodingNode(), codingPath + [key])
    }
}

struct KeyedNodeEncoder<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let encoder: NodeEncoder
    var codingPath: [any CodingKey] { encoder.codingPath }

    private func add(_ key: Key) -> EncodingNode { add(key.stringValue) }

    private func add(_ key: String) -> EncodingNode {
        let child = EncodingNode()
        encoder.node.keys.append(key)
        encoder.node.children.append(child)
        return child
    }

    mutating func encodeNil(forKey key: Key) throws { add(key).kind = .null }
    mutating func encode(_ value: Bool, forKey key: Key) throws { add(key).set(bytes: value.binaryBytes()) }
    mutating func encode(_ value: String, forKey key: Key) throws { add(key).set(bytes: value.binaryBytes()) }
    mutating func encode(_ value: Double, forKey key: Key) throws { add(key).set(bytes: value.binaryBytes()) }
    mutating func encode(_ value: Float, forKey key: Key) throws { add(key).set(bytes: value.binaryBytes()) }
    mutating func encode(_ value: Int, forKey key: Key) throws { add(key).set(bytes: value.binaryBytes()) }
    mutating func encode(_ value: Int8, forKey key: Key) throws { add(key).set(bytes: value.binaryBytes()) }
    mutating func encode(_ value: Int16, forKey key: Key) throws { add(key).set(bytes: value.binaryBytes()) }
    mutating func encode(_ value: Int32, forKey key: Key) throws { add(key).set(bytes: value.binaryBytes()) }
    mutating func encode(_ value: Int64, forKey key: Key) throws { add(key).set(bytes: value.binaryBytes()) }
    mutating func encode(_ value: UInt, forKey key: Key) throws { add(key).set(bytes: value.binaryBytes()) }
    mutating func encode(_ value: UInt8, forKey key: Key) throws { add(key).set(bytes: value.binaryBytes()) }
    mutating func encode(_ value: UInt16, forKey key: Key) throws { add(key).set(bytes: value.binaryBytes()) }
    mutating func encode(_ value: UInt32, forKey key: Key) throws { add(key).set(bytes: value.binaryBytes()) }
    mutating func encode(_ value: UInt64, forKey key: Key) throws { add(key).set(bytes: value.binaryBytes()) }

    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        try encodeValue(value, into: add(key), codingPath: codingPath + [key], userInfo: encoder.userInfo)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(
        keyedBy keyType: NestedKey.Type, forKey key: Key
    ) -> KeyedEncodingContainer<NestedKey> {
        NodeEncoder(node: add(key), codingPath: codingPath + [key], userInfo: encoder.userInfo)
            .container(keyedBy: keyType)
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        NodeEncoder(node: add(key), codingPath: codingPath + [key], userInfo: encoder.userInfo)
            .unkeyedContainer()
    }

    mutating func superEncoder() -> any Encoder {
        NodeEncoder(node: add("super"), codingPath: codingPath, userInfo: encoder.userInfo)
    }

    mutating func superEncoder(forKey key: Key) -> any Encoder {
        NodeEncoder(node: add(key), codingPath: codingPath + [key], userInfo: encoder.userInfo)
    }
}

struct UnkeyedNodeEncoder: UnkeyedEncodingContainer {
    let encoder: NodeEncoder
    var codingPath: [any CodingKey] { encoder.codingPath }
    var count: Int { encoder.node.children.count }

    private func add() -> EncodingNode {
        let child = EncodingNode()
        encoder.node.children.append(child)
        return child
    }

    private var indexKey: any CodingKey { IndexKey(count) }

    mutating func encodeNil() throws { add().kind = .null }
    mutating func encode(_ value: Bool) throws { add().set(bytes: value.binaryBytes()) }
    mutating func encode(_ value: String) throws { add().set(bytes: value.binaryBytes()) }
    mutating func encode(_ value: Double) throws { add().set(bytes: value.binaryBytes()) }
    mutating func encode(_ value: Float) throws { add().set(bytes: value.binaryBytes()) }
    mutating func encode(_ value: Int) throws { add().set(bytes: value.binaryBytes()) }
    mutating func encode(_ value: Int8) throws { add().set(bytes: value.binaryBytes()) }
    mutating func encode(_ value: Int16) throws { add().set(bytes: value.binaryBytes()) }
    mutating func encode(_ value: Int32) throws { add().set(bytes: value.binaryBytes()) }
    mutating func encode(_ value: Int64) throws { add().set(bytes: value.binaryBytes()) }
    mutating func encode(_ value: UInt) throws { add().set(bytes: value.binaryBytes()) }
    mutating func encode(_ value: UInt8) throws { add().set(bytes: value.binaryBytes()) }
    mutating func encode(_ value: UInt16) throws { add().set(bytes: value.binaryBytes()) }
    mutating func encode(_ value: UInt32) throws { add().set(bytes: value.binaryBytes()) }
    mutating func encode(_ value: UInt64) throws { add().set(bytes: value.binaryBytes()) }

    mutating func encode<T: Encodable>(_ value: T) throws {
        let path = codingPath + [indexKey]
        try encodeValue(value, into: add(), codingPath: path, userInfo: encoder.userInfo)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type)
        -> KeyedEncodingContainer<NestedKey>
    {
        let path = codingPath + [indexKey]
        return NodeEncoder(node: add(), codingPath: path, userInfo: encoder.userInfo).container(
            keyedBy: keyType)
    }

    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        let path = codingPath + [indexKey]
        return NodeEncoder(node: add(), codingPath: path, userInfo: encoder.userInfo).unkeyedContainer()
    }

    mutating func superEncoder() -> any Encoder {
        let path = codingPath + [indexKey]
        return NodeEncoder(node: add(), codingPath: path, userInfo: encoder.userInfo)
    }
}

struct SingleNodeEncoder: SingleValueEncodingContainer {
    let encoder: NodeEncoder
    var codingPath: [any CodingKey] { encoder.codingPath }

    mutating func encodeNil() throws { encoder.node.become(.null) }
    mutating func encode(_ value: Bool) throws { encoder.node.set(bytes: value.binaryBytes()) }
    mutating func encode(_ value: String) throws { encoder.node.set(bytes: value.binaryBytes()) }
    mutating func encode(_ value: Double) throws { encoder.node.set(bytes: value.binaryBytes()) }
    mutating func encode(_ value: Float) throws { encoder.node.set(bytes: value.binaryBytes()) }
    mutating func encode(_ value: Int) throws { encoder.node.set(bytes: value.binaryBytes()) }
    mutating func encode(_ value: Int8) throws { encoder.node.set(bytes: value.binaryBytes()) }
    mutating func encode(_ value: Int16) throws { encoder.node.set(bytes: value.binaryBytes()) }
    mutating func encode(_ value: Int32) throws { encoder.node.set(bytes: value.binaryBytes()) }
    mutating func encode(_ value: Int64) throws { encoder.node.set(bytes: value.binaryBytes()) }
    mutating func encode(_ value: UInt) throws { encoder.node.set(bytes: value.binaryBytes()) }
    mutating func encode(_ value: UInt8) throws { encoder.node.set(bytes: value.binaryBytes()) }
    mutating func encode(_ value: UInt16) throws { encoder.node.set(bytes: value.binaryBytes()) }
    mutating func encode(_ value: UInt32) throws { encoder.node.set(bytes: value.binaryBytes()) }
    mutating func encode(_ value: UInt64) throws { encoder.node.set(bytes: value.binaryBytes()) }

    mutating func encode<T: Encodable>(_ value: T) throws {
        try encodeValue(value, into: encoder.node, codingPath: codingPath, userInfo: encoder.userInfo)
    }
}

/// The coding key of an unkeyed container element (for error paths).
struct IndexKey: CodingKey {
    let intValue: Int?
    let stringValue: String
    init(_ index: Int) {
        intValue = index
        stringValue = "Index \(index)"
    }
    init?(stringValue: String) { nil }
    init?(intValue: Int) { self.init(intValue) }
}
