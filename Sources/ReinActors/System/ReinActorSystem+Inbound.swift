import Distributed
import Logging
import Synchronization

extension ReinActorSystem {
    /// Handles a batch of transport events (on the transport's thread: quick, never blocking).
    func handle(_ events: [TransportEvent]) {
        for event in events {
            switch event {
            case .message(let message):
                let sender = message.header.sender
                let pace = message.header.kind == .heartbeat ? HeartbeatEnvelope.pace(of: message) : nil
                guard membership.seen(sender, policyVersion: message.header.policyVersion, pace: pace) else {
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
                logLimit.log(logger, .notice, kind: "peer dead", "peer dead: \(member): \(reason)")
            }
        }
        let error =
            left
            ? RemoteCallError(.peerLeft, "\(node) left")
            : RemoteCallError(.peerLost, "\(node) lost: \(reason)")
        pending.failAll(to: node, with: error)
        _ = outbound.withLock { $0.remove(node) }
        transport.disconnect(node)
    }

    private func handleReply(_ message: WireMessage) {
        guard let first = message.frames.first else {
            logLimit.log(
                logger, .warning, kind: "bad reply", "reply without envelope from \(message.header.sender)")
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
            logLimit.log(
                logger, .warning, kind: "bad reply", "malformed reply from \(message.header.sender): \(error)"
            )
            if let callID {
                pending.complete(
                    callID, with: .failure(RemoteCallError(.badReply, "malformed reply: \(error)")))
            }
        }
    }

    /// A message this node sent to itself (a reference to a local actor resolved as remote): its
    /// calls come from the local operator.
    func handleLocal(_ message: WireMessage) {
        switch message.header.kind {
        case .reply: handleReply(message)
        case .call: handleCall(message, from: nil)
        default: break
        }
    }

    /// The identity and role of the remote `node` a call came from, as bound at its handshake.
    private func callerIdentity(_ node: NodeID) -> CallerIdentity? {
        guard let member = membership.member(node) else { return nil }
        let role: CallerRoles = outbound.withLock { $0.contains(node) } ? .learner : .worker
        return CallerIdentity(node: node, name: member.name, publicKey: member.publicKey, role: role)
    }

    /// Counts and logs (rate-limited per peer) a call the system refused, and answers it.
    private func refuse(
        _ sink: ReplySink, _ code: RemoteCallError.Code, reason: String, _ detail: String
    ) {
        transport.rejections.record(
            reason, peer: sink.caller.description, error: RemoteCallError(code, detail), logger: logger)
        sink.fail(code, detail)
    }

    /// Runs an inbound call; `identity` is the remote caller (`nil`: this process).
    ///
    /// Checked before any argument is decoded: the envelope, the recipient, that the target is a
    /// method of the recipient's own type (``InvocationTarget``), that the caller is a live member,
    /// and that its role may call the method (``CallerChecked``). The method then runs with
    /// ``caller`` bound to the caller's identity.
    private func handleCall(_ message: WireMessage) {
        let caller = message.header.sender
        guard let identity = callerIdentity(caller) else {
            transport.rejections.record(
                WireRejections.unknownPeer, peer: caller.description,
                error: RemoteCallError(.forbidden, "call from \(caller), which is not a member"),
                logger: logger)
            return
        }
        handleCall(message, from: identity)
    }

    private func handleCall(_ message: WireMessage, from identity: CallerIdentity?) {
        let arrived = message.receivedAt ?? .now
        let caller = message.header.sender
        guard let first = message.frames.first else {
            logLimit.log(logger, .warning, kind: "bad call", "call without envelope from \(caller)")
            return
        }
        let envelope: CallEnvelope
        do {
            envelope = try first.withUnsafeBytes { raw in try CallEnvelope.decode(raw) }
        } catch {
            logLimit.log(logger, .warning, kind: "bad call", "malformed call from \(caller): \(error)")
            let callID = first.withUnsafeBytes { raw in
                raw.count >= 8 ? UInt64(littleEndian: raw.loadUnaligned(as: UInt64.self)) : nil
            }
            if let callID {
                ReplySink(system: self, caller: caller, callID: callID).fail(
                    .invocationFailed, "malformed call: \(error)")
            }
            return
        }
        var sink = ReplySink(system: self, caller: caller, callID: envelope.callID)
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
        let actorType = type(of: actor)
        guard let method = InvocationTarget.method(envelope.target, on: actorType) else {
            refuse(
                sink, .wrongType, reason: WireRejections.wrongActorType,
                "\(RemoteCallTarget(envelope.target)) is not a method of \(actorType) (\(envelope.recipientName))"
            )
            return
        }
        if let times = answerTimeTable.recorder(for: method) {
            sink = ReplySink(system: self, caller: caller, callID: envelope.callID, timed: (arrived, times))
        }
        let role = identity?.role ?? .localOperator
        if let checked = actorType as? any CallerChecked.Type {
            let allowed = checked.allowedCallers[method] ?? []
            guard allowed.contains(role) else {
                refuse(
                    sink, .forbidden, reason: WireRejections.forbidden,
                    "\(actorType).\(method) may be called by \(allowed), not by \(identity.map(\.description) ?? "\(role)")"
                )
                return
            }
        }
        // On the call executor's threads, not the cooperative pool (see ``CallExecutor``).
        Task(executorPreference: CallExecutor.shared) {
            var decoder = ReinInvocationDecoder(
                system: self, substitutions: envelope.genericSubstitutions, arguments: arguments)
            do {
                try await Self.$caller.withValue(identity) {
                    try await self.executeDistributedTarget(
                        on: actor, target: RemoteCallTarget(envelope.target), invocationDecoder: &decoder,
                        handler: ReinResultHandler(sink: sink))
                }
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
