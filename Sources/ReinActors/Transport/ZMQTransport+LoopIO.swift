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

    func send(_ frames: [WireFrame], on socket: ZMQSocket) throws {
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

    func receive(from socket: ZMQSocket, isRouter: Bool) {
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
    func accept(_ frames: [WireFrame], routingID: [UInt8]?, on socket: ZMQSocket) {
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

    func decodeHello(_ message: WireMessage) -> HelloEnvelope? {
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
    func reject(_ error: any Error, routingID: [UInt8]?, on socket: ZMQSocket) {
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
