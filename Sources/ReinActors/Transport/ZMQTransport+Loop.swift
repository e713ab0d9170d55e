import Foundation
import Logging
import ZeroMQ

extension ZMQTransport {
    /// Everything the owner thread owns: the sockets and the routing tables. Never shared; built
    /// on the initialising thread and handed over once, before the thread starts (thread start is
    /// a full barrier, as libzmq requires for moving sockets between threads).
    final class IOLoop {
        private let context: ZMQContext
        private let node: NodeID
        private let configuration: Configuration
        private let endpoint: String?
        private let wake: ZMQSocket
        private let router: ZMQSocket?
        private let logger: Logger
        private let rejected: SharedCounter
        private let commands: CommandQueue

        private var handler: (@Sendable ([TransportEvent]) -> Void)?
        private var events: [TransportEvent] = []
        /// Continuations to resume once the current batch of events was delivered.
        private var afterDelivery: [() -> Void] = []
        private var dealers: [NodeID: ZMQSocket] = [:]
        private var routerPeers: Set<NodeID> = []
        private var handshakes: [Handshake] = []
        /// The node reached at each address this node connected to (a second `connect` to the
        /// same address returns it: a ROUTER refuses a second connection with the same routing id).
        private var connected: [String: Member] = [:]
        private var sequence: UInt64 = 0
        private var loggedRejects: Set<String> = []
        private var running = true
        /// Whether the loop ends by request (say `leave`) rather than by context termination.
        private var stopRequested = false
        private var stopContinuations: [CheckedContinuation<Void, Never>] = []

        private struct Handshake {
            let dealer: ZMQSocket
            let address: String
            let deadline: ContinuousClock.Instant
            let continuation: CheckedContinuation<Member, any Error>
        }

        init(
            context: ZMQContext, node: NodeID, configuration: Configuration, endpoint: String?,
            wake: ZMQSocket,
            router: ZMQSocket?, logger: Logger, rejected: SharedCounter, commands: CommandQueue
        ) {
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

        private func run() {
            while running {
                var poller = ZMQPoller()
                poller.add(wake)
                if let router { poller.add(router) }
                let peers = Array(dealers)
                for (_, dealer) in peers { poller.add(dealer) }
                let connecting = handshakes.map(\.dealer)
                for dealer in connecting { poller.add(dealer) }
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
                for (_, dealer) in peers {
                    if ready[index].contains(.readable), dealer.isOpen {
                        receive(from: dealer, isRouter: false)
                    }
                    index += 1
                }
                for dealer in connecting {
                    if ready[index].contains(.readable), dealer.isOpen {
                        receive(from: dealer, isRouter: false)
                    }
                    index += 1
                }
                expireHandshakes()
                deliver()
            }
            finish()
        }

        private func pollTimeout() -> Duration {
            guard let first = handshakes.map(\.deadline).min() else { return .milliseconds(500) }
            return max(.zero, min(.milliseconds(500), ContinuousClock.now.duration(to: first)))
        }

        private func deliver() {
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
        private func finish() {
            if stopRequested {
                let goodbye = WireMessage(header: WireHeader(kind: .leave, sender: node), frames: [])
                for peer in Set(dealers.keys).union(routerPeers) { route(goodbye, to: peer) }
            }
            for (_, dealer) in dealers { close(dealer, linger: configuration.lingerOnShutdown) }
            if let router { close(router, linger: configuration.lingerOnShutdown) }
            for handshake in handshakes {
                close(handshake.dealer, linger: .zero)
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

        private func close(_ socket: ZMQSocket, linger: Duration) {
            try? socket.setLinger(linger)
            socket.close()
        }

        // MARK: Commands

        private func drainWake() {
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

        private func perform(_ command: Command) {
            switch command {
            case .send(let message, let peer):
                route(message, to: peer)
            case .connect(let address, let timeout, let continuation):
                connect(address, timeout: timeout, continuation)
            case .disconnect(let peer):
                if let dealer = dealers.removeValue(forKey: peer) { close(dealer, linger: .zero) }
                routerPeers.remove(peer)
            case .start(let handler):
                self.handler = handler
            case .stop(let continuation):
                if let continuation { stopContinuations.append(continuation) }
                stopRequested = true
                running = false
            }
        }

        private func abandon(_ command: Command) {
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

        private func connect(
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
                try dealer.setReceiveHighWaterMark(0)
                try dealer.setMaxMessageSize(configuration.limits.maxPayloadBytes + WireHeader.size)
                try dealer.setReconnectInterval(.milliseconds(100))
                try dealer.connect(address)
                let hello = HelloEnvelope(name: configuration.name, endpoint: endpoint ?? "")
                var header = WireHeader(kind: .hello, sender: node, version: configuration.protocolVersion)
                header.sequence = nextSequence()
                try send(
                    WireMessage(header: header, frames: [WireFrame(hello.encoded())]).encodedFrames(),
                    on: dealer)
                handshakes.append(
                    Handshake(
                        dealer: dealer, address: address, deadline: ContinuousClock.now.advanced(by: timeout),
                        continuation: continuation))
            } catch {
                continuation.resume(throwing: error)
            }
        }

        private func expireHandshakes() {
            let now = ContinuousClock.now
            handshakes.removeAll { handshake in
                guard handshake.deadline <= now else { return false }
                close(handshake.dealer, linger: .zero)
                handshake.continuation.resume(
                    throwing: RemoteCallError(.timedOut, "no welcome from \(handshake.address)"))
                return true
            }
        }

        // MARK: Sending

        private func nextSequence() -> UInt64 {
            sequence += 1
            return sequence
        }

        /// Sends `message` to `peer` over its DEALER, or back over the ROUTER connection it opened.
        private func route(_ message: WireMessage, to peer: NodeID) {
            var message = message
            message.header.sender = node
            message.header.sequence = nextSequence()
            message.header.version = configuration.protocolVersion
            do {
                if let dealer = dealers[peer] {
                    try send(message.encodedFrames(), on: dealer)
                } else if let router, routerPeers.contains(peer) {
                    try send([WireFrame(peer.bytes)] + message.encodedFrames(), on: router)
                } else {
                    events.append(.lost(peer, reason: "no connection to \(peer)"))
                }
            } catch let error as ZMQError where error.isHostUnreachable {
                routerPeers.remove(peer)
                events.append(.lost(peer, reason: "unreachable (disconnected)"))
            } catch {
                logger.warning("send to \(peer) failed: \(error)")
                events.append(.lost(peer, reason: "send failed: \(error)"))
            }
        }

        private func send(_ frames: [WireFrame], on socket: ZMQSocket) throws {
            for (i, frame) in frames.enumerated() {
                let more = i + 1 < frames.count
                switch frame.storage {
                case .bytes(let bytes): try socket.send(bytes, more: more)
                case .buffer(let buffer): try socket.send(buffer, more: more)
                case .message(let message):
                    _ = try message.withUnsafeBytes { (raw) throws(ZMQError) in
                        try socket.send(raw, more: more)
                    }
                }
            }
        }

        // MARK: Receiving

        private func receive(from socket: ZMQSocket, isRouter: Bool) {
            var taken = 0
            while taken < configuration.maxBatch {
                let parts: [ZMQMessage]
                do {
                    guard let received = try socket.receiveMultipart(wait: .nonBlocking) else { return }
                    parts = received
                } catch {
                    if error.isTerminated {
                        running = false
                    } else {
                        logger.error("receive failed: \(error)")
                    }
                    return
                }
                taken += 1
                if isRouter {
                    guard parts.count >= 2 else { continue }
                    accept(parts[1...].map(WireFrame.init), routingID: parts[0].bytes, on: socket)
                } else {
                    accept(parts.map(WireFrame.init), routingID: nil, on: socket)
                }
            }
        }

        /// Decodes and dispatches one inbound message; `routingID` is set for ROUTER traffic.
        private func accept(_ frames: [WireFrame], routingID: [UInt8]?, on socket: ZMQSocket) {
            let message: WireMessage
            do {
                message = try WireMessage.decode(
                    frames, limits: configuration.limits, localVersion: configuration.protocolVersion)
            } catch {
                reject(error, routingID: routingID, on: socket)
                return
            }
            let sender = message.header.sender
            if let routingID {
                guard NodeID(bytes: routingID) == sender else {
                    reject(
                        WireError(.malformed, "sender \(sender) arrived with routing id \(hex(routingID))"),
                        routingID: routingID, on: socket)
                    return
                }
                routerPeers.insert(sender)
            }
            switch message.header.kind {
            case .hello:
                guard routingID != nil, let hello = decodeHello(message) else { return }
                let welcome = HelloEnvelope(name: configuration.name, endpoint: endpoint ?? "")
                route(
                    WireMessage(
                        header: WireHeader(kind: .welcome, sender: node),
                        frames: [WireFrame(welcome.encoded())]), to: sender)
                events.append(.joined(Member(node: sender, name: hello.name)))
            case .welcome:
                guard let index = handshakes.firstIndex(where: { $0.dealer === socket }),
                    let welcome = decodeHello(message)
                else { return }
                let handshake = handshakes.remove(at: index)
                let member = Member(node: sender, name: welcome.name)
                connected[handshake.address] = member
                if dealers[sender] == nil {
                    dealers[sender] = handshake.dealer
                } else {
                    close(handshake.dealer, linger: .zero)  // already connected to that node
                }
                events.append(.joined(member))
                afterDelivery.append { handshake.continuation.resume(returning: member) }
            case .leave:
                if let dealer = dealers.removeValue(forKey: sender) { close(dealer, linger: .zero) }
                routerPeers.remove(sender)
                events.append(.left(sender))
            case .call, .reply, .heartbeat:
                events.append(.message(message))
            case .bulk:
                reject(
                    WireError(.unknownKind, "bulk message on the control channel"), routingID: routingID,
                    on: socket)
            }
        }

        private func decodeHello(_ message: WireMessage) -> HelloEnvelope? {
            guard let frame = message.frames.first else { return nil }
            do {
                return try frame.withUnsafeBytes { raw in try HelloEnvelope.decode(raw) }
            } catch {
                rejected.increment()
                logger.warning("malformed \(message.header.kind) from \(message.header.sender): \(error)")
                return nil
            }
        }

        /// Counts and logs (once per peer) a message that failed its checks. A handshake that
        /// meets another protocol version fails its `connect`; a `hello` in another version is
        /// answered in ours, so the other side can report both versions too.
        private func reject(_ error: any Error, routingID: [UInt8]?, on socket: ZMQSocket) {
            rejected.increment()
            let peer = routingID.map { NodeID(bytes: $0)?.description ?? hex($0) } ?? "a connection"
            let key = "\(peer)/\((error as? WireError)?.code.description ?? "?")"
            if loggedRejects.insert(key).inserted {
                logger.warning("rejected message from \(peer): \(error) (further ones counted, not logged)")
            }
            guard let wire = error as? WireError, wire.code == .unsupportedVersion else { return }
            if let index = handshakes.firstIndex(where: { $0.dealer === socket }) {
                let handshake = handshakes.remove(at: index)
                close(handshake.dealer, linger: .zero)
                handshake.continuation.resume(throwing: wire)
            } else if let router, let routingID {
                var header = WireHeader(kind: .welcome, sender: node, version: configuration.protocolVersion)
                header.sequence = nextSequence()
                let welcome = HelloEnvelope(name: configuration.name, endpoint: endpoint ?? "")
                let frames = WireMessage(header: header, frames: [WireFrame(welcome.encoded())])
                    .encodedFrames()
                try? send([WireFrame(routingID)] + frames, on: router)
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
