import Foundation
import Logging
import Synchronization
import ZeroMQ

/// A ``ReinTransport`` over ZeroMQ.
///
/// **Sockets.** Each node binds one ROUTER for inbound connections (optional) and opens one
/// DEALER per peer it ``connect(to:timeout:)``s to; every socket's routing id is the node's
/// ``NodeID``. A connection is used in both directions: a worker that connected to the learner is
/// called back over that same connection, so workers need no reachable address.
///
/// **Threads.** One owner thread holds every socket and runs `zmq_poll` over them plus an
/// inproc PAIR "wake-up" socket. Async code never touches a socket: ``send(_:to:)`` appends to a
/// queue under a mutex and, if the queue was idle, sends one byte on the wake-up PAIR, so it never
/// blocks the cooperative pool. Inbound messages are decoded, checked (protocol version, kind,
/// sizes, envelopes, that the sender completed the handshake; see <doc:WireProtocol>) and handed to
/// the actor system in batches, one call per loop turn. Malformed input is dropped, counted by
/// reason in ``rejections`` and logged at most once per second per peer.
///
/// **Handshake.** `connect` sends `hello` (name, version in the header); the peer answers
/// `welcome`. A peer speaking another protocol version answers in its own, so `connect` fails with
/// ``WireError`` "peer speaks protocol N, this build speaks M".
///
/// Control sockets have no high-water mark (calls are bounded by their callers); bulk data goes
/// over ``BulkSender``/``BulkReceiver`` sockets, which do have one.
public final class ZMQTransport: ReinTransport {
    /// This node (random per transport, so per process incarnation).
    public let localNode: NodeID
    /// This node's name.
    public let localName: String
    /// The resolved endpoint of the inbound ROUTER (`tcp://127.0.0.1:41234`), if it binds.
    public let endpoint: String?

    private let commands: CommandQueue
    private let rejected = SharedCounter()
    /// What ``successor()`` is made from.
    private let context: ZMQContext
    private let configuration: Configuration
    private let baseLogger: Logger

    enum Command: Sendable {
        case send(WireMessage, NodeID)
        case connect(String, Duration, CheckedContinuation<Member, any Error>)
        case disconnect(NodeID)
        case start(@Sendable ([TransportEvent]) -> Void)
        case stop(CheckedContinuation<Void, Never>?)
    }

    private static let counter = Atomic<Int>(0)

    /// Binds (if configured) and starts the owner thread.
    /// - Parameters:
    ///   - context: the ZeroMQ context (share one per process; `inproc://` needs it shared).
    ///   - configuration: name, bind endpoint, limits.
    ///   - logger: where the transport logs.
    public init(context: ZMQContext, configuration: Configuration, logger: Logger) throws {
        let node = NodeID.random()
        localNode = node
        localName = configuration.name
        (self.context, self.configuration, baseLogger) = (context, configuration, logger)
        rejections = configuration.rejections
        let wakeEndpoint =
            "inproc://rein-wake-\(node.rawValue)-\(Self.counter.add(1, ordering: .relaxed).newValue)"
        let wakeReceiver = try context.socket(.pair)
        try wakeReceiver.bind(wakeEndpoint)
        let wakeSender = try context.socket(.pair)
        try wakeSender.connect(wakeEndpoint)
        var router: ZMQSocket?
        var connectionGuard: ConnectionGuard?
        if let bind = configuration.bind {
            let socket = try context.socket(.router)
            try socket.setRoutingID(node.bytes)
            try socket.setRouterMandatory(true)
            // A node that dials again (it lost this node under load, or restarted with its id)
            // while its old connection is still being torn down must be heard: the newest
            // connection of a node id wins. The routing id only routes; who a node is rests on
            // its hello (and, with CURVE, the key its hello is bound to).
            try socket.setRouterHandover(true)
            try socket.setSendHighWaterMark(0)
            try socket.setReceiveHighWaterMark(configuration.receiveHighWaterMark)
            try socket.applyInbound(configuration.limits)
            try configuration.security?.apply(to: socket, binding: true)
            connectionGuard = try ConnectionGuard(
                socket: socket, limits: configuration.limits, rejections: configuration.rejections,
                logger: logger)
            try socket.bind(bind)
            endpoint = try socket.lastEndpoint
            router = socket
        } else {
            endpoint = nil
        }
        let commands = CommandQueue(wake: wakeSender)
        self.commands = commands
        var logger = logger
        logger[metadataKey: "rein.node"] = "\(configuration.name)"
        IOLoop.start(
            IOLoop(
                context: context, node: node, configuration: configuration, endpoint: endpoint,
                wake: wakeReceiver, router: router, connectionGuard: connectionGuard, logger: logger,
                rejected: rejected,
                commands: commands))
    }

    public func successor() throws -> any ReinTransport {
        try ZMQTransport(context: context, configuration: configuration, logger: baseLogger)
    }

    /// Inbound messages dropped as malformed so far (by this transport; ``rejections`` has the
    /// counts by reason, shared with the other sockets of the process).
    public var rejectedMessages: Int { rejected.value }

    /// The rejection counters this transport reports to (``Configuration/rejections``).
    public let rejections: WireRejections

    public func start(_ handler: @escaping @Sendable ([TransportEvent]) -> Void) {
        enqueue(.start(handler))
    }

    public func send(_ message: WireMessage, to node: NodeID) {
        enqueue(.send(message, node))
    }

    public func connect(to address: String, timeout: Duration) async throws -> Member {
        try await withCheckedThrowingContinuation { continuation in
            if !enqueue(.connect(address, timeout, continuation)) {
                continuation.resume(
                    throwing: RemoteCallError(.systemShutDown, "transport \(localName) stopped"))
            }
        }
    }

    public func disconnect(_ node: NodeID) {
        enqueue(.disconnect(node))
    }

    public func shutdown() async {
        await withCheckedContinuation { continuation in
            // Resumed by the owner thread once every socket is closed.
            if !enqueue(.stop(continuation), last: true) { continuation.resume() }
        }
    }

    @discardableResult
    private func enqueue(_ command: Command, last: Bool = false) -> Bool {
        commands.enqueue(command, last: last)
    }

    deinit {
        // Without shutdown(): stop the thread (it closes its sockets); peers will time us out.
        enqueue(.stop(nil), last: true)
    }
}

/// An atomic counter shared between threads.
final class SharedCounter: Sendable {
    private let atomic = Atomic<Int>(0)
    func increment() { atomic.add(1, ordering: .relaxed) }
    var value: Int { atomic.load(ordering: .relaxed) }
}

extension ZMQTransport {
    /// The commands queued by async code for the owner thread, and the sending end of the wake-up
    /// PAIR. The socket is used only under the mutex, which is the full barrier libzmq requires
    /// when a socket is used from more than one thread.
    final class CommandQueue: Sendable {
        private struct State {
            var commands: [Command] = []
            var wakePending = false
            var stopped = false
            let wake: ZMQSocket
        }

        private let state: Mutex<State>

        init(wake: sending ZMQSocket) {
            state = Mutex(State(wake: wake))
        }

        /// Queues a command and wakes the owner thread if it is idle; never blocks. `last`
        /// refuses every later command. Returns `false` if the queue no longer accepts commands.
        func enqueue(_ command: Command, last: Bool) -> Bool {
            state.withLock { state in
                guard !state.stopped else { return false }
                if last { state.stopped = true }
                state.commands.append(command)
                if !state.wakePending {
                    state.wakePending = true
                    _ = try? state.wake.send([], wait: .nonBlocking)
                }
                return true
            }
        }

        /// Refuses every later command and returns the queued ones (when the owner thread ends).
        func close() -> [Command] {
            state.withLock { state in
                state.stopped = true
                state.wake.close()
                defer { state.commands.removeAll() }
                return state.commands
            }
        }

        /// Takes every queued command (on the owner thread, after draining the wake-up socket).
        func take() -> [Command] {
            state.withLock { state in
                state.wakePending = false
                defer { state.commands.removeAll(keepingCapacity: true) }
                return state.commands
            }
        }
    }
}
