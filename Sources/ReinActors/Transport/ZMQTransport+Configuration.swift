extension ZMQTransport {
    /// How a ZeroMQ node listens and what it accepts.
    public struct Configuration: Sendable {
        /// The node's human-readable name (sent in the handshake).
        public var name: String
        /// The endpoint to bind the inbound ROUTER to (`tcp://0.0.0.0:7000`,
        /// `tcp://127.0.0.1:*`, `ipc:///tmp/rein.sock`, `inproc://learner`), or `nil` for a node
        /// that only connects out (a worker behind NAT: the learner calls it back over the
        /// worker's own connection).
        public var bind: String?
        /// Limits enforced on every inbound header before declared sizes are trusted.
        public var limits: WireLimits
        /// The most messages taken from one socket per loop turn (the batch handed to the system).
        public var maxBatch: Int
        /// How long sockets keep unsent messages (the `leave` notices) when the transport stops.
        public var lingerOnShutdown: Duration
        /// CURVE keys: the ROUTER is a CURVE server, every DEALER a CURVE client of
        /// ``TransportSecurity/serverKey`` (`nil`: no security).
        public var security: TransportSecurity?
        /// Where rejected inbound messages are counted (share one per process).
        public var rejections: WireRejections
        /// Inbound messages queued per connection before libzmq stops reading from it
        /// (`ZMQ_RCVHWM`), so a flooding peer cannot grow memory without bound.
        public var receiveHighWaterMark: Int
        /// The protocol version this node speaks (tests simulate other builds).
        var protocolVersion: UInt16 = WireHeader.currentVersion

        public init(
            name: String, bind: String? = nil, limits: WireLimits = .default, maxBatch: Int = 256,
            lingerOnShutdown: Duration = .milliseconds(100), security: TransportSecurity? = nil,
            rejections: WireRejections = WireRejections(), receiveHighWaterMark: Int = 10_000
        ) {
            precondition(maxBatch > 0)
            self.name = name
            self.bind = bind
            self.limits = limits
            self.maxBatch = maxBatch
            self.lingerOnShutdown = lingerOnShutdown
            self.security = security
            self.rejections = rejections
            self.receiveHighWaterMark = receiveHighWaterMark
        }
    }
}
