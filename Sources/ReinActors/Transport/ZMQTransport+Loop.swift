import Foundation
import Logging
import ZeroMQ

extension ZMQTransport {
    /// Everything the owner thread owns: the sockets and the routing tables. Never shared; built
    /// on the initialising thread and handed over once, before the thread starts (thread start is
    /// a full barrier, as libzmq requires for moving sockets between threads).
    final class IOLoop {
        let context: ZMQContext
        let node: NodeID
        let configuration: Configuration
        let endpoint: String?
        let wake: ZMQSocket
        let router: ZMQSocket?
        /// Caps the ROUTER's connections (``WireLimits/maxConnections``).
        let connectionGuard: ConnectionGuard?
        let logger: Logger
        let rejected: SharedCounter
        let commands: CommandQueue

        var handler: (@Sendable ([TransportEvent]) -> Void)?
        var events: [TransportEvent] = []
        /// Continuations to resume once the current batch of events was delivered.
        var afterDelivery: [() -> Void] = []
        var dealers: [NodeID: ZMQSocket] = [:]
        /// Peers that said hello on the ROUTER, with the CURVE key their connection authenticated
        /// with (`nil` without CURVE).
        var routerPeers: [NodeID: String?] = [:]
        /// ROUTER peers a send found unreachable this turn, and the turn before (see
        /// ``settleUnreachable()``).
        var unreachable: Set<NodeID> = []
        var settling: Set<NodeID> = []
        var handshakes: [Handshake] = []
        /// The node reached at each address this node connected to (a second `connect` to the
        /// same address returns it: a ROUTER refuses a second connection with the same routing id).
        var connected: [String: Member] = [:]
        var sequence: UInt64 = 0
        /// Rate limit of the "send failed" lines (one per peer would flood when many vanish).
        let sendFailures = LogRateLimit()
        var running = true
        /// Whether the loop ends by request (say `leave`) rather than by context termination.
        var stopRequested = false
        var stopContinuations: [CheckedContinuation<Void, Never>] = []

        struct Handshake {
            let dealer: ZMQSocket
            let address: String
            let deadline: ContinuousClock.Instant
            let continuation: CheckedContinuation<Member, any Error>
            /// Reports a failed ZMTP/CURVE handshake (a security mismatch) at once.
            let monitor: ZMQMonitor?
            /// Handshakes the peer closed before finishing so far (see ``HandshakeRefusal``).
            var drops = 0
            /// ZMTP connections the DEALER completed so far: from the second on, each one says
            /// `hello` again (the first went out on a connection the peer closed, e.g. at its
            /// connection cap, and ZeroMQ does not resend what it wrote there).
            var connections = 0
        }

        init(
            context: ZMQContext, node: NodeID, configuration: Configuration, endpoint: String?,
            wake: ZMQSocket,
            router: ZMQSocket?, connectionGuard: ConnectionGuard?, logger: Logger, rejected: SharedCounter,
            commands: CommandQueue
        ) {
            self.connectionGuard = connectionGuard
            self.context = context
            self.node = node
            self.configuration = configuration
            self.endpoint = endpoint
            self.wake = wake
            self.router = router
            self.logger = logger
            self.rejected = rejected
            self.commands = commands
        }

        /// Starts the owner thread; it runs until a stop command or context shutdown.
        static func start(_ loop: sending IOLoop) {
            let box = Handover(loop)
            let thread = Thread { box.take().run() }
            thread.name = "rein-zmq-\(loop.configuration.name)"
            thread.start()
        }

        // MARK: The loop

        func run() {
            while running {
                var poller = ZMQPoller()
                poller.add(wake)
                if let router { poller.add(router) }
                if let connectionGuard { poller.add(connectionGuard.monitor.socket) }
                let peers = Array(dealers)
                for (_, dealer) in peers { poller.add(dealer) }
                let connecting = handshakes.map(\.dealer)
                for dealer in connecting { poller.add(dealer) }
                let monitored = handshakes.compactMap(\.monitor)
                for monitor in monitored { poller.add(monitor.socket) }
                let ready: [ZMQPollEvents]
                do {
                    ready = try poller.poll(timeout: pollTimeout())
                } catch {
                    if !error.isTerminated { logger.error("zmq_poll failed: \(error)") }
                    break
                }
                var index = 0
                if ready[index].contains(.readable) { drainWake() }
                index += 1
                if let router {
                    if ready[index].contains(.readable) { receive(from: router, isRouter: true) }
                    index += 1
                }
                if let connectionGuard {
                    if ready[index].contains(.readable) { connectionGuard.drain() }
                    index += 1
                }
                for (peer, dealer) in peers {
                    if ready[index].contains(.readable), dealer.isOpen {
                        receive(from: dealer, isRouter: false, peer: peer)
                    }
                    index += 1
                }
                for dealer in connecting {
                    if ready[index].contains(.readable), dealer.isOpen {
                        receive(from: dealer, isRouter: false)
                    }
                    index += 1
                }
                for monitor in monitored {
                    if ready[index].contains(.readable) { handshakeEvents(monitor) }
                    index += 1
                }
                settleUnreachable()
                expireHandshakes()
                deliver()
            }
            finish()
        }

        func pollTimeout() -> Duration {
            // A peer awaits its verdict: its `leave`, if it sent one, is already queued on the
            // ROUTER (libzmq refuses sends to a connection once it is closing), so look at once.
            if !settling.isEmpty { return .zero }
            guard let first = handshakes.map(\.deadline).min() else { return .milliseconds(500) }
            return max(.zero, min(.milliseconds(500), ContinuousClock.now.duration(to: first)))
        }

        func deliver() {
            if let handler, !events.isEmpty {
                let batch = events
                events.removeAll(keepingCapacity: true)
                handler(batch)
            }
            let resumes = afterDelivery
            afterDelivery.removeAll()
            for resume in resumes { resume() }
        }

        /// Says goodbye (only when asked to stop: a terminated context is a crash, and peers find
        /// out by heartbeat), closes every socket, and resumes whoever asked to stop.
        func finish() {
            if stopRequested {
                let goodbye = WireMessage(header: WireHeader(kind: .leave, sender: node), frames: [])
                for peer in Set(dealers.keys).union(routerPeers.keys) { route(goodbye, to: peer) }
            }
            for (_, dealer) in dealers { close(dealer, linger: configuration.lingerOnShutdown) }
            if let router { close(router, linger: configuration.lingerOnShutdown) }
            connectionGuard?.close()
            for handshake in handshakes {
                close(handshake)
                handshake.continuation.resume(
                    throwing: RemoteCallError(
                        .systemShutDown, "transport stopped while connecting to \(handshake.address)"))
            }
            handshakes.removeAll()
            dealers.removeAll()
            wake.close()
            handler = nil
            // Refuse further commands; answer the queued ones somebody waits for.
            for command in commands.close() { abandon(command) }
            for continuation in stopContinuations { continuation.resume() }
        }

        func close(_ socket: ZMQSocket, linger: Duration) {
            try? socket.setLinger(linger)
            socket.close()
        }

        // MARK: Commands

        func drainWake() {
            do {
                while try wake.receive(wait: .nonBlocking) != nil {}
            } catch {
                if !error.isTerminated { logger.error("wake-up socket failed: \(error)") }
                running = false
                return
            }
            for command in commands.take() {
                guard running else {
                    abandon(command)
                    continue
                }
                perform(command)
            }
        }

        func perform(_ command: Command) {
            switch command {
            case .send(let message, let peer):
                route(message, to: peer)
            case .connect(let address, let timeout, let continuation):
                connect(address, timeout: timeout, continuation)
            case .disconnect(let peer):
                if let dealer = dealers.removeValue(forKey: peer) { close(dealer, linger: .zero) }
                routerPeers[peer] = nil
            case .start(let handler):
                self.handler = handler
            case .stop(let continuation):
                if let continuation { stopContinuations.append(continuation) }
                stopRequested = true
                running = false
            }
        }

        func abandon(_ command: Command) {
            switch command {
            case .connect(let address, _, let continuation):
                continuation.resume(
                    throwing: RemoteCallError(
                        .systemShutDown, "transport stopped; not connecting to \(address)"))
            case .stop(let continuation):
                continuation?.resume()
            case .send, .disconnect, .start:
                break
            }
        }

        func connect(
            _ address: String, timeout: Duration, _ continuation: CheckedContinuation<Member, any Error>
        ) {
            if let member = connected[address], dealers[member.node] != nil {
                continuation.resume(returning: member)
                return
            }
            do {
                let dealer = try context.socket(.dealer)
                try dealer.setRoutingID(node.bytes)
                try dealer.setSendHighWaterMark(0)
                try dealer.setReceiveHighWaterMark(configuration.receiveHighWaterMark)
                try dealer.setMaxMessageSize(configuration.limits.socketMaxMessageSize)
                try configuration.security?.apply(to: dealer, binding: false)
                try dealer.setReconnectInterval(.milliseconds(100))
                let monitor = try? dealer.monitor([.handshakeFailed, .handshakeSucceeded])
                try dealer.connect(address)
                try sendHello(on: dealer)
                handshakes.append(
                    Handshake(
                        dealer: dealer, address: address, deadline: ContinuousClock.now.advanced(by: timeout),
                        continuation: continuation, monitor: monitor))
            } catch {
                continuation.resume(throwing: error)
            }
        }

        /// Queues this node's `hello` on a connecting DEALER.
        func sendHello(on dealer: ZMQSocket) throws {
            let hello = HelloEnvelope(name: configuration.name, endpoint: endpoint ?? "")
            var header = WireHeader(kind: .hello, sender: node, version: configuration.protocolVersion)
            header.sequence = nextSequence()
            try send(
                WireMessage(header: header, frames: [WireFrame(hello.encoded())]).encodedFrames(), on: dealer)
        }

        /// Closes a handshake's DEALER and monitor.
        func close(_ handshake: Handshake) {
            close(handshake.dealer, linger: .zero)
            handshake.monitor?.close()
        }

        /// Says `hello` again on each new ZMTP connection of a connecting DEALER after its first,
        /// and fails the connect whose DEALER's handshake failed, with the reason and the fix: a
        /// CURVE/plain mismatch, a key the other side refused, or CURVE handshakes the other side
        /// keeps closing (the wrong server key), is not worth retrying.
        func handshakeEvents(_ monitor: ZMQMonitor) {
            while let event = try? monitor.next(wait: .nonBlocking) {
                guard let index = handshakes.firstIndex(where: { $0.monitor === monitor }) else { return }
                if event.kind == .handshakeSucceeded {
                    handshakes[index].connections += 1
                    if handshakes[index].connections > 1 {
                        logger.debug("connected to \(handshakes[index].address) again: hello again")
                        try? sendHello(on: handshakes[index].dealer)
                    }
                    continue
                }
                let curve = configuration.security != nil
                if event.kind == .handshakeFailedNoDetail { handshakes[index].drops += 1 }
                guard
                    let error = HandshakeRefusal(event, address: handshakes[index].address, curve: curve)
                        ?? HandshakeRefusal(
                            drops: handshakes[index].drops, address: handshakes[index].address, curve: curve)
                else {
                    logger.debug(
                        "handshake with \(handshakes[index].address) failed: \(event.kind) \(event.value)")
                    continue
                }
                let handshake = handshakes.remove(at: index)
                close(handshake)
                // Not logged here: the caller gets the error, and a CLI prints it once.
                logger.debug("\(error)")
                handshake.continuation.resume(throwing: error.error)
                return
            }
        }

        func expireHandshakes() {
            let now = ContinuousClock.now
            handshakes.removeAll { handshake in
                guard handshake.deadline <= now else { return false }
                close(handshake)
                handshake.continuation.resume(
                    throwing: RemoteCallError(.timedOut, "no welcome from \(handshake.address)"))
                return true
            }
        }
    }
}

/// Moves a non-`Sendable` value to another thread exactly once.
///
/// `@unchecked Sendable`: the value is written once before the hand-over and taken once after it,
/// with the thread start between them as the synchronising barrier.
final class Handover<Value>: @unchecked Sendable {
    private var value: Value?
    init(_ value: sending Value) { self.value = value }
    func take() -> Value {
        defer { value = nil }
        return value!
    }
}
