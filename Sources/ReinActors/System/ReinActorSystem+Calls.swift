import Distributed
import Synchronization

extension ReinActorSystem {
    @TaskLocal static var callTimeoutOverride: Duration?

    /// Runs `body` with every remote call made in it (in this task and its children) limited to
    /// `timeout` instead of ``Settings/callTimeout``.
    public static func withCallTimeout<R>(_ timeout: Duration, _ body: () async throws -> R) async rethrows
        -> R
    {
        try await $callTimeoutOverride.withValue(timeout) { try await body() }
    }

    public func makeInvocationEncoder() -> InvocationEncoder { InvocationEncoder() }

    public func remoteCall<Act, Err, Res>(
        on actor: Act, target: RemoteCallTarget, invocation: inout InvocationEncoder, throwing: Err.Type,
        returning: Res.Type
    ) async throws -> Res where Act: DistributedActor, Act.ID == ActorID, Err: Error, Res: Codable {
        let reply = try await call(actor.id, target: target.identifier, invocation: invocation)
        guard case .value = reply.outcome else { throw try failure(reply, actor.id, target.identifier) }
        guard let frame = reply.frames.first else {
            throw RemoteCallError(.badReply, "\(target.identifier) on \(actor.id): value frame missing")
        }
        do {
            let decoder = BinaryDecoder(userInfo: [.actorSystemKey: self])
            return try frame.withUnsafeBytes { try decoder.decode(Res.self, from: $0) }
        } catch {
            throw RemoteCallError(.badReply, "\(target.identifier) on \(actor.id): \(error)")
        }
    }

    public func remoteCallVoid<Act, Err>(
        on actor: Act, target: RemoteCallTarget, invocation: inout InvocationEncoder, throwing: Err.Type
    ) async throws where Act: DistributedActor, Act.ID == ActorID, Err: Error {
        let reply = try await call(actor.id, target: target.identifier, invocation: invocation)
        guard case .void = reply.outcome else { throw try failure(reply, actor.id, target.identifier) }
    }

    /// Sends a call and waits for its single completion.
    func call(_ callee: ActorID, target: String, invocation: InvocationEncoder) async throws -> InboundReply {
        let timeout = Self.callTimeoutOverride ?? settings.callTimeout
        let callID = nextCallID.add(1, ordering: .relaxed).newValue
        let envelope = CallEnvelope(
            callID: callID, recipientNode: callee.node, recipientName: callee.name,
            recipientIncarnation: callee.incarnation, target: target,
            genericSubstitutions: invocation.genericSubstitutions,
            argumentCount: UInt16(invocation.arguments.count))
        let frames = [WireFrame(envelope.encoded())] + invocation.arguments
        let pending = self.pending
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                // Registered before anything is sent, so a reply can never arrive unmatched.
                if let error = pending.register(
                    callID, callee: callee, target: target, continuation: continuation)
                {
                    continuation.resume(throwing: error)
                    return
                }
                // Cancelled before the handler was installed, or callee already gone: end now.
                if Task.isCancelled {
                    pending.complete(
                        callID, with: .failure(RemoteCallError(.cancelled, "\(target) on \(callee)")))
                    return
                }
                if let left = membership.hasLeft(callee.node) {
                    let error =
                        left
                        ? RemoteCallError(.peerLeft, "\(target) on \(callee): node left")
                        : RemoteCallError(.peerLost, "\(target) on \(callee): node is dead")
                    pending.complete(callID, with: .failure(error))
                    return
                }
                pending.armTimeout(callID, after: timeout)
                send(.call, frames: frames, to: callee.node)
            }
        } onCancel: {
            pending.complete(callID, with: .failure(RemoteCallError(.cancelled, "\(target) on \(callee)")))
        }
    }

    /// The error to throw for a reply that is not the expected value.
    private func failure(_ reply: InboundReply, _ callee: ActorID, _ target: String) throws -> any Error {
        switch reply.outcome {
        case .thrown(let type, let message, let hasPayload):
            if hasPayload, let errorType = transportableErrors[type], let frame = reply.frames.first,
                let error = try? decodeError(errorType, frame)
            {
                return error
            }
            return RemoteError(errorType: type, message: message)
        case .failed(let code, let message):
            return RemoteCallError(RemoteCallError.Code(rawValue: code), "\(target) on \(callee): \(message)")
        case .value, .void:
            return RemoteCallError(.badReply, "\(target) on \(callee): unexpected \(reply.outcome)")
        }
    }

    private func decodeError<E: Error & Codable>(_ type: E.Type, _ frame: WireFrame) throws -> E {
        let decoder = BinaryDecoder(userInfo: [.actorSystemKey: self])
        return try frame.withUnsafeBytes { try decoder.decode(E.self, from: $0) }
    }
}
