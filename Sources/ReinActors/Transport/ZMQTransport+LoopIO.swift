import Foundation
import Logging
import ZeroMQ

/// The owner thread's I/O: routing outbound messages and checking and dispatching inbound ones.
extension ZMQTransport.IOLoop {
    // MARK: Sending

    func nextSequence() -> UInt64 {
        sequence += 1
        return sequence
    }

    /// Sends `message` to `peer` over its DEALER, or back over the ROUTER connection it opened.
    func route(_ message: WireMessage, to peer: NodeID) {
        var message = message
        message.header.sender = node
        message.header.sequence = nextSequence()
        message.header.version = configuration.protocolVersion
        do {
            if let dealer = dealers[peer] {
                try send(message.encodedFrames(), on: dealer)
            } else if let router, routerPeers[peer] != nil {
                try send([WireFrame(peer.bytes)] + message.encodedFrames(), on: router)
            } else {
                events.append(.lost(peer, reason: "no connection to \(peer)"))
            }
        } catch let error as ZMQError where error.isHostUnreachable {
            // Its connection is gone, but a `leave` it sent before closing may still wait in the
            // ROUTER's queue: decided after the next turn's receives (``settleUnreachable()``).
            unreachable.insert(peer)
        } catch {
            sendFailures.log(logger, .warning, kind: "send failed", "send to \(peer) failed: \(error)")
            events.append(.lost(peer, reason: "send failed: \(error)"))
        }
    }

    /// Sends a multipart message without ever blocking the owner thread: the first frame goes
    /// non-blocking (control sockets have no high-water mark, so it only fails when the socket has
    /// no pipe to the peer at all, e.g. after libzmq dropped the connection over a protocol error
    /// such as an oversize frame); the rest follow atomically.
    /// - Throws: `ZMQError` (`EAGAIN`, "no connection to the peer") instead of blocking forever.
    func send(_ frames: [WireFrame], on socket: ZMQSocket) throws {
        if try !socket.send(multipart: frames, wait: .nonBlocking) {
            throw ZMQError(operation: "zmq_send", code: EAGAIN, context: "no connection to the peer")
        }
    }

    /// Declares lost the ROUTER peers a send found unreachable a turn ago, unless their `leave`
    /// was read since: a node that left is reported as having left, not as dead, whichever of its
    /// leave and our next send to it libzmq handled first. (Deciding a turn later, after the
    /// next turn's receives, costs no extra reads.)
    func settleUnreachable() {
        for peer in settling.sorted(by: { $0.rawValue < $1.rawValue }) where routerPeers[peer] != nil {
            routerPeers[peer] = nil
            events.append(.lost(peer, reason: "unreachable (disconnected)"))
        }
        settling = unreachable
        unreachable.removeAll()
    }

    // MARK: Receiving

    /// Takes up to ``Configuration/maxBatch`` messages from `socket`; `peer` is the node a
    /// DEALER is connected to (`nil` for the ROUTER and for DEALERs still in their handshake).
    ///
    /// A message can close its own socket (a `leave` closes the DEALER to the node that left): the
    /// batch ends there, rather than reading a closed socket (which logged an error per departed
    /// peer — hundreds of lines when a learner with hundreds of workers ended its run).
    func receive(from socket: ZMQSocket, isRouter: Bool, peer: NodeID? = nil) {
        var taken = 0
        while taken < configuration.maxBatch, socket.isOpen {
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
                guard parts.count >= 2 else {
                    let source = Source(
                        routingID: parts.first?.bytes ?? [], address: parts.first?.peerAddress)
                    reject(WireError(.truncated, "message has no header frame"), from: source, on: socket)
                    continue
                }
                var source = Source(
                    routingID: parts[0].bytes, address: parts[1].peerAddress ?? parts[0].peerAddress)
                if configuration.security != nil { source.publicKey = parts[1].metadata("User-Id") }
                accept(parts[1...].map(WireFrame.init), from: source, on: socket)
            } else {
                // A DEALER whose welcome was just taken in this batch belongs to its node now.
                let node = peer ?? dealers.first(where: { $0.value === socket })?.key
                let source = Source(node: node, address: parts.first?.peerAddress)
                accept(parts.map(WireFrame.init), from: source, on: socket)
            }
        }
    }

    /// Where an inbound message came from: the ROUTER routing id or the node a DEALER reaches,
    /// and the connection's address.
    struct Source {
        var routingID: [UInt8]?
        /// The node a DEALER is connected to.
        var node: NodeID?
        var address: String?
        /// The CURVE public key the connection authenticated with (ROUTER, with CURVE on).
        var publicKey: String?

        init(routingID: [UInt8], address: String?) {
            self.routingID = routingID
            self.address = address
        }

        init(node: NodeID?, address: String?) {
            self.node = node
            self.address = address
        }

        /// The peer as logged: node or routing id, and address.
        var description: String {
            let who =
                routingID.map { NodeID(bytes: $0)?.description ?? "routing id \(hex($0))" }
                ?? node?.description ?? "a connecting peer"
            return address.map { "\(who) at \($0)" } ?? who
        }

        /// What log rate limiting groups by: the address (a host opening many connections is one
        /// peer), else the peer.
        var key: String { address ?? description }
    }

    /// Decodes, checks and dispatches one inbound message.
    ///
    /// Beyond the header checks: on the ROUTER the routing id must be the header's sender and
    /// every message but `hello` must come from a peer that completed the handshake; on a DEALER
    /// the sender must be the node it is connected to (a DEALER in its handshake accepts only
    /// `welcome`); call and reply envelopes must decode.
    func accept(_ frames: [WireFrame], from source: Source, on socket: ZMQSocket) {
        let message: WireMessage
        do {
            message = try WireMessage.decode(
                frames, limits: configuration.limits, localVersion: configuration.protocolVersion)
        } catch {
            reject(error, from: source, on: socket)
            return
        }
        let sender = message.header.sender
        let kind = message.header.kind
        var wasMember = false
        if let routingID = source.routingID {
            guard NodeID(bytes: routingID) == sender else {
                reject(
                    WireError(.malformed, "sender \(sender) arrived with routing id \(hex(routingID))"),
                    from: source, on: socket)
                return
            }
            guard sender != node else {
                reject(
                    WireError(.malformed, "a peer claims this node's own id \(sender)"), from: source,
                    on: socket)
                return
            }
            if kind == .hello {
                wasMember = routerPeers[sender] != nil
                if let bound = routerPeers[sender], bound != source.publicKey {
                    reject(
                        PeerRejection(
                            WireRejections.unknownPeer,
                            "hello from \(sender) with another key than its connection's"),
                        from: source, on: socket)
                    return
                }
                routerPeers[sender] = .some(source.publicKey)
            } else if let bound = routerPeers[sender] {
                // The routing id is bound to the key it said hello with; another connection that
                // reuses the id (after the first one dropped) must say hello with the same key.
                guard bound == source.publicKey else {
                    reject(
                        PeerRejection(
                            WireRejections.unknownPeer,
                            "\(kind) from \(sender) with another key than its hello's"),
                        from: source, on: socket)
                    return
                }
            } else {
                reject(
                    PeerRejection(WireRejections.unknownPeer, "\(kind) from \(sender) before its hello"),
                    from: source, on: socket)
                return
            }
        } else if let expected = source.node {
            guard sender == expected else {
                reject(
                    WireError(.malformed, "sender \(sender) on the connection to \(expected)"),
                    from: source, on: socket)
                return
            }
            if kind == .welcome {
                // The answer to a hello said again on a new connection during the handshake (the
                // first hello's may have come too): nothing to do.
                logger.trace("another welcome from \(sender)")
                return
            }
            guard kind != .hello else {
                reject(
                    PeerRejection(WireRejections.wrongKind, "\(kind) after the handshake"), from: source,
                    on: socket)
                return
            }
        } else if kind != .welcome {
            reject(
                PeerRejection(WireRejections.wrongKind, "\(kind) before welcome"), from: source, on: socket)
            return
        }
        switch kind {
        case .hello:
            guard let hello = decodeHello(message, from: source, on: socket) else {
                if !wasMember { routerPeers[sender] = nil }
                return
            }
            let welcome = HelloEnvelope(name: configuration.name, endpoint: endpoint ?? "")
            route(
                WireMessage(
                    header: WireHeader(kind: .welcome, sender: node),
                    frames: [WireFrame(welcome.encoded())]), to: sender)
            events.append(.joined(Member(node: sender, name: hello.name, publicKey: source.publicKey)))
        case .welcome:
            guard let index = handshakes.firstIndex(where: { $0.dealer === socket }),
                let welcome = decodeHello(message, from: source, on: socket)
            else { return }
            let handshake = handshakes.remove(at: index)
            // The DEALER lives on: its monitor is stopped first, or its next connection's event
            // would wait forever for the closed reader (in libzmq's I/O thread).
            handshake.dealer.stopMonitor()
            handshake.monitor?.close()
            let member = Member(
                node: sender, name: welcome.name, publicKey: configuration.security?.serverKey)
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
            routerPeers[sender] = nil
            events.append(.left(sender))
        case .call, .reply:
            do {
                guard let first = message.frames.first else {
                    throw WireError(.truncated, "\(kind) without its envelope frame")
                }
                try first.withUnsafeBytes { (raw) throws(WireError) in
                    if kind == .call {
                        _ = try CallEnvelope.decode(raw)
                    } else {
                        _ = try ReplyEnvelope.decode(raw)
                    }
                }
            } catch {
                reject(error, from: source, on: socket)
                return
            }
            events.append(.message(message))
        case .heartbeat:
            if let frame = message.frames.first {
                do {
                    _ = try frame.withUnsafeBytes { raw throws(WireError) in try HeartbeatEnvelope.decode(raw)
                    }
                } catch {
                    reject(error, from: source, on: socket)
                    return
                }
            }
            events.append(.message(message))
        case .bulk:
            reject(
                PeerRejection(WireRejections.wrongKind, "bulk message on the control channel"), from: source,
                on: socket)
        }
    }

    func decodeHello(_ message: WireMessage, from source: Source, on socket: ZMQSocket) -> HelloEnvelope? {
        do {
            guard let frame = message.frames.first else {
                throw WireError(.truncated, "\(message.header.kind) without its payload frame")
            }
            return try frame.withUnsafeBytes { raw in try HelloEnvelope.decode(raw) }
        } catch {
            reject(error, from: source, on: socket)
            return nil
        }
    }

    /// Counts and logs (rate-limited, per peer) a message that failed its checks. A handshake
    /// that meets another protocol version fails its `connect`; a `hello` in another version is
    /// answered in ours, so the other side can report both versions too.
    func reject(_ error: any Error, from source: Source, on socket: ZMQSocket) {
        rejected.increment()
        let reason = (error as? PeerRejection)?.reason ?? WireRejections.reason(of: error)
        let logged = configuration.rejections.record(
            reason, peer: source.description, key: source.key, error: error, logger: logger)
        guard let wire = error as? WireError, wire.code == .unsupportedVersion else { return }
        if let index = handshakes.firstIndex(where: { $0.dealer === socket }) {
            let handshake = handshakes.remove(at: index)
            close(handshake)
            handshake.continuation.resume(throwing: wire)
        } else if logged, let router, let routingID = source.routingID {
            // Answered at most once per second per peer (with the log line), so a flood of
            // foreign-version messages cannot fill our send queue towards a peer that never reads.
            var header = WireHeader(kind: .welcome, sender: node, version: configuration.protocolVersion)
            header.sequence = nextSequence()
            let welcome = HelloEnvelope(name: configuration.name, endpoint: endpoint ?? "")
            let frames = WireMessage(header: header, frames: [WireFrame(welcome.encoded())])
                .encodedFrames()
            try? send([WireFrame(routingID)] + frames, on: router)
        }
    }
}

/// A message refused above the header checks (unknown peer, wrong kind), with its reason name.
struct PeerRejection: Error, CustomStringConvertible {
    let reason: String
    let description: String
    init(_ reason: String, _ description: String) {
        self.reason = reason
        self.description = description
    }
}

extension ZMQMessage {
    /// The address of the connection the frame came on (`tcp 10.0.0.7`), if libzmq knows it.
    var peerAddress: String? { metadata("Peer-Address") }
}
