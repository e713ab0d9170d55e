import Logging
import Synchronization
import ZeroMQ

/// Receives bulk messages sent by ``BulkSender``s, in batches, on a dedicated PULL or SUB socket.
///
/// Built on `ZMQInbox`: one owner thread receives, drains what is already queued, and hands whole
/// batches to async code; when the consumer falls behind, the thread stops receiving and the
/// senders' high-water marks push back. Every message's header is checked (magic, version, kind
/// must be ``MessageKind/bulk``, frame and byte counts); malformed ones are dropped and counted in
/// ``rejectedMessages``, never delivered and never a crash.
public final class BulkReceiver: AsyncSequence, Sendable {
    public typealias Element = [BulkMessage]

    private let inbox: ZMQInbox
    private let limits: WireLimits
    private let rejected = SharedCounter()
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
    ///   - limits: the most frames and bytes a message may declare (and the socket's maximum
    ///     message size).
    ///   - logger: where rejected messages are reported (once).
    public init(
        context: ZMQContext, link: BulkLink, pattern: ZMQSocketType = .pull, highWaterMark: Int = 8,
        limits: WireLimits = .default, logger: Logger
    ) {
        precondition(pattern == .pull || pattern == .sub, "bulk receivers are PULL or SUB")
        self.limits = limits
        self.logger = logger
        let bound = Locked(BoundState())
        self.bound = bound
        inbox = ZMQInbox(
            context: context, maxBatch: 256, maxPendingBatches: 2,
            setUp: { context in
                let socket = try context.socket(pattern)
                try socket.setReceiveHighWaterMark(highWaterMark)
                try socket.setMaxMessageSize(limits.maxPayloadBytes + WireHeader.size + 64)
                if pattern == .sub { try socket.subscribe() }
                switch link {
                case .bind(let address): try socket.bind(address)
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
    public func close() { inbox.stop() }

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
        do {
            let message = try WireMessage.decode(parts.map(WireFrame.init), limits: limits)
            guard message.header.kind == .bulk else {
                throw WireError(.unknownKind, "\(message.header.kind) message on a bulk socket")
            }
            return message
        } catch {
            rejected.increment()
            if rejected.value <= 1 {
                logger.warning("rejected bulk message: \(error) (further ones counted)")
            }
            return nil
        }
    }
}
