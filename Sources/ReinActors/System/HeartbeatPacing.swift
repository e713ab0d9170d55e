/// How often two nodes heartbeat each other, and how long a silence means death, when one node has
/// many peers.
///
/// A node with `p` peers sends `p` heartbeats per interval and receives as many. At the base
/// interval of 250 ms, a learner with 256 workers handles 1,024 a second each way, a fixed cost of
/// 5–10% of a core before any batch is served. So each node has a **pace**: the base interval, or
/// longer when it has more peers than ``perSecond`` heartbeats a second allow, in whole multiples
/// of the base (at the default 256 a second: 250 ms up to 64 peers, 500 ms up to 128, 1 s up to
/// 256). A node announces its pace in every heartbeat it sends (``HeartbeatEnvelope``), and two
/// nodes heartbeat each other at the slower of their two paces — so a learner's 256 workers slow
/// down with it, and a worker alone with its learner learns the learner's pace.
///
/// The timeout grows by what the interval grew, not in proportion: a peer is dead once silent for
/// ``deadline(pair:)`` = timeout + pair pace − base. The slack a peer has for a stall (timeout −
/// base) stays what the configuration says, and a dead peer is still found within the timeout plus
/// one pace.
///
/// A peer's announced pace is only trusted up to ``maxInterval``: a peer cannot make itself
/// immortal by announcing an hour.
///
/// Pure: no clock, no I/O. ``Membership`` keeps the per-peer state and asks these questions.
public struct HeartbeatPacing: Sendable, Hashable {
    /// The interval with few peers (``ReinActorSystem/Settings/heartbeatInterval``).
    public var base: Duration
    /// The silence that means death at the base interval
    /// (``ReinActorSystem/Settings/heartbeatTimeout``).
    public var timeout: Duration
    /// The most heartbeats a second this node sends (and asks its peers to send it, together).
    public var perSecond: Int

    /// The longest pace: a node's own (with more than `perSecond` × 10 s peers) and the most a
    /// peer's announcement is believed.
    public static let maxInterval = Duration.seconds(10)

    /// Pacing with `base` interval, `timeout` and at most `perSecond` heartbeats a second (all
    /// positive).
    public init(base: Duration, timeout: Duration, perSecond: Int) {
        precondition(base > .zero && timeout > .zero && perSecond > 0)
        self.base = base
        self.timeout = timeout
        self.perSecond = perSecond
    }

    /// This node's pace with `peers` peers: the shortest whole multiple of the base at which
    /// `peers` heartbeats an interval stay within ``perSecond`` a second (at most ``maxInterval``,
    /// and never shorter than the base).
    public func interval(peers: Int) -> Duration {
        // The interval must be at least peers / perSecond seconds: that many bases, rounded up.
        let needed = Duration.seconds(max(peers, 0)) / perSecond
        let multiples = Int((needed / base).rounded(.up))
        guard multiples > 1 else { return base }
        return min(base * multiples, ceiling)
    }

    /// The pace between this node (pace `own`) and a peer that announced `peer` (`nil`: it has
    /// not announced one, or is an older node without paces): the slower of the two, with the
    /// peer's announcement clamped to [base, ``maxInterval``].
    public func pair(own: Duration, peer: Duration?) -> Duration {
        guard let peer else { return own }
        return max(own, min(max(peer, base), ceiling))
    }

    /// The longest pace there is: ``maxInterval``, or the base if that is longer.
    private var ceiling: Duration { max(base, Self.maxInterval) }

    /// Whether a heartbeat to a peer at pace `pair` is due, `elapsed` after the last one. Rounds
    /// are a base apart, so a heartbeat goes at the round nearest its time (never more than half
    /// a base early or late).
    public func isDue(elapsed: Duration, pair: Duration) -> Bool {
        elapsed + base / 2 >= pair
    }

    /// How long a peer at pace `pair` may stay silent before it is declared dead: the timeout,
    /// plus what the pace adds to the base interval.
    public func deadline(pair: Duration) -> Duration {
        timeout + max(pair - base, .zero)
    }
}

/// The payload frame of a ``MessageKind/heartbeat`` message: the sender's pace, the interval at
/// which it heartbeats and asks to be heartbeated (`UInt32` milliseconds, at least 1). A heartbeat
/// without a payload frame (an older node) announces no pace.
struct HeartbeatEnvelope: Sendable, Hashable {
    var interval: Duration

    func encoded() -> [UInt8] {
        var w = ByteWriter(capacity: 4)
        let milliseconds = (interval / .milliseconds(1)).rounded(.up)
        w.write(UInt32(min(max(milliseconds, 1), Double(UInt32.max))))
        return w.bytes
    }

    static func decode(_ raw: UnsafeRawBufferPointer) throws(WireError) -> HeartbeatEnvelope {
        var r = ByteReader(raw)
        let milliseconds = try r.read(UInt32.self, "heartbeat interval")
        try r.expectEnd("heartbeat")
        guard milliseconds > 0 else { throw WireError(.malformed, "heartbeat interval of 0 ms") }
        return HeartbeatEnvelope(interval: .milliseconds(Int(milliseconds)))
    }

    /// The pace a heartbeat message announces (`nil` without a payload frame, or if the frame is
    /// not a heartbeat envelope: the transport refuses those before they get here).
    static func pace(of message: WireMessage) -> Duration? {
        guard let frame = message.frames.first else { return nil }
        return try? frame.withUnsafeBytes { raw throws(WireError) in try decode(raw).interval }
    }
}
