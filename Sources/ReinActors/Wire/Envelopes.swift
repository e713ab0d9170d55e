/// The first payload frame of a ``MessageKind/call`` message; one frame per argument follows.
///
/// Layout: call id (`UInt64`), recipient node (`UInt64`), recipient name (string), recipient
/// incarnation (`UInt64`, 0 = whichever actor holds the name), target
/// identifier (string), generic substitution count (`UInt16`) and that many mangled type names
/// (strings), argument count (`UInt16`). Strings are `UInt32`-length-prefixed UTF-8.
struct CallEnvelope: Sendable, Hashable {
    var callID: UInt64
    /// The node the caller meant; a restarted node (new id) answers with a dead letter.
    var recipientNode: NodeID
    var recipientName: String
    var recipientIncarnation: UInt64
    var target: String
    var genericSubstitutions: [String]
    var argumentCount: UInt16

    func encoded() -> [UInt8] {
        var w = ByteWriter(capacity: 32 + recipientName.utf8.count + target.utf8.count)
        w.write(callID)
        w.write(recipientNode.rawValue)
        w.write(recipientName)
        w.write(recipientIncarnation)
        w.write(target)
        w.write(UInt16(genericSubstitutions.count))
        for name in genericSubstitutions { w.write(name) }
        w.write(argumentCount)
        return w.bytes
    }

    static func decode(_ raw: UnsafeRawBufferPointer) throws(WireError) -> CallEnvelope {
        var r = ByteReader(raw)
        let callID = try r.read(UInt64.self, "call id")
        let node = NodeID(rawValue: try r.read(UInt64.self, "recipient node"))
        let name = try r.readString("recipient name")
        let incarnation = try r.read(UInt64.self, "recipient incarnation")
        let target = try r.readString("target")
        let count = try r.read(UInt16.self, "substitution count")
        var substitutions: [String] = []
        for _ in 0..<count { substitutions.append(try r.readString("substitution")) }
        let arguments = try r.read(UInt16.self, "argument count")
        try r.expectEnd("call envelope")
        return CallEnvelope(
            callID: callID, recipientNode: node, recipientName: name, recipientIncarnation: incarnation,
            target: target,
            genericSubstitutions: substitutions, argumentCount: arguments)
    }

    static func decode(_ bytes: [UInt8]) throws(WireError) -> CallEnvelope {
        try bytes.withUnsafeBytes { raw in Result { () throws(WireError) in try decode(raw) } }.get()
    }
}

/// The first payload frame of a ``MessageKind/reply`` message.
///
/// Layout: call id (`UInt64`), outcome tag (`UInt8`), then per tag:
/// * 0 value: nothing (the encoded value is the second frame);
/// * 1 void: nothing;
/// * 2 error thrown by the target: error type name, message (strings), and a `Bool` saying
///   whether the encoded error itself follows as the second frame;
/// * 3 failure of the remote system (no such actor, undecodable invocation): ``RemoteCallError``
///   code (`UInt16`), message (string).
struct ReplyEnvelope: Sendable, Hashable {
    enum Outcome: Sendable, Hashable {
        case value
        case void
        case thrown(type: String, message: String, hasPayload: Bool)
        case failed(code: UInt16, message: String)
    }

    var callID: UInt64
    var outcome: Outcome

    func encoded() -> [UInt8] {
        var w = ByteWriter(capacity: 16)
        w.write(callID)
        switch outcome {
        case .value: w.write(UInt8(0))
        case .void: w.write(UInt8(1))
        case .thrown(let type, let message, let hasPayload):
            w.write(UInt8(2))
            w.write(type)
            w.write(message)
            w.write(hasPayload)
        case .failed(let code, let message):
            w.write(UInt8(3))
            w.write(code)
            w.write(message)
        }
        return w.bytes
    }

    static func decode(_ raw: UnsafeRawBufferPointer) throws(WireError) -> ReplyEnvelope {
        var r = ByteReader(raw)
        let callID = try r.read(UInt64.self, "call id")
        let outcome: Outcome
        switch try r.read(UInt8.self, "outcome") {
        case 0: outcome = .value
        case 1: outcome = .void
        case 2:
            outcome = .thrown(
                type: try r.readString("error type"), message: try r.readString("error message"),
                hasPayload: try r.readBool("error payload flag"))
        case 3:
            outcome = .failed(
                code: try r.read(UInt16.self, "failure code"), message: try r.readString("failure"))
        case let tag: throw WireError(.malformed, "unknown reply outcome \(tag)")
        }
        try r.expectEnd("reply envelope")
        return ReplyEnvelope(callID: callID, outcome: outcome)
    }

    static func decode(_ bytes: [UInt8]) throws(WireError) -> ReplyEnvelope {
        try bytes.withUnsafeBytes { raw in Result { () throws(WireError) in try decode(raw) } }.get()
    }
}

/// The payload frame of ``MessageKind/hello`` and ``MessageKind/welcome``: the sender's name
/// (string) and the endpoint it listens on (string, empty if it does not listen).
struct HelloEnvelope: Sendable, Hashable {
    var name: String
    var endpoint: String

    func encoded() -> [UInt8] {
        var w = ByteWriter()
        w.write(name)
        w.write(endpoint)
        return w.bytes
    }

    static func decode(_ raw: UnsafeRawBufferPointer) throws(WireError) -> HelloEnvelope {
        var r = ByteReader(raw)
        let envelope = HelloEnvelope(
            name: try r.readString("node name"), endpoint: try r.readString("endpoint"))
        try r.expectEnd("hello")
        return envelope
    }
}
