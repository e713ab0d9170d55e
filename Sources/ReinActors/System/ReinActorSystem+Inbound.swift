import Distributed
import Logging

extension ReinActorSystem {
    /// Handles a batch of transport events (on the transport's thread: quick, never blocking).
    func handle(_ events: [TransportEvent]) {
        for event in events {
            switch event {
            case .message(let message):
                let sender = message.header.sender
                guard membership.seen(sender, policyVersion: message.header.policyVersion) else {
                    logger.trace("dropped \(message.header.kind) from departed \(sender)")
                    continue
                }
                switch message.header.kind {
                case .reply: handleReply(message)
                case .call: handleCall(message)
                case .heartbeat: break
                case .leave: nodeGone(sender, left: true, reason: "left")
                case .hello, .welcome, .bulk:
                    logger.debug("ignored \(message.header.kind) from \(sender) on the control channel")
                }
            case .joined(let member):
                if membership.join(member) { logger.debug("joined: \(member)") }
            case .left(let node):
                nodeGone(node, left: true, reason: "left")
            case .lost(let node, let reason):
                nodeGone(node, left: false, reason: reason)
            }
        }
    }

    /// A peer left or died: tombstone it, fail its calls, drop its connection.
    func nodeGone(_ node: NodeID, left: Bool, reason: String) {
        if let member = membership.remove(node, left: left, reason: reason) {
            if left {
                logger.debug("left: \(member)")
            } else {
                logger.notice("peer dead: \(member): \(reason)")
            }
        }
        let error =
            left
            ? RemoteCallError(.peerLeft, "\(node) left")
            : RemoteCallError(.peerLost, "\(node) lost: \(reason)")
        pending.failAll(to: node, with: error)
        transport.disconnect(node)
    }

    private func handleReply(_ message: WireMessage) {
        guard let first = message.frames.first else {
            logger.warning("reply without envelope from \(message.header.sender)")
            return
        }
        do {
            let envelope = try first.withUnsafeBytes { raw in try ReplyEnvelope.decode(raw) }
            pending.complete(
                envelope.callID,
                with: .success(InboundReply(outcome: envelope.outcome, frames: message.frames.dropFirst())))
        } catch {
            // Fail the call now rather than at its timeout, if its id is readable.
            let callID = first.withUnsafeBytes { raw in
                raw.count >= 8 ? UInt64(littleEndian: raw.loadUnaligned(as: UInt64.self)) : nil
            }
            logger.warning("malformed reply from \(message.header.sender): \(error)")
            if let callID {
                pending.complete(
                    callID, with: .failure(RemoteCallError(.badReply, "malformed reply: \(error)")))
            }
        }
    }

    private func handleCall(_ message: WireMessage) {
        let caller = message.header.sender
        guard let first = message.frames.first else {
            logger.warning("call without envelope from \(caller)")
            return
        }
        let envelope: CallEnvelope
        do {
            envelope = try first.withUnsafeBytes { raw in try CallEnvelope.decode(raw) }
        } catch {
            logger.warning("malformed call from \(caller): \(error)")
            let callID = first.withUnsafeBytes { raw in
                raw.count >= 8 ? UInt64(littleEndian: raw.loadUnaligned(as: UInt64.self)) : nil
            }
            if let callID {
                ReplySink(system: self, caller: caller, callID: callID).fail(
                    .invocationFailed, "malformed call: \(error)")
            }
            return
        }
        let sink = ReplySink(system: self, caller: caller, callID: envelope.callID)
        let arguments = Array(message.frames.dropFirst())
        guard arguments.count == Int(envelope.argumentCount) else {
            sink.fail(
                .invocationFailed,
                "call declares \(envelope.argumentCount) arguments, carries \(arguments.count)")
            return
        }
        guard envelope.recipientNode == node else {
            sink.fail(.deadLetter, "call for \(envelope.recipientNode) reached \(node)")
            return
        }
        guard
            let actor = localActor(named: envelope.recipientName, incarnation: envelope.recipientIncarnation)
        else {
            sink.fail(.deadLetter, "no live actor \(envelope.recipientName) on \(name)")
            return
        }
        Task {
            var decoder = ReinInvocationDecoder(
                system: self, substitutions: envelope.genericSubstitutions, arguments: arguments)
            do {
                try await executeDistributedTarget(
                    on: actor, target: RemoteCallTarget(envelope.target), invocationDecoder: &decoder,
                    handler: ReinResultHandler(sink: sink))
            } catch {
                // The target did not run (unknown target, undecodable arguments): still answer.
                sink.fail(.invocationFailed, "\(envelope.target): \(error)")
            }
            if !sink.hasSent {
                sink.fail(.invocationFailed, "\(envelope.target) finished without a result")
            }
        }
    }
}
