/// Decodes values written by ``BinaryEncoder``.
///
/// Hostile input never traps: framing errors throw ``WireError``, type mismatches and missing
/// keys throw `DecodingError`.
public struct BinaryDecoder {
    /// Context for `init(from:)` implementations (e.g. the actor system that resolves actor
    /// references, under `CodingUserInfoKey.actorSystemKey`).
    public var userInfo: [CodingUserInfoKey: Any]

    /// A decoder passing `userInfo` to `init(from:)` implementations.
    public init(userInfo: [CodingUserInfoKey: Any] = [:]) { self.userInfo = userInfo }

    /// Decodes a `T` from `raw`, which must hold exactly one framed value.
    public func decode<T: Decodable>(_ type: T.Type, from raw: UnsafeRawBufferPointer) throws -> T {
        var reader = ByteReader(raw)
        let content = try reader.readFramed("value")
        try reader.expectEnd("value")
        return try decodeValue(
            T.self, from: DecodingSlice(buffer: raw, content: content), codingPath: [], userInfo: userInfo)
    }

    /// Decodes a `T` from `bytes`, which must hold exactly one framed value.
    public func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws -> T {
        try bytes.withUnsafeBytes { try decode(type, from: $0) }
    }
}

extension ByteReader {
    /// Reads one framed value: the range of its content within ``buffer``, or `nil` for `nil`.
    mutating func readFramed(_ what: String) throws(WireError) -> Range<Int>? {
        let tag = try readVarint(what)
        if tag == 0 { return nil }
        let length = tag - 1
        guard length <= UInt64(remaining) else {
            throw WireError(.lengthMismatch, "\(what): declares \(length) bytes, \(remaining) left")
        }
        let start = offset
        _ = try take(Int(length), what)
        return start..<start + Int(length)
    }
}

/// One framed value inside a borrowed buffer.
struct DecodingSlice {
    let buffer: UnsafeRawBufferPointer
    /// The content bytes, or `nil` if the value is `nil`.
    let content: Range<Int>?

    var raw: UnsafeRawBufferPointer? { content.map { UnsafeRawBufferPointer(rebasing: buffer[$0]) } }
}

func decodeValue<T: Decodable>(
    _ type: T.Type, from slice: DecodingSlice, codingPath: [any CodingKey], userInfo: [CodingUserInfoKey: Any]
) throws -> T {
    if let primitive = T.self as? any BinaryPrimitive.Type {
        guard let raw = slice.raw else { throw valueNotFound(T.self, codingPath) }
        guard let value = primitive.init(binaryBytes: raw) else {
            throw badPrimitive(T.self, raw.count, codingPath)
        }
        return value as! T
    }
    if let array = T.self as? any RawArrayCodable.Type {
        guard let raw = slice.raw else { throw valueNotFound(T.self, codingPath) }
        guard let value = array.fromRaw(raw) else { throw badPrimitive(T.self, raw.count, codingPath) }
        return value as! T
    }
    return try T(from: SliceDecoder(slice: slice, codingPath: codingPath, userInfo: userInfo))
}

func valueNotFound(_ type: Any.Type, _ path: [any CodingKey]) -> DecodingError {
    .valueNotFound(type, .init(codingPath: path, debugDescription: "expected \(type), found nil"))
}

func badPrimitive(_ type: Any.Type, _ size: Int, _ path: [any CodingKey]) -> DecodingError {
    .dataCorrupted(.init(codingPath: path, debugDescription: "\(size) bytes are not a valid \(type)"))
}

struct SliceDecoder: Decoder {
    let slice: DecodingSlice
    let codingPath: [any CodingKey]
    let userInfo: [CodingUserInfoKey: Any]

    func content(_ what: Any.Type) throws -> Range<Int> {
        guard let content = slice.content else { throw valueNotFound(what, codingPath) }
        return content
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        KeyedDecodingContainer(
            try KeyedSliceDecoder<Key>(decoder: self, content: content(KeyedDecodingContainer<Key>.self)))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        try UnkeyedSliceDecoder(decoder: self, content: content((any UnkeyedDecodingContainer).self))
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer {
        SingleSliceDecoder(decoder: self)
    }

    func child(_ range: Range<Int>?, _ key: any CodingKey) -> SliceDecoder {
        SliceDecoder(
            slice: DecodingSlice(buffer: slice.buffer, content: range), codingPath: codingPath + [key],
            userInfo: userInfo)
    }
}

struct KeyedSliceDecoder<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let decoder: SliceDecoder
    private var names: [String] = []
    private var values: [Range<Int>?] = []

    init(decoder: SliceDecoder, content: Range<Int>) throws {
        self.decoder = decoder
        var reader = ByteReader(UnsafeRawBufferPointer(rebasing: decoder.slice.buffer[content]))
        while !reader.isAtEnd {
            let keyLength = try reader.readVarint("key length")
            guard keyLength <= UInt64(reader.remaining) else {
                throw WireError(.lengthMismatch, "key declares \(keyLength) bytes, \(reader.remaining) left")
            }
            guard let name = String(validating: try reader.take(Int(keyLength), "key"), as: UTF8.self) else {
                throw WireError(.malformed, "key is not valid UTF-8")
            }
            let value = try reader.readFramed("value of \(name)")
            names.append(name)
            values.append(
                value.map { $0.lowerBound + content.lowerBound..<$0.upperBound + content.lowerBound })
        }
    }

    var codingPath: [any CodingKey] { decoder.codingPath }
    var allKeys: [Key] { names.compactMap { Key(stringValue: $0) } }

    func contains(_ key: Key) -> Bool { names.contains(key.stringValue) }

    private func entry(_ key: Key) throws -> Range<Int>? {
        guard let i = names.firstIndex(of: key.stringValue) else {
            throw DecodingError.keyNotFound(
                key, .init(codingPath: codingPath, debugDescription: "no value for key \(key.stringValue)"))
        }
        return values[i]
    }

    func decodeNil(forKey key: Key) throws -> Bool { try entry(key) == nil }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        let child = decoder.child(try entry(key), key)
        return try decodeValue(
            T.self, from: child.slice, codingPath: child.codingPath, userInfo: decoder.userInfo)
    }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws
        -> KeyedDecodingContainer<NestedKey>
    {
        try decoder.child(try entry(key), key).container(keyedBy: type)
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        try decoder.child(try entry(key), key).unkeyedContainer()
    }

    func superDecoder() throws -> any Decoder {
        guard let i = names.firstIndex(of: "super") else {
            throw DecodingError.dataCorrupted(
                .init(codingPath: codingPath, debugDescription: "no super value"))
        }
        return SliceDecoder(
            slice: DecodingSlice(buffer: decoder.slice.buffer, content: values[i]), codingPath: codingPath,
            userInfo: decoder.userInfo)
    }

    func superDecoder(forKey key: Key) throws -> any Decoder { decoder.child(try entry(key), key) }
}

struct UnkeyedSliceDecoder: UnkeyedDecodingContainer {
    let decoder: SliceDecoder
    /// Elements are read lazily, so hostile input cannot make the decoder materialise a huge
    /// index of empty elements.
    private var reader: ByteReader
    private let base: Int
    private(set) var currentIndex = 0

    init(decoder: SliceDecoder, content: Range<Int>) throws {
        self.decoder = decoder
        self.base = content.lowerBound
        self.reader = ByteReader(UnsafeRawBufferPointer(rebasing: decoder.slice.buffer[content]))
    }

    var codingPath: [any CodingKey] { decoder.codingPath }
    var count: Int? { nil }
    var isAtEnd: Bool { reader.isAtEnd }

    private func atEnd(_ type: Any.Type) -> DecodingError {
        .valueNotFound(
            type, .init(codingPath: codingPath, debugDescription: "unkeyed container is at its end"))
    }

    private mutating func next(_ type: Any.Type) throws -> SliceDecoder {
        guard !isAtEnd else { throw atEnd(type) }
        let element = try reader.readFramed("element \(currentIndex)")
        defer { currentIndex += 1 }
        return decoder.child(
            element.map { $0.lowerBound + base..<$0.upperBound + base }, IndexKey(currentIndex))
    }

    mutating func decodeNil() throws -> Bool {
        guard !isAtEnd else { throw atEnd(Never.self) }
        var peek = reader
        if try peek.readVarint("element \(currentIndex)") == 0 {
            reader = peek
            currentIndex += 1
            return true
        }
        return false
    }

    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
        let child = try next(T.self)
        return try decodeValue(
            T.self, from: child.slice, codingPath: child.codingPath, userInfo: decoder.userInfo)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws
        -> KeyedDecodingContainer<NestedKey>
    {
        try next(KeyedDecodingContainer<NestedKey>.self).container(keyedBy: type)
    }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
        try next((any UnkeyedDecodingContainer).self).unkeyedContainer()
    }

    mutating func superDecoder() throws -> any Decoder { try next((any Decoder).self) }
}

struct SingleSliceDecoder: SingleValueDecodingContainer {
    let decoder: SliceDecoder
    var codingPath: [any CodingKey] { decoder.codingPath }

    func decodeNil() -> Bool { decoder.slice.content == nil }

    func decode<T: Decodable>(_ type: T.Type) throws -> T {
        try decodeValue(T.self, from: decoder.slice, codingPath: codingPath, userInfo: decoder.userInfo)
    }
}
