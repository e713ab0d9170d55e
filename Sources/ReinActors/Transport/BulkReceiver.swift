import Logging
import Synchronization
import ZeroMQ

/// Receives bulk messages sent by ``BulkSender``s, in batches, on a dedicated PULL or SUB socket.
///
/// Built on `ZMQInbox`: one owner thread receives, drains what is already queued, and hands whole
/// batches to async code; when the consumer falls behind, the thread stops receiving and the
/// senders' high-water marks push back. Every message's header is checked (magic, version, kind
/// must be ``MessageKind/bulk``, frame and byte counts); malformed ones are dropped, counted by
/// reason in ``rejections`` (and in ``rejectedMessages``) and logged at most once per second per
/// peer address, never delivered and never a crash. A frame larger than
/// ``WireLimits/maxFrameBytes`` makes libzmq drop the connection before buffering it, and a bound
/// receiver keeps at most ``WireLimits/maxConnections`` connections (further ones are closed as
/// they are accepted and counted as ``WireRejections/tooManyConnections``).
public final class BulkReceiver: AsyncSequence, Sendable {
    public typealias Element = [BulkMessage]

    private let inbox: ZMQInbox
    private let limits: WireLimits
    private let rejected = SharedCounter()
    /// Where rejected messages are counted by reason (shared with the process's other sockets).
    public let rejections: WireRejections
    private let bound: Locked<BoundState>
    private let logger: Logger

    private struct BoundState {
        var endpoint: String?
        var waiters: [CheckedContinuation<String, Never>] = []
    }

    /// Opens the socket on its owner thread.
    /// - Parameters:
    ///   - context: the ZeroMQ context.
    ///   - link: bind or connect, and where.
    ///   - pattern: `.pull` (default) or `.sub` (subscribed to everything).
    ///   - highWaterMark: messages queued before senders are pushed back.
    ///   - limits: the most frames and bytes a message may declare, the socket's maximum message
    ///     size and, when it binds, its most connections.
    ///   - security: CURVE keys (a bound socket is a CURVE server, a connected one a client).
    ///   - rejections: where rejected messages are counted (default: counters of its own).
    ///   - logger: where rejected messages are reported (rate-limited).
    public init(
        context: ZMQContext, link: BulkLink, pattern: ZMQSocketType = .pull, highWaterMark: Int = 8,
        limits: WireLimits = .default, security: TransportSecurity? = nil,
        rejections: WireRejections = WireRejections(), logger: Logger
    ) {
        precondition(pattern == .pull || pattern == .sub, "bulk receivers are PULL or SUB")
        self.limits = limits
        self.rejections = rejections
        self.logger = logger
        let bound = Locked(BoundState())
        self.bound = bound
        inbox = ZMQInbox(
            context: context, maxBatch: 256, maxPendingBatches: 2,
            setUp: { context in
                let socket = try context.socket(pattern)
                try socket.setReceiveHighWaterMark(highWaterMark)
                try socket.applyInbound(limits)
                try security?.apply(to: socket, link: link)
                if pattern == .sub { try socket.subscribe() }
                switch link {
                case .bind(let address):
                    // Watches until the socket closes (the inbox closes it, also when bind fails).
                    try ConnectionWatch.start(
                        socket: socket, limits: limits, rejections: rejections, logger: logger)
                    try socket.bind(address)
                case .connect(let address): try socket.connect(address)
                }
                return socket
            },
            ready: { socket in
                let endpoint = (try? socket.lastEndpoint) ?? ""
                let waiters = bound.withLock { state in
                    state.endpoint = endpoint
                    defer { state.waiters.removeAll() }
                    return state.waiters
                }
                for waiter in waiters { waiter.resume(returning: endpoint) }
            })
    }

    /// The resolved endpoint once the socket is bound or connected (`tcp://127.0.0.1:41234`).
    public func endpoint() async -> String {
        await withCheckedContinuation { continuation in
            let known = bound.withLock { state -> String? in
                if let endpoint = state.endpoint { return endpoint }
                state.waiters.append(continuation)
                return nil
            }
            if let known { continuation.resume(returning: known) }
        }
    }

    /// Messages dropped as malformed so far.
    public var rejectedMessages: Int { rejected.value }

    /// Stops receiving and ends the sequence.
    public func close() {
        inbox.stop()
    }

    /// Yields batches of checked bulk messages; malformed ones are skipped.
    public struct AsyncIterator: AsyncIteratorProtocol {
        var base: ZMQInbox.AsyncIterator
        let receiver: BulkReceiver

        public mutating func next() async throws -> [BulkMessage]? {
            while let batch = try await base.next() {
                let messages = batch.compactMap { receiver.decode($0) }
                if !messages.isEmpty { return messages }
            }
            return nil
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(base: inbox.makeAsyncIterator(), receiver: self)
    }

    private func decode(_ parts: [ZMQMessage]) -> BulkMessage? {
        let address = parts.first?.metadata("Peer-Address")
        do {
            var message = try WireMessage.decode(parts.map(WireFrame.init), limits: limits)
            message.peerAddress = address
            guard message.header.kind == .bulk else {
                rejected.increment()
                rejections.record(
                    WireRejections.wrongKind, peer: Self.peer(message.header.sender, address), key: address,
                    error: WireError(.unknownKind, "\(message.header.kind) message on a bulk socket"),
                    logger: logger)
                return nil
            }
            return message
        } catch {
            rejected.increment()
            rejections.record(error, peer: address ?? "a peer", key: address, logger: logger)
            return nil
        }
    }

    /// Counts (and logs, rate-limited) a delivered message that its consumer refused: a payload
    /// that does not decode (``WireRejections/badPayload``), or one turned down
    /// (``WireRejections/refused``).
    public func reject(_ message: BulkMessage, reason: String, error: any Error) {
        rejected.increment()
        rejections.record(
            reason, peer: Self.peer(message.header.sender, message.peerAddress), key: message.peerAddress,
            error: error, logger: logger)
    }

    private static func peer(_ node: NodeID, _ address: String?) -> String {
        address.map { "\(node) at \($0)" } ?? node.description
    }
}
