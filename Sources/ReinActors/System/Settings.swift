extension ReinActorSystem {
    /// Timeouts and policies of an actor system.
    public struct Settings: Sendable {
        /// How long a remote call waits for its reply unless overridden with
        /// ``ReinActorSystem/withCallTimeout(_:_:)``. Default 5 s.
        public var callTimeout: Duration
        /// How often each peer is sent a heartbeat. Default 250 ms.
        public var heartbeatInterval: Duration
        /// How long a peer may stay silent before it is declared dead. Default 1.5 s, so a dead
        /// peer is detected within 2 s (timeout + one interval).
        public var heartbeatTimeout: Duration
        /// The most heartbeats a second this node sends (and asks its peers to send it). With
        /// more peers than that allows at ``heartbeatInterval``, the node's pace slows and the
        /// timeout grows with it (see ``HeartbeatPacing``). Default 256: a learner paces its
        /// heartbeats at 250 ms up to 64 workers and at 1 s with 256.
        public var heartbeatsPerSecond: Int
        /// Error types that travel to the caller as themselves (they must be `Codable`, and
        /// registered on both sides). Any other thrown error arrives as ``RemoteError``.
        public var transportableErrors: [any (Error & Codable).Type]

        /// Settings with the given timeouts (all must be positive) and transportable errors.
        public init(
            callTimeout: Duration = .seconds(5),
            heartbeatInterval: Duration = .milliseconds(250),
            heartbeatTimeout: Duration = .milliseconds(1500),
            heartbeatsPerSecond: Int = 256,
            transportableErrors: [any (Error & Codable).Type] = []
        ) {
            precondition(
                callTimeout > .zero && heartbeatInterval > .zero && heartbeatTimeout > .zero
                    && heartbeatsPerSecond > 0)
            self.callTimeout = callTimeout
            self.heartbeatInterval = heartbeatInterval
            self.heartbeatTimeout = heartbeatTimeout
            self.heartbeatsPerSecond = heartbeatsPerSecond
            self.transportableErrors = transportableErrors
        }

        /// The heartbeat pacing these settings give.
        public var heartbeatPacing: HeartbeatPacing {
            HeartbeatPacing(
                base: heartbeatInterval, timeout: heartbeatTimeout, perSecond: heartbeatsPerSecond)
        }
    }
}
