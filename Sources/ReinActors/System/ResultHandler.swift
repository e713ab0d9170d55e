import Distributed
import Synchronization

/// Sends the outcome of an inbound call back to the caller, exactly once.
public struct ReinResultHandler: DistributedTargetInvocationResultHandler {
    public typealias SerializationRequirement = Codable

    let sink: ReplySink

    public func onReturn<Success: Codable>(value: Success) async throws {
        do {
            sink.send(.value, frame: try BinaryEncoder().encodeFrame(value))
        } catch {
            sink.send(
                .failed(
                    code: RemoteCallError.Code.badReply.rawValue, message: "result not encodable: \(error)"))
        }
    }

    public func onReturnVoid() async throws {
        sink.send(.void)
    }

    public func onThrow<Err: Error>(error: Err) async throws {
        let thrown = error as any Error
        let type = Swift.type(of: thrown)
        var payload: WireFrame?
        if sink.system.isTransportable(type), let encodable = thrown as? any Encodable {
            payload = try? WireFrame(BinaryEncoder().encode(encodable))
        }
        sink.send(
            .thrown(type: _typeName(type, qualified: true), message: "\(thrown)", hasPayload: payload != nil),
            frame: payload)
    }
}

/// The way back to one caller; the first outcome sent wins, later ones are dropped.
final class ReplySink: Sendable {
    let system: ReinActorSystem
    let caller: NodeID
    let callID: UInt64
    private let sent = Atomic<Bool>(false)
    /// When the call arrived, and where its answer time goes (`nil`: not measured).
    private let timed: (arrived: ContinuousClock.Instant, times: AnswerTimes)?

    init(
        system: ReinActorSystem, caller: NodeID, callID: UInt64,
        timed: (arrived: ContinuousClock.Instant, times: AnswerTimes)? = nil
    ) {
        self.system = system
        self.caller = caller
        self.callID = callID
        self.timed = timed
    }

    var hasSent: Bool { sent.load(ordering: .acquiring) }

    func send(_ outcome: ReplyEnvelope.Outcome, frame: WireFrame? = nil) {
        guard !sent.exchange(true, ordering: .acquiringAndReleasing) else { return }
        let envelope = ReplyEnvelope(callID: callID, outcome: outcome)
        system.send(.reply, frames: [WireFrame(envelope.encoded())] + (frame.map { [$0] } ?? []), to: caller)
        if let timed { timed.times.record(ContinuousClock.now - timed.arrived) }
    }

    func fail(_ code: RemoteCallError.Code, _ message: String) {
        send(.failed(code: code.rawValue, message: message))
    }
}
