import Testing

@testable import ReinActors

@Suite("Wire codec")
struct WireCodecTests {
    let sender = NodeID(rawValue: 0x0102_0304_0506_0708)

    @Test func headerRoundTrip() throws {
        let header = WireHeader(
            kind: .call, sender: sender, sequence: 42, policyVersion: 7, frameCount: 3, payloadBytes: 99,
            flags: .endOfStream)
        let bytes = header.encoded()
        #expect(bytes.count == WireHeader.size)
        #expect(Array(bytes[0..<4]) == Array("REIN".utf8))
        #expect(bytes[4] == 5 && bytes[5] == 0)  // version 5, little-endian
        #expect(bytes[16] == 0x08)  // sender, little-endian
        #expect(try WireHeader.decode(bytes) == header)
    }

    @Test(arguments: MessageKind.allCases)
    func everyKindRoundTrips(_ kind: MessageKind) throws {
        let header = WireHeader(kind: kind, sender: sender, sequence: 1)
        #expect(try WireHeader.decode(header.encoded()).kind == kind)
    }

    @Test func messageRoundTrip() throws {
        let message = WireMessage(
            header: WireHeader(kind: .bulk, sender: sender), frames: [WireFrame([1, 2, 3]), WireFrame([])])
        #expect(message.header.frameCount == 2 && message.header.payloadBytes == 3)
        let decoded = try WireMessage.decode(message.encodedFrames())
        #expect(decoded.header == message.header)
        #expect(decoded.frames.map(\.bytes) == [[1, 2, 3], []])
    }

    @Test func truncatedHeader() {
        let bytes = WireHeader(kind: .call, sender: sender).encoded()
        for length in [0, 3, 5, 6, 20, 47] {
            #expect(throws: WireError.self) { try WireHeader.decode(Array(bytes.prefix(length))) }
            let error = catchWire { try WireHeader.decode(Array(bytes.prefix(length))) }
            #expect(error?.code == .truncated, "length \(length)")
        }
    }

    @Test func badMagic() {
        var bytes = WireHeader(kind: .call, sender: sender).encoded()
        bytes[0] = UInt8(ascii: "X")
        #expect(catchWire { try WireHeader.decode(bytes) }?.code == .badMagic)
    }

    @Test func wrongVersionNamesBothVersions() throws {
        let other = WireHeader.currentVersion + 2
        let bytes = WireHeader(kind: .hello, sender: sender, version: other).encoded()
        let error = try #require(catchWire { try WireHeader.decode(bytes) })
        #expect(error.code == .unsupportedVersion)
        #expect(error.context == "peer speaks protocol \(other), this build speaks \(WireHeader.currentVersion)")
        // A later version with a longer header still gets the version error, not a size error.
        let longer = bytes + [0, 0, 0, 0]
        #expect(catchWire { try WireHeader.decode(longer) }?.code == .unsupportedVersion)
    }

    @Test func unknownKind() {
        var bytes = WireHeader(kind: .call, sender: sender).encoded()
        bytes[6] = 99
        let error = catchWire { try WireHeader.decode(bytes) }
        #expect(error?.code == .unknownKind)
        #expect(error?.context.contains("99") == true)
    }

    @Test func oversizeDeclarations() {
        let limits = WireLimits(maxFrames: 4, maxPayloadBytes: 100)
        let frames = WireHeader(kind: .bulk, sender: sender, frameCount: 5).encoded()
        #expect(catchWire { try WireHeader.decode(frames, limits: limits) }?.code == .oversize)
        let bytes = WireHeader(kind: .bulk, sender: sender, payloadBytes: 101).encoded()
        #expect(catchWire { try WireHeader.decode(bytes, limits: limits) }?.code == .oversize)
    }

    @Test func lyingLengths() {
        // Header says 2 frames, 1 present.
        let twoFrames = WireHeader(kind: .bulk, sender: sender, frameCount: 2, payloadBytes: 3).encoded()
        let error1 = catchWire { try WireMessage.decode([WireFrame(twoFrames), WireFrame([1, 2, 3])]) }
        #expect(error1?.code == .lengthMismatch)
        // Header says 10 bytes, 3 present.
        let tenBytes = WireHeader(kind: .bulk, sender: sender, frameCount: 1, payloadBytes: 10).encoded()
        #expect(
            catchWire { try WireMessage.decode([WireFrame(tenBytes), WireFrame([1, 2, 3])]) }?.code
                == .lengthMismatch)
        // A header frame longer than the header.
        #expect(catchWire { try WireHeader.decode(twoFrames + [0]) }?.code == .lengthMismatch)
        // A length prefix that points past the end.
        var w = ByteWriter()
        w.write(UInt32(1000))
        w.writeRaw([1, 2, 3])
        let error2 = catchWire {
            try ByteReader.read(w.bytes) { (r: inout ByteReader) throws in _ = try r.readString() }
        }
        #expect(error2?.code == .lengthMismatch)
        #expect(catchWire { try WireMessage.decode([]) }?.code == .truncated)
    }

    @Test func byteWriterReaderRoundTrip() throws {
        var w = ByteWriter()
        w.write(UInt8(7))
        w.write(Int16(-2))
        w.write(UInt32(0xdead_beef))
        w.write(Int64.min)
        w.write(Float(1.5))
        w.write(Double.pi)
        w.write(true)
        w.write("héllo")
        w.writeVarint(300)
        w.writeVarint(UInt64.max)
        w.write([Float(1), -2, .infinity])
        w.writeLengthPrefixed([9, 8])
        try ByteReader.read(w.bytes) { (r: inout ByteReader) throws in
            #expect(try r.read(UInt8.self) == 7)
            #expect(try r.read(Int16.self) == -2)
            #expect(try r.read(UInt32.self) == 0xdead_beef)
            #expect(try r.read(Int64.self) == .min)
            #expect(try r.readFloat() == 1.5)
            #expect(try r.readDouble() == .pi)
            #expect(try r.readBool() == true)
            #expect(try r.readString() == "héllo")
            #expect(try r.readVarint() == 300)
            #expect(try r.readVarint() == .max)
            #expect(try r.readFloats() == [1, -2, .infinity])
            #expect(Array(try r.readLengthPrefixed()) == [9, 8])
            #expect(r.isAtEnd)
        }
    }

    @Test func malformedFields() {
        #expect(
            catchWire { try ByteReader.read([2]) { (r: inout ByteReader) throws in _ = try r.readBool() } }?
                .code == .malformed)
        let badUTF8: [UInt8] = [2, 0, 0, 0, 0xff, 0xfe]
        #expect(
            catchWire {
                try ByteReader.read(badUTF8) { (r: inout ByteReader) throws in _ = try r.readString() }
            }?.code == .malformed)
        let longVarint = [UInt8](repeating: 0xff, count: 11)
        #expect(
            catchWire {
                try ByteReader.read(longVarint) { (r: inout ByteReader) throws in _ = try r.readVarint() }
            }?.code == .malformed)
    }

    /// 10,000 random byte strings through every decoder: each must throw or succeed, never trap.
    @Test func fuzzNeverTraps() {
        var rng = SplitMix64(seed: 0x5eed)
        let valid = WireHeader(kind: .call, sender: sender, frameCount: 1, payloadBytes: 4).encoded()
        var outcomes = [0, 0]
        for i in 0..<10_000 {
            var bytes: [UInt8]
            if i % 2 == 0 {
                bytes = (0..<Int(rng.next() % 80)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            } else {
                // Mutations of a valid header reach the deeper checks.
                bytes = valid
                for _ in 0..<(1 + rng.next() % 4) {
                    bytes[Int(rng.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: rng.next())
                }
                if rng.next() % 4 == 0 { bytes = Array(bytes.prefix(Int(rng.next() % 48))) }
            }
            let header = try? WireHeader.decode(bytes)
            let message = try? WireMessage.decode([WireFrame(bytes), WireFrame(Array(bytes.prefix(4)))])
            _ = try? BinaryDecoder().decode(FuzzTarget.self, from: bytes)
            _ = try? BinaryDecoder().decode([Float].self, from: bytes)
            _ = try? CallEnvelope.decode(bytes)
            _ = try? ReplyEnvelope.decode(bytes)
            _ = try? bytes.withUnsafeBytes { try HelloEnvelope.decode($0) }
            outcomes[header == nil && message == nil ? 0 : 1] += 1
        }
        #expect(outcomes[0] > 0)
    }
}

struct FuzzTarget: Codable {
    var a: Int
    var b: String?
    var c: [Double]
    var d: [String: [Int8]]
}

/// Runs `body` and returns the `WireError` it threw, if any.
func catchWire<T>(_ body: () throws -> T) -> WireError? {
    do {
        _ = try body()
        return nil
    } catch let error as WireError {
        return error
    } catch {
        return nil
    }
}

/// A small deterministic generator for reproducible randomized tests.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}
