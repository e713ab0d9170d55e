import Foundation
import Synchronization
import Testing
import ZeroMQ

@testable import ReinActors

enum Link: String, CaseIterable, Sendable {
    case inproc, tcp
}

private let endpointCounter = Atomic<Int>(0)

/// A fresh endpoint to bind (tcp picks a free port; read the system's `endpoint`).
func bindEndpoint(_ link: Link) -> String {
    switch link {
    case .inproc: "inproc://rein-actors-\(getpid())-\(endpointCounter.add(1, ordering: .relaxed).newValue)"
    case .tcp: "tcp://127.0.0.1:*"
    }
}

@Suite("Actor system over ZeroMQ")
struct ZMQSystemTests {
    @Test(arguments: Link.allCases)
    func callReplyBothWays(_ link: Link) async throws {
        let context = try ZMQContext()
        let learner = try ReinActorSystem(
            context: context, configuration: .init(name: "learner", bind: bindEndpoint(link)),
            settings: testSettings,
            logger: quiet)
        let worker = try ReinActorSystem(
            context: context, configuration: .init(name: "worker"), settings: testSettings, logger: quiet)
        var learnerEvents = learner.membershipEvents().makeAsyncIterator()
        let service = learner.withName("learner") { Echo(actorSystem: learner) }

        let member = try await worker.connect(to: try #require(learner.endpoint))
        #expect(member == learner.member)
        #expect(try await worker.connect(to: try #require(learner.endpoint)) == member)  // idempotent
        #expect(worker.members == [learner.member])
        #expect(await learnerEvents.next() == .joined(worker.member))

        let proxy = try Echo.resolve(id: .wellKnown("learner", on: member.node), using: worker)
        #expect(try await proxy.add(2, 3) == 5)
        try await proxy.poke()
        #expect(try await proxy.echo([0.5, 1.5]) == [0.5, 1.5])
        #expect(try await proxy.echo("ζ") == "ζ")
        #expect(try await proxy.move(Point(x: 0, y: 1, label: "m"), by: 1) == Point(x: 1, y: 1, label: "m"))
        await #expect(throws: RemoteError.self) { try await proxy.fail("nope") }
        await #expect(throws: Refusal(reason: "r")) { try await proxy.refuse("r") }

        // The learner calls back an actor on the worker, which does not listen: the call rides the
        // worker's own connection.
        let rollout = worker.withName("rollout-1") { Echo(actorSystem: worker) }
        let back = try Echo.resolve(id: .wellKnown("rollout-1", on: worker.node), using: learner)
        #expect(try await back.add(20, 22) == 42)
        // An actor reference as an argument: the learner decodes a proxy and calls the worker.
        #expect(try await proxy.askOther(rollout, 1, 2) == 3)

        await worker.shutdown()
        let event = await learnerEvents.next()
        #expect(event == .left(worker.member), "got \(String(describing: event))")
        await learner.shutdown()
        withExtendedLifetime((service, rollout)) {}
    }

    /// Issue 19: a node that leaves closes the DEALER its `leave` arrived on; the receive loop read
    /// on from the closed socket and logged "receive failed" at error level — once per worker
    /// when a learner with hundreds of them ended its run.
    @Test(arguments: Link.allCases)
    func aPeerLeavingLogsNoReceiveError(_ link: Link) async throws {
        let context = try ZMQContext()
        let log = LineLog()
        let learner = try ReinActorSystem(
            context: context, configuration: .init(name: "learner", bind: bindEndpoint(link)),
            settings: testSettings, logger: quiet)
        let worker = try ReinActorSystem(
            context: context, configuration: .init(name: "worker"), settings: testSettings, logger: log.logger
        )
        var events = worker.membershipEvents().makeAsyncIterator()
        _ = try await worker.connect(to: try #require(learner.endpoint))
        #expect(await events.next() == .joined(learner.member))
        await learner.shutdown()
        #expect(await events.next() == .left(learner.member))
        await worker.shutdown()
        let errors = log.lines.withLock { $0 }.filter { $0.contains("receive failed") }
        #expect(errors.isEmpty, "\(errors)")
    }

    @Test func deadPeerDetectedWithinHeartbeatTimeout() async throws {
        let (started, startedContinuation) = AsyncStream<Int>.makeStream()
        let contextA = try ZMQContext()
        let contextB = try ZMQContext()
        let a = try ReinActorSystem(
            context: contextA, configuration: .init(name: "a"), settings: fastHeartbeats, logger: quiet)
        let b = try ReinActorSystem(
            context: contextB, configuration: .init(name: "b", bind: "tcp://127.0.0.1:*"),
            settings: fastHeartbeats,
            logger: quiet)
        var events = a.membershipEvents().makeAsyncIterator()
        _ = try await a.connect(to: try #require(b.endpoint))
        #expect(await events.next() == .joined(b.member))
        let target = Echo(actorSystem: b, started: startedContinuation)
        let proxy = try Echo.resolve(id: target.id, using: a)
        let call = Task { await callErrorCode { try await pendingForever(proxy) } }
        for await _ in started { break }

        // B's process "crashes": its sockets die without a goodbye.
        let (event, elapsed) = await seconds {
            contextB.shutdown()
            return await events.next()
        }
        guard case .dead(let member, _) = event else {
            Issue.record("expected a dead event, got \(String(describing: event))")
            return
        }
        #expect(member == b.member)
        // Never before the heartbeat timeout; the pending call (which no timeout or answer could
        // end) ended as peer lost: the heartbeats noticed, however loaded the machine.
        #expect(elapsed >= 0.35, "detected after \(elapsed) s (timeout 0.4 s)")
        #expect(await call.value == .peerLost)
        await a.shutdown()
        await b.shutdown()
        withExtendedLifetime(target) {}
    }

    @Test func largeArgumentRoundTrip() async throws {
        let context = try ZMQContext()
        let server = try ReinActorSystem(
            context: context, configuration: .init(name: "server", bind: "tcp://127.0.0.1:*"),
            settings: testSettings,
            logger: quiet)
        let client = try ReinActorSystem(
            context: context, configuration: .init(name: "client"), settings: testSettings, logger: quiet)
        _ = try await client.connect(to: try #require(server.endpoint))
        let target = Echo(actorSystem: server)
        let proxy = try Echo.resolve(id: target.id, using: client)
        let floats = (0..<(8 << 20) / 4).map { Float($0 % 1000) * 0.5 }  // 8 MiB
        let scaled = try await proxy.scale(floats, by: 2)
        #expect(scaled.count == floats.count)
        #expect(scaled == floats.map { $0 * 2 })
        await client.shutdown()
        await server.shutdown()
        withExtendedLifetime(target) {}
    }

    @Test func wrongProtocolVersionNamesBothVersions() async throws {
        let context = try ZMQContext()
        let current = try ReinActorSystem(
            context: context, configuration: .init(name: "current", bind: "tcp://127.0.0.1:*"),
            settings: testSettings, logger: quiet)
        var configuration = ZMQTransport.Configuration(name: "future")
        let newer = WireHeader.currentVersion + 1
        configuration.protocolVersion = newer
        let future = try ReinActorSystem(
            context: context, configuration: configuration, settings: testSettings, logger: quiet)
        let error = await #expect(throws: WireError.self) {
            try await future.connect(to: try #require(current.endpoint), timeout: .seconds(5))
        }
        #expect(error?.code == .unsupportedVersion)
        #expect(
            error?.context == "peer speaks protocol \(WireHeader.currentVersion), this build speaks \(newer)")
        #expect((current.transport as? ZMQTransport)?.rejectedMessages == 1)
        #expect(current.members.isEmpty)
        await future.shutdown()
        await current.shutdown()
    }

    @Test func malformedInputIsRejectedNotFatal() async throws {
        let context = try ZMQContext()
        let server = try ReinActorSystem(
            context: context, configuration: .init(name: "server", bind: "tcp://127.0.0.1:*"),
            settings: testSettings,
            logger: quiet)
        let endpoint = try #require(server.endpoint)
        try sendGarbage(context: context, to: endpoint)
        let transport = try #require(server.transport as? ZMQTransport)
        let deadline = ContinuousClock.now + .seconds(5)
        while transport.rejectedMessages < 4 && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(transport.rejectedMessages == 4)
        // The node still serves well-formed peers.
        let client = try ReinActorSystem(
            context: context, configuration: .init(name: "client"), settings: testSettings, logger: quiet)
        _ = try await client.connect(to: endpoint)
        let target = Echo(actorSystem: server)
        #expect(try await Echo.resolve(id: target.id, using: client).add(1, 2) == 3)
        await client.shutdown()
        await server.shutdown()
        withExtendedLifetime(target) {}
    }

    /// Four malformed messages from a raw DEALER: bad magic, truncated header, unknown kind, and a
    /// header that lies about its payload.
    private func sendGarbage(context: ZMQContext, to endpoint: String) throws {
        let raw = try context.socket(.dealer)
        let node = NodeID.random()
        try raw.setRoutingID(node.bytes)
        try raw.setLinger(.seconds(1))
        try raw.connect(endpoint)
        try raw.send(multipart: [Array("JUNKJUNK".utf8)])
        try raw.send(multipart: [Array(WireHeader(kind: .call, sender: node).encoded().prefix(20))])
        var unknown = WireHeader(kind: .call, sender: node).encoded()
        unknown[6] = 77
        try raw.send(multipart: [unknown])
        try raw.send(multipart: [
            WireHeader(kind: .call, sender: node, frameCount: 3, payloadBytes: 9).encoded(), [1],
        ])
        raw.close()
    }

    @Test func bulkFramesRoundTrip() async throws {
        let context = try ZMQContext()
        let receiver = BulkReceiver(context: context, link: .bind("tcp://127.0.0.1:*"), logger: quiet)
        let endpoint = await receiver.endpoint()
        let node = NodeID.random()
        let sender = try BulkSender(context: context, node: node, link: .connect(endpoint))
        let weights = (0..<100_000).map { Float($0) }
        for version in 1...3 {
            try await sender.send(
                [WireFrame(Array("layer.\(version)".utf8)), WireFrame(floats: weights)],
                policyVersion: UInt64(version),
                flags: version == 3 ? .endOfStream : [])
        }
        var received: [BulkMessage] = []
        for try await batch in receiver {
            received += batch
            if received.count == 3 { break }
        }
        #expect(received.map(\.header.policyVersion) == [1, 2, 3])
        #expect(received.map(\.header.sequence) == [1, 2, 3])
        #expect(received.allSatisfy { $0.header.sender == node && $0.header.kind == .bulk })
        #expect(received[2].header.flags.contains(.endOfStream))
        #expect(try received[1].frames[1].floats() == weights)
        #expect(String(decoding: received[0].frames[0].bytes, as: UTF8.self) == "layer.1")
        sender.close()
        receiver.close()
    }

    /// Weights broadcast: PUB → SUB; malformed messages on a bulk socket are counted, not delivered.
    @Test func bulkBroadcastAndRejects() async throws {
        let context = try ZMQContext()
        let node = NodeID.random()
        let publisher = try BulkSender(
            context: context, node: node, link: .bind("tcp://127.0.0.1:*"), pattern: .pub)
        let subscriber = BulkReceiver(
            context: context, link: .connect(try #require(publisher.endpoint)), pattern: .sub, logger: quiet)
        _ = await subscriber.endpoint()
        // Subscriptions propagate asynchronously ("slow joiner"): publish until one arrives.
        let publishing = Task {
            for version in 1...250 {
                try await publisher.send([WireFrame(floats: [1, 2, 3])], policyVersion: UInt64(version))
                try await Task.sleep(for: .milliseconds(20))
            }
        }
        var iterator = subscriber.makeAsyncIterator()
        let first = try #require(try await iterator.next()?.first)
        publishing.cancel()
        #expect(first.header.policyVersion >= 1 && first.header.sender == node)
        #expect(try first.frames[0].floats() == [1, 2, 3])
        publisher.close()
        subscriber.close()

        let pull = BulkReceiver(context: context, link: .bind("tcp://127.0.0.1:*"), logger: quiet)
        try pushGarbageThenValid(context: context, to: await pull.endpoint(), node: node)
        var messages = pull.makeAsyncIterator()
        let valid = try #require(try await messages.next())
        #expect(valid.count == 1 && valid[0].header.policyVersion == 9)
        #expect(pull.rejectedMessages == 2)
        pull.close()
    }

    private func pushGarbageThenValid(context: ZMQContext, to endpoint: String, node: NodeID) throws {
        let push = try context.socket(.push)
        try push.setLinger(.seconds(1))
        try push.connect(endpoint)
        try push.send(multipart: [Array("garbage".utf8)])
        try push.send(multipart: [WireHeader(kind: .call, sender: node).encoded()])  // not bulk
        let valid = WireMessage(header: WireHeader(kind: .bulk, sender: node, policyVersion: 9), frames: [])
        try push.send(multipart: valid.encodedFrames().map(\.bytes))
        push.close()
    }
}
