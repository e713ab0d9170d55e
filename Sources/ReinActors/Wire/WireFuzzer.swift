import ReinRandom

/// Hostile messages for robustness tests of the receiving sockets (`rein fuzz-wire`, the fuzz
/// tests): random bytes, truncated headers, wrong magic, wrong protocol version, unknown kinds,
/// lengths that lie, declared sizes over the limits, valid headers with garbage payloads, traffic
/// from a peer that never said `hello`, senders that do not match the connection.
///
/// Deterministic for a seed. Every message comes with the ``WireRejections`` reason the receiver
/// must count it under (or `nil` where several reasons are right), so a test can check that every
/// message that arrived was counted, under the right reason, and none was delivered.
public struct WireFuzzer: Sendable {
    /// The socket the messages are for, which decides what "hostile" means.
    public enum Target: Sendable, Hashable, CaseIterable {
        /// An actor-system ROUTER, from a connection that never said `hello`.
        case stranger
        /// An actor-system ROUTER, from a connection that completed the handshake as `sender`.
        case member
        /// An actor-system DEALER, from the node it connected to (`sender`), after the welcome.
        case dealer
        /// A bulk PULL or SUB socket whose consumer decodes the payload (sample batches, weights).
        case bulk
    }

    /// One hostile message.
    public struct Message: Sendable {
        /// What it tries (`badMagic`, `lyingByteCount`…).
        public var name: String
        /// The frames, header first (without a ROUTER routing-id frame).
        public var frames: [[UInt8]]
        /// The reason it must be counted under, or `nil` if any reason is right.
        public var reason: String?

        /// A hostile message named `name` made of `frames`, to be counted under `reason`.
        public init(name: String, frames: [[UInt8]], reason: String?) {
            self.name = name
            self.frames = frames
            self.reason = reason
        }
    }

    private var state: UInt64
    /// The sender a well-formed header carries (the hostile connection's node).
    public let sender: NodeID

    /// A fuzzer seeded with `seed` whose well-formed headers carry `sender`.
    public init(seed: UInt64, sender: NodeID) {
        state = seed
        self.sender = sender
    }

    /// The next 64 random bits (ReinRandom's SplitMix64 continuing from `state`).
    private mutating func random() -> UInt64 {
        var core = SplitMix64(state: state)
        defer { state = core.state }
        return core.next()
    }

    private mutating func below(_ n: Int) -> Int { Int(random() % UInt64(n)) }

    private mutating func bytes(_ count: Int) -> [UInt8] {
        (0..<count).map { _ in UInt8(truncatingIfNeeded: random()) }
    }

    private func header(
        _ kind: MessageKind, frames: [[UInt8]], sender: NodeID? = nil,
        version: UInt16 = WireHeader.currentVersion
    ) -> [UInt8] {
        WireHeader(
            kind: kind, sender: sender ?? self.sender, sequence: 1, frameCount: UInt16(frames.count),
            payloadBytes: UInt64(frames.reduce(0) { $0 + $1.count }), version: version
        ).encoded()
    }

    /// The next hostile message for `target`.
    public mutating func next(for target: Target) -> Message {
        let common = 9
        let specific: Int
        switch target {
        case .stranger: specific = 1
        case .member: specific = 4
        case .dealer: specific = 4
        case .bulk: specific = 2
        }
        let pick = below(common + specific)
        if pick < common { return headerAttack(pick, target: target) }
        return payloadAttack(pick - common, target: target)
    }

    /// Attacks on the header every socket checks the same way.
    private mutating func headerAttack(_ pick: Int, target: Target) -> Message {
        let controlKind: MessageKind = target == .bulk ? .bulk : .heartbeat
        switch pick {
        case 0:
            // Random bytes that do not start with the magic.
            var frame = bytes(below(64))
            if frame.count >= 1, frame[0] == 0x52 { frame[0] = 0 }
            let extra = (0..<below(3)).map { _ in bytes(below(16)) }
            return Message(
                name: "randomBytes", frames: [frame] + extra,
                reason: frame.count < 4
                    ? WireError.Code.truncated.description : WireError.Code.badMagic.description)
        case 1:
            let full = header(controlKind, frames: [])
            return Message(
                name: "truncatedHeader", frames: [Array(full.prefix(below(WireHeader.size)))],
                reason: WireError.Code.truncated.description)
        case 2:
            var full = header(controlKind, frames: [])
            full[below(4)] ^= UInt8(1 + below(255))
            return Message(name: "badMagic", frames: [full], reason: WireError.Code.badMagic.description)
        case 3:
            let version = UInt16(2 + below(Int(UInt16.max) - 2))
            return Message(
                name: "wrongVersion", frames: [header(controlKind, frames: [], version: version)],
                reason: WireError.Code.unsupportedVersion.description)
        case 4:
            var full = header(controlKind, frames: [])
            let kind = UInt16(8 + below(Int(UInt16.max) - 8))
            full[6] = UInt8(truncatingIfNeeded: kind)
            full[7] = UInt8(truncatingIfNeeded: kind >> 8)
            return Message(
                name: "unknownKind", frames: [full], reason: WireError.Code.unknownKind.description)
        case 5:
            return Message(
                name: "longHeader", frames: [header(controlKind, frames: []) + bytes(1 + below(16))],
                reason: WireError.Code.lengthMismatch.description)
        case 6:
            let payload = (0..<below(3)).map { _ in bytes(below(32)) }
            var full = header(controlKind, frames: payload)
            full[10] = UInt8(payload.count + 1 + below(5))  // more frames than present
            return Message(
                name: "lyingFrameCount", frames: [full] + payload,
                reason: WireError.Code.lengthMismatch.description)
        case 7:
            let payload = [bytes(below(32))]
            var full = header(controlKind, frames: payload)
            full[40] &+= UInt8(1 + below(200))  // bytes that are not there
            return Message(
                name: "lyingByteCount", frames: [full] + payload,
                reason: WireError.Code.lengthMismatch.description)
        default:
            // Declares more than the limits allow (checked before anything is allocated or matched).
            var full = header(controlKind, frames: [])
            if below(2) == 0 {
                full[10] = 0xff
                full[11] = 0xff  // 65535 frames
            } else {
                for i in 40..<48 { full[i] = 0x7f }  // ~9 EB of payload
            }
            return Message(
                name: "declaredOversize", frames: [full], reason: WireError.Code.oversize.description)
        }
    }

    /// Attacks that pass the header checks.
    private mutating func payloadAttack(_ pick: Int, target: Target) -> Message {
        switch target {
        case .stranger:
            let kind: MessageKind = [.heartbeat, .call, .reply, .leave][below(4)]
            let frames = kind == .call || kind == .reply ? [bytes(below(40))] : []
            return Message(
                name: "unknownPeer", frames: [header(kind, frames: frames)] + frames,
                reason: WireRejections.unknownPeer)
        case .member, .dealer:
            switch pick {
            case 0:
                // A call or reply envelope cut short before its first string's content (call) or
                // its outcome (reply).
                let kind: MessageKind = below(2) == 0 ? .call : .reply
                let envelope = kind == .call ? bytes(below(20)) : bytes(below(9))
                return Message(
                    name: "garbageEnvelope", frames: [header(kind, frames: [envelope]), envelope],
                    reason: WireError.Code.truncated.description)
            case 1:
                // A call envelope whose recipient name is not UTF-8.
                var w = ByteWriter()
                w.write(UInt64(1))
                w.write(UInt64(2))
                w.writeLengthPrefixed([0xff, 0xfe, 0xfd])
                let envelope = w.bytes + bytes(33)
                return Message(
                    name: "invalidUTF8", frames: [header(.call, frames: [envelope]), envelope],
                    reason: WireError.Code.malformed.description)
            case 2:
                var other = NodeID(rawValue: random())
                if other == sender { other = NodeID(rawValue: sender.rawValue &+ 1) }
                return Message(
                    name: "wrongSender", frames: [header(.heartbeat, frames: [], sender: other)],
                    reason: WireError.Code.malformed.description)
            default:
                let frame = bytes(below(64))
                return Message(
                    name: "bulkOnControl", frames: [header(.bulk, frames: [frame]), frame],
                    reason: WireRejections.wrongKind)
            }
        case .bulk:
            if pick == 0 {
                return Message(
                    name: "controlOnBulk", frames: [header(.heartbeat, frames: [])],
                    reason: WireRejections.wrongKind)
            }
            // A bulk header with a payload no consumer accepts: an odd byte count (not floats, and
            // not a sample batch), in one or two frames.
            let payload = (0..<(1 + below(2))).map { i in bytes(i == 0 ? 1 + 2 * below(200) : 0) }
            return Message(
                name: "garbagePayload", frames: [header(.bulk, frames: payload)] + payload,
                reason: WireRejections.badPayload)
        }
    }
}
