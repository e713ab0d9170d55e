import Testing

@testable import ReinActors

@Suite("Binary Codable coder")
struct BinaryCodingTests {
    struct Trajectory: Codable, Equatable {
        var tokens: [Int32]
        var logProbs: [Float]
        var reward: Double
        var version: UInt64
        var note: String?
        var tags: [String]
        var nested: [Inner]
        var flag: Bool
    }

    struct Inner: Codable, Equatable {
        var a: Int8
        var b: UInt16?
    }

    enum Shape: Codable, Equatable {
        case circle(radius: Double)
        case square(Int)
        case empty
    }

    final class Base: Codable {
        var x = 1
    }

    final class Sub: Codable {
        var y = 2
        var optionalInts: [Int?] = [1, nil, 3]
        var dict: [String: Double] = ["a": 1, "b": 2]
        var intKeyed: [Int: String] = [1: "one"]
    }

    func roundTrip<T: Codable & Equatable>(_ value: T) throws {
        let bytes = try BinaryEncoder().encode(value)
        #expect(try BinaryDecoder().decode(T.self, from: bytes) == value)
    }

    @Test func scalars() throws {
        try roundTrip(42)
        try roundTrip(-1 as Int8)
        try roundTrip(UInt64.max)
        try roundTrip(Float.nan.bitPattern)
        try roundTrip(3.25)
        try roundTrip("")
        try roundTrip("héllo wörld")
        try roundTrip(true)
        try roundTrip(Int?.none)
        try roundTrip(Int?.some(5))
    }

    @Test func structsEnumsCollections() throws {
        let t = Trajectory(
            tokens: [1, 2, 3], logProbs: [-0.5, -1.25], reward: 1, version: 9, note: nil, tags: ["a", ""],
            nested: [Inner(a: -3, b: nil), Inner(a: 4, b: 65535)], flag: true)
        try roundTrip(t)
        try roundTrip([Shape.circle(radius: 2), .square(3), .empty])
        try roundTrip([[Double]]([[1, 2], [], [3]]))
        try roundTrip(["k": [1, 2], "j": []] as [String: [Int]])
        try roundTrip(Set([1, 5, 9]))
        let sub = Sub()
        let decoded = try BinaryDecoder().decode(Sub.self, from: try BinaryEncoder().encode(sub))
        #expect(
            decoded.optionalInts == [1, nil, 3] && decoded.dict == sub.dict && decoded.intKeyed == [1: "one"])
    }

    @Test func compactness() throws {
        // An Int is 1 frame byte + 8 bytes; a [Float] is raw (plus one varint).
        #expect(try BinaryEncoder().encode(7).count == 9)
        #expect(try BinaryEncoder().encode([Float](repeating: 1, count: 1000)).count == 4000 + 2)
    }

    @Test func largeFloatArrayIsRaw() throws {
        let floats = (0..<(2 << 20)).map { Float($0) }
        let bytes = try BinaryEncoder().encode(floats)
        #expect(bytes.count < floats.count * 4 + 8)
        #expect(try BinaryDecoder().decode([Float].self, from: bytes) == floats)
    }

    /// A frame to send holds the bytes of ``BinaryEncoder/encode(_:)``, small (a byte array) or
    /// large (a buffer libzmq sends without copying, its raw arrays copied once).
    @Test func framesHoldTheEncodedBytesSmallOrLarge() throws {
        let large = (0..<20_000).map { Float($0) * 0.5 }
        let values: [Trajectory] = [
            Trajectory(
                tokens: [1, 2], logProbs: [-0.5], reward: 1, version: 2, note: nil, tags: [], nested: [],
                flag: true),
            Trajectory(
                tokens: (0..<9_000).map(Int32.init), logProbs: large, reward: -1, version: 3, note: "wéights",
                tags: ["a", "b"], nested: [Inner(a: 1, b: nil), Inner(a: -2, b: 7)], flag: false),
        ]
        for value in values {
            let bytes = try BinaryEncoder().encode(value)
            let frame = try BinaryEncoder().encodeFrame(value)
            #expect(frame.count == bytes.count)
            #expect(frame.withUnsafeBytes { Array($0) } == bytes)
            #expect(
                try frame.withUnsafeBytes { try BinaryDecoder().decode(Trajectory.self, from: $0) } == value)
        }
        #expect(try BinaryEncoder().encode(values[0]).count < BinaryEncoder.zeroCopyBytes)
        #expect(try BinaryEncoder().encode(values[1]).count >= BinaryEncoder.zeroCopyBytes)
        // An array nested in unkeyed containers and optionals, past the threshold.
        let nested: [[Double]?] = [nil, (0..<3_000).map(Double.init), [], nil]
        let frame = try BinaryEncoder().encodeFrame(nested)
        #expect(frame.withUnsafeBytes { Array($0) } == (try BinaryEncoder().encode(nested)))
    }

    @Test func typeMismatchAndMissingKeysThrow() throws {
        let bytes = try BinaryEncoder().encode(Inner(a: 1, b: 2))
        #expect(throws: DecodingError.self) { _ = try BinaryDecoder().decode(Trajectory.self, from: bytes) }
        #expect(throws: DecodingError.self) {
            _ = try BinaryDecoder().decode(Int.self, from: try BinaryEncoder().encode("x"))
        }
        #expect(throws: (any Error).self) { _ = try BinaryDecoder().decode(Int.self, from: [0x09, 1, 2]) }
        #expect(throws: (any Error).self) {
            _ = try BinaryDecoder().decode(Int.self, from: try BinaryEncoder().encode(1) + [0])
        }
        // [Float] with a byte count that is not a multiple of 4.
        #expect(throws: DecodingError.self) {
            _ = try BinaryDecoder().decode([Float].self, from: [4, 1, 2, 3])
        }
    }

    @Test func envelopesRoundTrip() throws {
        let call = CallEnvelope(
            callID: 9, recipientNode: NodeID(rawValue: 5), recipientName: "learner", recipientIncarnation: 3,
            target: "$s4main1LC4pushyyFTE",
            genericSubstitutions: ["Si", "SaySdG"], argumentCount: 2)
        #expect(try CallEnvelope.decode(call.encoded()) == call)
        for outcome: ReplyEnvelope.Outcome in [
            .value, .void, .thrown(type: "E", message: "boom", hasPayload: true),
            .failed(code: 3, message: "x"),
        ] {
            let reply = ReplyEnvelope(callID: 1, outcome: outcome)
            #expect(try ReplyEnvelope.decode(reply.encoded()) == reply)
        }
        #expect(catchWire { try ReplyEnvelope.decode([1, 0, 0, 0, 0, 0, 0, 0, 9]) }?.code == .malformed)
        #expect(catchWire { try CallEnvelope.decode(Array(call.encoded().dropLast())) }?.code == .truncated)
    }
}
