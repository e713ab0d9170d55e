/// A whole message: the header and its payload frames.
public struct WireMessage: Sendable {
    /// The header (kind, sender, sequence, policy version…).
    public var header: WireHeader
    /// The payload frames, in order.
    public var frames: [WireFrame]
    /// The address of the connection it arrived on (`127.0.0.1`), when a receiver knows it.
    public var peerAddress: String?
    /// When a receiver read it off its socket (``decode(_:limits:localVersion:)``): where a node's
    /// answer time starts (``ReinActorSystem/answerTimes(of:)``). `nil` for a message made here.
    public var receivedAt: ContinuousClock.Instant?

    /// A message whose header's frame count and byte count are set from `frames`.
    public init(header: WireHeader, frames: [WireFrame]) {
        var header = header
        precondition(frames.count <= Int(UInt16.max), "too many frames")
        header.frameCount = UInt16(frames.count)
        header.payloadBytes = UInt64(frames.reduce(0) { $0 + $1.count })
        self.header = header
        self.frames = frames
    }

    init(checkedHeader: WireHeader, frames: [WireFrame]) {
        self.header = checkedHeader
        self.frames = frames
    }

    /// Decodes a message from its frames (header first) and checks that the header's declared
    /// frame and byte counts match the frames present.
    public static func decode(
        _ frames: [WireFrame], limits: WireLimits = .default, localVersion: UInt16 = WireHeader.currentVersion
    ) throws(WireError) -> WireMessage {
        guard let first = frames.first else { throw WireError(.truncated, "message has no header frame") }
        let header = try first.withUnsafeBytes { (raw) throws(WireError) -> WireHeader in
            try WireHeader.decode(raw, limits: limits, localVersion: localVersion)
        }
        let payload = Array(frames.dropFirst())
        guard payload.count == Int(header.frameCount) else {
            throw WireError(
                .lengthMismatch,
                "header declares \(header.frameCount) payload frames, \(payload.count) present")
        }
        let bytes = payload.reduce(UInt64(0)) { $0 + UInt64($1.count) }
        guard bytes == header.payloadBytes else {
            throw WireError(
                .lengthMismatch, "header declares \(header.payloadBytes) payload bytes, \(bytes) present")
        }
        var message = WireMessage(checkedHeader: header, frames: payload)
        message.receivedAt = .now
        return message
    }

    /// The frames to put on the wire: the encoded header, then the payload.
    public func encodedFrames() -> [WireFrame] {
        [WireFrame(header.encoded())] + frames
    }
}
