import Foundation

/// A safetensors file holding float32 tensors: an 8-byte little-endian header length, a JSON header
/// (`{"name": {"dtype", "shape", "data_offsets"}, "__metadata__": {String: String}}`), then the data.
/// Reading validates everything and reports what is wrong; it never trusts the file.
public struct SafeTensors: Sendable, Equatable {
    /// One tensor: row-major float32 values of the given shape.
    public struct Tensor: Sendable, Equatable {
        /// Row-major shape.
        public var shape: [Int]
        /// Values, `shape.reduce(1, *)` of them.
        public var values: [Float]
        /// A tensor; traps if `values` does not fill `shape`.
        public init(shape: [Int], values: [Float]) {
            precondition(
                shape.reduce(1, *) == values.count, "shape \(shape) does not hold \(values.count) values")
            self.shape = shape
            self.values = values
        }
    }

    /// Tensors by name; written in ascending name order for reproducible files.
    public var tensors: [String: Tensor]
    /// Free-form string metadata (`__metadata__`).
    public var metadata: [String: String]

    /// Contents to write with ``serialized()``, or with `write(to:)` to a path or to a sink.
    public init(tensors: [String: Tensor] = [:], metadata: [String: String] = [:]) {
        self.tensors = tensors
        self.metadata = metadata
    }

    /// Header sizes above this are rejected before parsing (the reference implementation uses 100 MB).
    static let maxHeaderBytes = 100_000_000

    // MARK: Writing

    /// The file's bytes. Header padded with spaces to a multiple of 8 bytes; tensors in name order.
    public func serialized() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(byteCount)
        write { out.append(contentsOf: $0) }
        return out
    }

    /// The size of the file in bytes.
    public var byteCount: Int {
        8 + headerBytes().bytes.count + tensors.values.reduce(0) { $0 + 4 * $1.values.count }
    }

    /// Hands the file's bytes to `sink` in order, a piece at a time (the 8-byte header length, the
    /// header, then each tensor's values), so a writer never holds the whole file: the bytes are
    /// those of ``serialized()``.
    public func write(to sink: (UnsafeRawBufferPointer) throws -> Void) rethrows {
        let (names, header) = headerBytes()
        try withUnsafeBytes(of: UInt64(header.count).littleEndian) { try sink($0) }
        try header.withUnsafeBytes { try sink($0) }
        for name in names {
            try tensors[name]!.values.withUnsafeBytes { try sink($0) }  // x86/ARM: little-endian
        }
    }

    /// The tensor names in file order and the JSON header, padded with spaces to a multiple of 8.
    private func headerBytes() -> (names: [String], bytes: [UInt8]) {
        let names = tensors.keys.sorted()
        var entries: [String] = []
        if !metadata.isEmpty {
            let pairs = metadata.keys.sorted().map { "\(jsonString($0)):\(jsonString(metadata[$0]!))" }
            entries.append("\"__metadata__\":{\(pairs.joined(separator: ","))}")
        }
        var offset = 0
        for name in names {
            let t = tensors[name]!
            let end = offset + 4 * t.values.count
            let shape = t.shape.map(String.init).joined(separator: ",")
            entries.append(
                "\(jsonString(name)):{\"dtype\":\"F32\",\"shape\":[\(shape)],\"data_offsets\":[\(offset),\(end)]}"
            )
            offset = end
        }
        var header = Array("{\(entries.joined(separator: ","))}".utf8)
        while header.count % 8 != 0 { header.append(0x20) }
        return (names, header)
    }

    /// Writes the file atomically (temporary file, then rename).
    public func write(to path: String) throws(ModelError) {
        do {
            try Data(serialized()).write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw .io(path: path, reason: "cannot write: \(error.localizedDescription)")
        }
    }

    // MARK: Reading

    /// Reads and validates a file.
    public static func read(from path: String) throws(ModelError) -> SafeTensors {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw .io(path: path, reason: "cannot read: \(error.localizedDescription)")
        }
        return try parse([UInt8](data), path: path)
    }

    /// Parses and validates file bytes; `path` only labels errors.
    public static func parse(_ bytes: [UInt8], path: String = "<memory>") throws(ModelError) -> SafeTensors {
        func bad(_ reason: String) -> ModelError { .malformedFile(path: path, reason: reason) }
        guard bytes.count >= 8 else {
            throw bad("\(bytes.count) bytes is too short for the 8-byte header length")
        }
        let headerLength = bytes[0..<8].enumerated().reduce(UInt64(0)) {
            $0 | UInt64($1.element) << (8 * $1.offset)
        }
        guard headerLength <= UInt64(maxHeaderBytes), Int(headerLength) <= bytes.count - 8 else {
            throw bad(
                "header length \(headerLength) exceeds the \(bytes.count - 8) bytes after it (truncated or foreign file)"
            )
        }
        let headerBytes = bytes[8..<(8 + Int(headerLength))]
        guard headerBytes.first == UInt8(ascii: "{") else { throw bad("header does not start with '{'") }
        let header: [String: HeaderEntry]
        do {
            header = try JSONDecoder().decode([String: HeaderEntry].self, from: Data(headerBytes))
        } catch {
            throw bad("header is not a safetensors JSON object (\(error))")
        }

        var result = SafeTensors()
        var spans: [(begin: Int, end: Int, name: String)] = []
        let dataLength = bytes.count - 8 - Int(headerLength)
        for (name, entry) in header {
            switch entry {
            case .metadata(let m) where name == "__metadata__":
                result.metadata = m
            case .metadata:
                throw bad("entry '\(name)' is not a tensor description")
            case .tensor(let t) where name == "__metadata__":
                throw bad("__metadata__ must map strings to strings, found \(t.dtype) tensor")
            case .tensor(let t):
                guard t.dtype == "F32" else {
                    throw bad("tensor '\(name)' has dtype \(t.dtype); only F32 is supported")
                }
                guard t.shape.allSatisfy({ $0 >= 0 }) else {
                    throw bad("tensor '\(name)' has shape \(t.shape)")
                }
                let (count, overflow) = t.shape.reduce((1, false)) { acc, d in
                    let r = acc.0.multipliedReportingOverflow(by: d)
                    return (r.partialValue, acc.1 || r.overflow)
                }
                guard t.dataOffsets.count == 2, !overflow, count <= Int.max / 4 else {
                    throw bad("tensor '\(name)' has bad shape \(t.shape) or data_offsets \(t.dataOffsets)")
                }
                let (begin, end) = (t.dataOffsets[0], t.dataOffsets[1])
                guard begin >= 0, end >= begin, end - begin == 4 * count else {
                    throw bad(
                        "tensor '\(name)' of shape \(t.shape) needs \(4 * count) bytes, data_offsets \(t.dataOffsets)"
                    )
                }
                guard end <= dataLength else {
                    throw bad(
                        "tensor '\(name)' ends at data byte \(end) but only \(dataLength) follow the header (truncated)"
                    )
                }
                let start = 8 + Int(headerLength) + begin
                var values = [Float](repeating: 0, count: count)
                values.withUnsafeMutableBytes { dst in
                    bytes.withUnsafeBytes { src in
                        dst.copyMemory(
                            from: UnsafeRawBufferPointer(rebasing: src[start..<start + end - begin]))
                    }
                }
                result.tensors[name] = Tensor(shape: t.shape, values: values)
                spans.append((begin, end, name))
            }
        }
        // The data region must be covered exactly, with no overlap, hole or trailing bytes.
        var expected = 0
        for s in spans.sorted(by: { ($0.begin, $0.end) < ($1.begin, $1.end) }) {
            guard s.begin == expected else {
                throw bad(
                    s.begin < expected
                        ? "tensor '\(s.name)' overlaps the previous tensor" : "hole before tensor '\(s.name)'"
                )
            }
            expected = s.end
        }
        guard expected == dataLength else {
            throw bad("\(dataLength - expected) trailing bytes after the last tensor")
        }
        return result
    }
}

/// One value of the header object: a tensor description or the metadata map.
private enum HeaderEntry: Decodable {
    struct TensorInfo: Decodable {
        let dtype: String
        let shape: [Int]
        let dataOffsets: [Int]
        enum CodingKeys: String, CodingKey {
            case dtype, shape
            case dataOffsets = "data_offsets"
        }
    }
    case tensor(TensorInfo)
    case metadata([String: String])

    init(from decoder: any Decoder) throws {
        if let t = try? TensorInfo(from: decoder) {
            self = .tensor(t)
        } else {
            self = .metadata(try [String: String](from: decoder))
        }
    }
}

/// A JSON string literal for `s`.
private func jsonString(_ s: String) -> String {
    var out = "\""
    for u in s.unicodeScalars {
        switch u {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        case _ where u.value < 0x20:
            out +=
                "\\u" + String(repeating: "0", count: 4 - String(u.value, radix: 16).count)
                + String(u.value, radix: 16)
        default: out.unicodeScalars.append(u)
        }
    }
    return out + "\""
}
