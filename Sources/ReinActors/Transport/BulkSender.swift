import Dispatch
import Foundation
import Logging
import Synchronization
import ZeroMQ

/// Sends bulk data — sample batches, weights — as raw binary frames on a dedicated socket,
/// outside the per-call serialisation of the actor system.
///
/// Each message is a ``WireHeader`` of kind ``MessageKind/bulk`` (sender, sequence number, policy
/// version, flags) followed by the caller's frames, which go out without copying when they are
/// `ZMQBuffer`s (see ``WireFrame/init(floats:)``). The socket is PUSH (load-balanced to pullers:
/// workers → learner samples) or PUB (fan-out: learner → workers weights), owned by one thread.
///
/// **Backpressure.** ``send(_:policyVersion:flags:)`` suspends until libzmq has queued the message.
/// When the receivers fall behind, the high-water mark fills, the owner thread waits, and so do the
/// senders — without blocking the cooperative pool. A PUB socket drops instead (ZeroMQ semantics).
public final class BulkSender: Sendable {
    /// The node stamped as sender.
    public let node: NodeID
    /// The resolved endpoint when the sender binds.
    public let endpoint: String?

    private struct Job: Sendable {
        var frames: [WireFrame]
        var continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var jobs: [Job] = []
        var closed = false
        var sequence: UInt64 = 0
    }

    private let state = Locked(State())
    private let signal = DispatchSemaphore(value: 0)
    /// Caps the connections of a bound sender (``WireLimits/maxConnections``).

    /// Opens the socket and starts its owner thread.
    /// - Parameters:
    ///   - context: the ZeroMQ context.
    ///   - node: the sender stamped on every header (usually the actor system's ``ReinActorSystem/node``).
    ///   - link: bind or connect, and where.
    ///   - pattern: `.push` (default) or `.pub`.
    ///   - highWaterMark: messages queued per peer before senders wait.
    ///   - sendTimeout: how long one message may wait for room before ``send(_:policyVersion:flags:)``
    ///     throws (`nil` = forever).
    ///   - security: CURVE keys (a bound socket is a CURVE server, a connected one a client).
    ///   - limits: when it binds, its most connections (``WireLimits/maxConnections``; further
    ///     ones are closed as they are accepted, counted in `rejections` and logged by `logger`).
    public init(
        context: ZMQContext, node: NodeID, link: BulkLink, pattern: ZMQSocketType = .push,
        highWaterMark: Int = 8,
        sendTimeout: Duration? = .seconds(30), security: TransportSecurity? = nil,
        limits: WireLimits = .default, rejections: WireRejections = WireRejections(),
        logger: Logger = Logger(label: "rein.bulk")
    ) throws {
        precondition(pattern == .push || pattern == .pub, "bulk senders are PUSH or PUB")
        self.node = node
        let socket = try context.socket(pattern)
        try socket.setSendHighWaterMark(highWaterMark)
        try socket.setSendTimeout(sendTimeout)
        // PUSH never receives; PUB receives only subscriptions (ours subscribe to everything).
        try socket.setMaxMessageSize(1024)
        try security?.apply(to: socket, link: link)
        switch link {
        case .bind(let address):
            // Watches until the socket closes (on the send thread, or here if bind fails).
            try ConnectionWatch.start(
                socket: socket, limits: limits, rejections: rejections, logger: logger)
            try socket.bind(address)
            endpoint = try socket.lastEndpoint
        case .connect(let address):
            try socket.connect(address)
            endpoint = nil
        }
        let handover = Handover(socket)
        let thread = Thread { [state, signal] in Self.run(handover.take(), state: state, signal: signal) }
        thread.name = "rein-bulk-send"
        thread.start()
    }

    /// Sends one bulk message: a header stamped with `policyVersion` and `flags`, then `frames`.
    /// Suspends until libzmq has queued it.
    /// - Throws: `ZMQError` (`EAGAIN` after the send timeout), or ``RemoteCallError`` with
    ///   ``RemoteCallError/Code/systemShutDown`` once closed.
    public func send(_ frames: [WireFrame], policyVersion: UInt64, flags: WireFlags = []) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let accepted = state.withLock { state -> Bool in
                guard !state.closed else { return false }
                state.sequence += 1
                let header = WireHeader(
                    kind: .bulk, sender: node, sequence: state.sequence, policyVersion: policyVersion,
                    flags: flags)
                let message = WireMessage(header: header, frames: frames)
                state.jobs.append(Job(frames: message.encodedFrames(), continuation: continuation))
                return true
            }
            if accepted {
                signal.signal()
            } else {
                continuation.resume(throwing: RemoteCallError(.systemShutDown, "bulk sender closed"))
            }
        }
    }

    /// Stops accepting messages; the owner thread sends what is queued, then closes the socket.
    public func close() {
        state.withLock { $0.closed = true }
        signal.signal()
    }

    deinit { close() }

    private static func run(_ socket: ZMQSocket, state: Locked<State>, signal: DispatchSemaphore) {
        defer { socket.close() }
        while true {
            signal.wait()
            let (jobs, closed) = state.withLock { state in
                defer { state.jobs.removeAll() }
                return (state.jobs, state.closed)
            }
            for job in jobs {
                do {
                    if try !socket.send(multipart: job.frames) {
                        throw ZMQError(operation: "zmq_send", code: EAGAIN, context: "bulk send timed out")
                    }
                    job.continuation.resume()
                } catch {
                    job.continuation.resume(throwing: error)
                }
            }
            if closed { return }
        }
    }
}
