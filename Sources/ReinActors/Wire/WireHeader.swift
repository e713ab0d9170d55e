/// The fixed 48-byte header frame that starts every message (see <doc:WireProtocol>).
///
/// | Offset | Size | Field |
/// |---|---|---|
/// | 0 | 4 | magic `REIN` |
/// | 4 | 2 | protocol version |
/// | 6 | 2 | ``MessageKind`` |
/// | 8 | 2 | ``WireFlags`` |
/// | 10 | 2 | payload frame count |
/// | 12 | 4 | reserved (0) |
/// | 16 | 8 | sender ``NodeID`` |
/// | 24 | 8 | sequence number |
/// | 32 | 8 | policy version |
/// | 40 | 8 | payload byte count |
///
/// All integers are little-endian.
public struct WireHeader: Sendable, Hashable {
    /// The four magic bytes, `REIN`.
    public static let magic: [UInt8] = Array("REIN".utf8)
    /// The protocol version this build speaks. 2: work orders and sample batches carry the
    /// learner incarnation (checkpoint/resume); 3: they carry the assignment token too (a batch is
    /// taken only with its assignment's token); 4: a sample batch is a header frame and one raw
    /// frame per column (ReinRuntime's `SampleBatchLayout`) instead of one frame of keyed values;
    /// 5: a sample batch carries its sampler settings (temperature, top-k), and the join reply the
    /// run's configuration as JSON (for workers written in other languages). Peers of other versions are refused by name.
    public static let currentVersion: UInt16 = 5
    /// The encoded size in bytes.
    public static let size = 48

    /// The protocol version the sender speaks.
    public var version: UInt16
    /// What the message is.
    public var kind: MessageKind
    /// Per-message flags.
    public var flags: WireFlags
    /// How many payload frames follow the header frame.
    public var frameCount: UInt16
    /// The node that sent the message (replies go back to it).
    public var sender: NodeID
    /// The sender's per-connection-independent message counter (strictly increasing per sender).
    public var sequence: UInt64
    /// The sender's policy version when it sent the message.
    public var policyVersion: UInt64
    /// The total size of the payload frames in bytes.
    public var payloadBytes: UInt64

    /// A header; ``WireMessage/init(header:frames:)`` fills in the frame and byte counts, and
    /// transports stamp the sender and sequence number.
    public init(
        kind: MessageKind, sender: NodeID, sequence: UInt64 = 0, policyVersion: UInt64 = 0,
        frameCount: UInt16 = 0, payloadBytes: UInt64 = 0, flags: WireFlags = [],
        version: UInt16 = WireHeader.currentVersion
    ) {
        self.version = version
        self.kind = kind
        self.flags = flags
        self.frameCount = frameCount
        self.sender = sender
        self.sequence = sequence
        self.policyVersion = policyVersion
        self.payloadBytes = payloadBytes
    }

    /// The 48 header bytes.
    public func encoded() -> [UInt8] {
        var w = ByteWriter(capacity: Self.size)
        w.writeRaw(Self.magic)
        w.write(version)
        w.write(kind.rawValue)
        w.write(flags.rawValue)
        w.write(frameCount)
        w.write(UInt32(0))
        w.write(sender.rawValue)
        w.write(sequence)
        w.write(policyVersion)
        w.write(payloadBytes)
        return w.bytes
    }

    /// Decodes and checks a header frame.
    ///
    /// Checks, in order: the magic, the protocol version (before the size, so that a peer with a
    /// longer header still gets "peer speaks protocol N"), the exact size, the kind, and the
    /// declared frame count and byte count against `limits`.
    /// - Parameters:
    ///   - raw: the header frame.
    ///   - limits: the most payload frames and bytes a header may declare.
    ///   - localVersion: the version this side speaks (tests simulate other builds).
    public static func decode(
        _ raw: UnsafeRawBufferPointer, limits: WireLimits = .default, localVersion: UInt16 = currentVersion
    ) throws(WireError) -> WireHeader {
        var r = ByteReader(raw)
        let magic = try r.take(4, "header magic")
        guard magic.elementsEqual(Self.magic) else {
            throw WireError(.badMagic, "header starts with \(hex(magic)), expected \(hex(Self.magic))")
        }
        let version = try r.read(UInt16.self, "protocol version")
        guard version == localVersion else { throw .unsupportedVersion(peer: version, local: localVersion) }
        guard raw.count >= size else { throw .truncated("header", need: size, have: raw.count) }
        guard raw.count == size else {
            throw WireError(.lengthMismatch, "header frame is \(raw.count) bytes, expected \(size)")
        }
        let rawKind = try r.read(UInt16.self)
        guard let kind = MessageKind(rawValue: rawKind) else {
            throw WireError(.unknownKind, "unknown message kind \(rawKind)")
        }
        let flags = WireFlags(rawValue: try r.read(UInt16.self))
        let frameCount = try r.read(UInt16.self)
        _ = try r.read(UInt32.self)  // reserved
        let header = WireHeader(
            kind: kind, sender: NodeID(rawValue: try r.read(UInt64.self)), sequence: try r.read(UInt64.self),
            policyVersion: try r.read(UInt64.self), frameCount: frameCount,
            payloadBytes: try r.read(UInt64.self), flags: flags, version: version)
        guard Int(frameCount) <= limits.maxFrames else {
            throw WireError(.oversize, "\(frameCount) payload frames, limit \(limits.maxFrames)")
        }
        guard header.payloadBytes <= UInt64(limits.maxPayloadBytes) else {
            throw WireError(
                .oversize, "\(header.payloadBytes) payload bytes, limit \(limits.maxPayloadBytes)")
        }
        return header
    }

    /// Decodes and checks a header frame held in an array.
    public static func decode(
        _ bytes: [UInt8], limits: WireLimits = .default, localVersion: UInt16 = currentVersion
    ) throws(WireError) -> WireHeader {
        try bytes.withUnsafeBytes { raw in
            Result { () throws(WireError) -> WireHeader in
                try decode(raw, limits: limits, localVersion: localVersion)
            }
        }.get()
    }
}

/// Per-message flags (the `flags` field of ``WireHeader``). Bits this build does not know are
/// ignored, so later versions may define them without a protocol bump.
public struct WireFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    /// On a ``MessageKind/bulk`` message: the last message of its stream.
    public static let endOfStream = WireFlags(rawValue: 1 << 0)
}

/// Upper bounds a receiver enforces before it trusts declared sizes, and the memory budget of a
/// node's bound sockets.
///
/// A connection's memory is bounded by ``maxFrameBytes`` (libzmq allocates a frame's declared
/// size when its length arrives, so a frame over the limit drops the connection first); a frame
/// that stops arriving is bounded in time by ``partialFrameTimeout``; and the number of
/// connections a bound socket keeps by ``maxConnections``. Together: ``inboundBudget``.
public struct WireLimits: Sendable, Hashable {
    /// The most payload frames a message may declare.
    public var maxFrames: Int
    /// The most payload bytes a message may declare.
    public var maxPayloadBytes: Int
    /// The largest single frame a receiving socket accepts (`ZMQ_MAXMSGSIZE`): a peer that sends
    /// a bigger one is disconnected by libzmq before the frame is buffered. Size it to the largest
    /// legitimate frame: a worker receives the policy and reference weights in one reply at join
    /// (``forWeights(parameterCount:)``), a learner one sample batch per frame; a weight
    /// broadcast chunk is 4 MiB (``WireFrame/init(floats:)`` of 2^20 floats).
    public var maxFrameBytes: Int
    /// How long a connection may take to finish a frame or answer a ZMTP heartbeat (and to
    /// complete its ZMTP/CURVE handshake) before it is dropped: a peer that sends part of a frame
    /// and stalls holds its memory at most this long.
    public var partialFrameTimeout: Duration
    /// The most connections a bound socket (the actor system's ROUTER, a bound ``BulkReceiver``
    /// or ``BulkSender``: the sample PULL, the weight PUB) keeps at once; further ones are closed as
    /// they are accepted and counted as ``WireRejections/tooManyConnections``.
    public var maxConnections: Int

    /// Limits of `maxFrames` payload frames, `maxPayloadBytes` payload bytes per message and
    /// `maxFrameBytes` per frame; `maxConnections` connections, each dropped when a frame stalls
    /// for `partialFrameTimeout`.
    public init(
        maxFrames: Int = 1024, maxPayloadBytes: Int = 1 << 30, maxFrameBytes: Int = 16 << 20,
        partialFrameTimeout: Duration = .seconds(10), maxConnections: Int = 64
    ) {
        precondition(maxConnections > 0 && partialFrameTimeout > .zero)
        self.maxFrames = maxFrames
        self.maxPayloadBytes = maxPayloadBytes
        self.maxFrameBytes = maxFrameBytes
        self.partialFrameTimeout = partialFrameTimeout
        self.maxConnections = maxConnections
    }

    /// 1024 frames, 1 GiB per message, 16 MiB per frame (the join reply of a model of up to two
    /// million parameters), 10 s partial-frame timeout, 64 connections.
    public static let `default` = WireLimits()

    /// The default limits with a frame limit fitting the weights of a model of `parameterCount`
    /// parameters: the policy and reference vectors of a join reply, plus 1 MiB of headers and
    /// envelope (and never below 1 MiB).
    public static func forWeights(parameterCount: Int) -> WireLimits {
        WireLimits(maxFrameBytes: max(1 << 20, 2 * 4 * parameterCount + (1 << 20)))
    }

    /// The value for `ZMQ_MAXMSGSIZE`: the frame limit, and never less than a header.
    public var socketMaxMessageSize: Int { max(maxFrameBytes, WireHeader.size) }

    /// The most memory partial frames can hold on one bound receiving socket: every allowed
    /// connection with one frame of the largest size in progress.
    public var inboundBudget: Int { maxConnections * socketMaxMessageSize }
}

func hex(_ bytes: some Collection<UInt8>) -> String {
    bytes.prefix(8).map { b in
        let s = String(b, radix: 16)
        return s.count == 1 ? "0" + s : s
    }.joined()
}
