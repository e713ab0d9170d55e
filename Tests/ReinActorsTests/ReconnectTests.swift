import Foundation
import Testing
import ZeroMQ

@testable import ReinActors

/// A node that reconnects while the learner still holds its old connection (the old one not yet
/// torn down, as when a worker that lost the learner under load dials again at once).
@Suite("Reconnecting with the same node id")
struct ReconnectTests {
    /// The learner's ROUTER hands the node's routing id over to the new connection, so its hello
    /// is answered. Without the handover libzmq ignores a second connection with a routing id in
    /// use: the hello was never read, no welcome came, and the worker gave up ("no welcome").
    @Test(.timeLimit(.minutes(2)))
    func aNewConnectionWithAnIdInUseIsWelcomed() async throws {
        let (learner, port) = try InboundBudgetTests.listen(.default)
        let worker = try ReinActorSystem(
            context: try ZMQContext(), configuration: .init(name: "worker"), settings: testSettings,
            logger: quiet)
        let endpoint = "tcp://127.0.0.1:\(port)"
        let member = try await worker.connect(to: endpoint, timeout: .seconds(60))
        #expect(member.node == learner.node)
        let node = worker.node
        let welcome = try await offPool { () throws -> WireHeader? in
            let context = try ZMQContext()
            let socket = try context.socket(.dealer)
            defer { socket.close() }
            try socket.setRoutingID(node.bytes)
            try socket.setLinger(.zero)
            try socket.connect(endpoint)
            var w = ByteWriter()
            w.write("worker-again")
            w.write("")
            let hello = WireHeader(
                kind: .hello, sender: node, frameCount: 1, payloadBytes: UInt64(w.bytes.count))
            _ = try socket.send(multipart: [hello.encoded(), w.bytes], wait: .timeout(.seconds(60)))
            // Generous: a loopback handshake takes milliseconds; the failure is "never".
            guard let frames = try socket.receiveMultipart(wait: .timeout(.seconds(60))),
                let first = frames.first
            else { return nil }
            return try first.withUnsafeBytes { raw throws in try WireHeader.decode(raw) }
        }
        #expect(welcome?.kind == .welcome)
        #expect(welcome?.sender == learner.node)
        for system in [worker, learner] { await system.shutdown() }
    }
}
