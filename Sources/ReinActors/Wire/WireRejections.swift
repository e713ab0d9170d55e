import Logging
import ReinMetrics
import Synchronization

/// Counts of inbound messages a node refused, by reason, shared by every receiving socket of a
/// process (actor-system ROUTER/DEALERs, the sample stream, the weight subscription).
///
/// Reasons are the ``WireError/Code`` names (`truncated`, `badMagic`, `unsupportedVersion`,
/// `unknownKind`, `lengthMismatch`, `oversize`, `malformed`) plus those of the layers above the
/// header: ``unknownPeer`` (a valid message from a connection that never said `hello`),
/// ``wrongKind`` (a control message on a bulk socket or the reverse), ``badPayload`` (a valid
/// header whose payload does not decode or does not fit, e.g. a weight vector of the wrong size)
/// and ``refused`` (a well-formed sample the learner turned down), and those of the actor system:
/// ``wrongActorType`` (a call whose target is not a method of the callee's type) and ``forbidden``
/// (a call the caller's role may not make), and those of the connection cap: ``tooManyConnections``
/// and ``silentConnection``.
///
/// Each rejection is logged at most once per second per peer, with the number suppressed since
/// the last line (see ``record(_:peer:error:logger:)``), so a flood costs counters, not log lines.
/// The set of peers remembered for rate limiting is bounded. Every rejection is also recorded as
/// `rein_wire_rejections_total{reason}` (``ReinMetrics/ReinMetric/wireRejections``).
public final class WireRejections: Sendable {
    /// A valid message from a connection that never completed the handshake.
    public static let unknownPeer = "unknownPeer"
    /// A message of a kind this socket never carries.
    public static let wrongKind = "wrongKind"
    /// A valid header whose payload does not decode, or decodes to something impossible.
    public static let badPayload = "badPayload"
    /// A well-formed payload refused by its consumer (a sample for no open assignment).
    public static let refused = "refused"
    /// A call whose target is a method of another actor type than the callee's.
    public static let wrongActorType = "wrongActorType"
    /// A call the caller's role may not make (see ``CallerChecked``).
    public static let forbidden = "forbidden"
    /// A connection accepted beyond ``WireLimits/maxConnections`` (closed at once).
    public static let tooManyConnections = "tooManyConnections"
    /// A connection that sent nothing, not even its ZMTP greeting, closed at the cap of
    /// ``WireLimits/maxConnections`` to make room for a new one.
    public static let silentConnection = "silentConnection"

    private struct State {
        var counts: [String: Int] = [:]
        var lastLogged: [String: (at: ContinuousClock.Instant, suppressed: Int)] = [:]
    }

    private let state = Mutex(State())
    private let totalCount = Atomic<Int>(0)
    private let clock = ContinuousClock()
    /// The shortest time between two log lines about one peer.
    public let logInterval: Duration
    /// The most peers remembered for rate limiting (older entries are forgotten first).
    static let maxRemembered = 1024

    /// An empty set of counters; one log line per peer per `logInterval` at most.
    public init(logInterval: Duration = .seconds(1)) {
        self.logInterval = logInterval
    }

    /// Rejections so far, all reasons together.
    public var total: Int { totalCount.load(ordering: .relaxed) }

    /// Rejections so far for `reason`.
    public func count(_ reason: String) -> Int { state.withLock { $0.counts[reason, default: 0] } }

    /// Every reason seen so far with its count.
    public var counts: [String: Int] { state.withLock { $0.counts } }

    /// Peers remembered for rate limiting now (at most ``maxRemembered``).
    var rememberedPeers: Int { state.withLock { $0.lastLogged.count } }

    /// A one-line summary, `"12 rejected (badMagic 5, truncated 7)"`, or `"none rejected"`.
    public var summary: String {
        let counts = self.counts
        guard !counts.isEmpty else { return "none rejected" }
        let total = counts.values.reduce(0, +)
        return "\(total) rejected ("
            + counts.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ") + ")"
    }

    /// The reason name of `error`: its ``WireError/Code`` name, or ``badPayload`` for other errors.
    public static func reason(of error: any Error) -> String {
        (error as? WireError)?.code.description ?? badPayload
    }

    /// Counts one rejected message and, unless a line about `peer` was logged within
    /// ``logInterval``, logs a warning naming the peer, the reason, the error and how many
    /// rejections from that peer went unlogged since the last line.
    /// - Parameters:
    ///   - reason: a ``WireError/Code`` name or one of the reasons above.
    ///   - peer: who sent it (node id, routing id in hex, or `tcp://address`).
    ///   - error: what was wrong (logged; must never contain secrets).
    ///   - logger: where to log.
    ///   - key: what rate limiting groups by (default `peer`; e.g. the peer's address when one
    ///     host may open many connections).
    /// - Returns: whether a line was logged (at most once per ``logInterval`` per key).
    @discardableResult
    public func record(_ reason: String, peer: String, key: String? = nil, error: any Error, logger: Logger)
        -> Bool
    {
        let peerKey = key ?? peer
        totalCount.add(1, ordering: .relaxed)
        ReinMetric.wireRejections.increment(reason)
        let now = clock.now
        let suppressed: Int? = state.withLock { state in
            state.counts[reason, default: 0] += 1
            if let last = state.lastLogged[peerKey], now - last.at < logInterval {
                state.lastLogged[peerKey] = (last.at, last.suppressed + 1)
                return nil
            }
            if state.lastLogged.count >= Self.maxRemembered { forgetOldest(&state.lastLogged, now: now) }
            let earlier = state.lastLogged[peerKey]?.suppressed ?? 0
            state.lastLogged[peerKey] = (now, 0)
            return earlier
        }
        guard let suppressed else { return false }
        let more = suppressed > 0 ? "; \(suppressed) more from this peer since the last line" : ""
        logger.warning("rejected message from \(peer) (\(reason)): \(error)\(more)")
        return true
    }

    /// Counts one rejected message of `error`'s reason (see ``record(_:peer:error:logger:)``).
    @discardableResult
    public func record(_ error: any Error, peer: String, key: String? = nil, logger: Logger) -> Bool {
        record(Self.reason(of: error), peer: peer, key: key, error: error, logger: logger)
    }

    private func forgetOldest(
        _ entries: inout [String: (at: ContinuousClock.Instant, suppressed: Int)],
        now: ContinuousClock.Instant
    ) {
        // Forget everything idle for longer than the interval; if all are recent, the older half.
        entries = entries.filter { now - $0.value.at < logInterval }
        if entries.count >= Self.maxRemembered / 2 {
            let keep = entries.sorted { $0.value.at > $1.value.at }.prefix(Self.maxRemembered / 2)
            entries = Dictionary(uniqueKeysWithValues: keep.map { ($0.key, $0.value) })
        }
    }
}
