/// What every socket of a node shares: CURVE security, the limits inbound messages are checked
/// against (and that size `ZMQ_MAXMSGSIZE`), and the rejection counters.
public struct WireOptions: Sendable {
    /// CURVE keys for every socket (`nil`: plain, unauthenticated).
    public var security: TransportSecurity?
    /// Limits checked on every inbound message.
    public var limits: WireLimits
    /// Where rejected inbound messages are counted, by reason.
    public var rejections: WireRejections

    /// Options with `security`, `limits` and shared `rejections`.
    public init(
        security: TransportSecurity? = nil, limits: WireLimits = .default,
        rejections: WireRejections = WireRejections()
    ) {
        self.security = security
        self.limits = limits
        self.rejections = rejections
    }
}
