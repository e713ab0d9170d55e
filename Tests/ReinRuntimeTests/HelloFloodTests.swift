import Foundation
import Logging
import Rein
import ReinActors
import ReinModel
import Synchronization
import Testing
import ZeroMQ

@testable import ReinRuntime

/// A stranger's flood of `hello` frames, valid and garbage, from many connections at once.
final class HelloFlood: Sendable {
    /// Connections the stranger holds open (well under the learner's connection cap).
    static let connections = 32

    let stop = Atomic<Bool>(false)
    /// Valid hello frames queued.
    let hellos = Atomic<Int>(0)
    /// Garbage frames queued.
    let garbage = Atomic<Int>(0)
    let failure = Mutex<String?>(nil)

    /// Floods `endpoint` from ``connections`` DEALER sockets until ``stop`` is set: every round,
    /// every connection says hello (a valid one, as its node), sends a hostile frame from the
    /// fuzzer, and reads whatever came back (welcomes, heartbeats); every fourth round the
    /// connections are dropped and opened again under fresh node ids (a reconnect storm). Sends wait at most 100 ms, so a learner that
    /// stops reading slows the flood instead of hanging it.
    ///
    /// With `learnerKey` (a CURVE learner), every other connection is a CURVE client with a key
    /// pair of its own, not on the allow-list; the others stay plain.
    func run(context: ZMQContext, endpoint: String, learnerKey: String? = nil) {
        do {
            var round = 0
            var sockets: [ZMQSocket] = []
            var nodes: [NodeID] = []
            defer { for socket in sockets { socket.close() } }
            while !stop.load(ordering: .relaxed) {
                if round % 4 == 0 {
                    for socket in sockets { socket.close() }
                    nodes = (0..<Self.connections).map { _ in NodeID.random() }
                    sockets = try nodes.enumerated().map { i, node in
                        let socket = try context.socket(.dealer)
                        if let learnerKey, i % 2 == 0 {
                            try TransportSecurity(keys: try ZMQCurveKeyPair.generate(), serverKey: learnerKey)
                                .apply(to: socket, binding: false)
                        }
                        try socket.setRoutingID(node.bytes)
                        try socket.setLinger(.zero)
                        try socket.connect(endpoint)
                        return socket
                    }
                }
                for (i, (socket, node)) in zip(sockets, nodes).enumerated() {
                    let payload = Self.helloPayload(name: "stranger-\(i)")
                    let hello = WireHeader(
                        kind: .hello, sender: node, frameCount: 1, payloadBytes: UInt64(payload.count))
                    if try socket.send(
                        multipart: [hello.encoded(), payload], wait: .timeout(.milliseconds(100)))
                    {
                        hellos.add(1, ordering: .relaxed)
                    }
                    var fuzz = WireFuzzer(seed: UInt64(round * Self.connections + i), sender: node)
                    let hostile = fuzz.next(for: round % 2 == 0 ? .stranger : .member)
                    if try socket.send(multipart: hostile.frames, wait: .timeout(.milliseconds(100))) {
                        garbage.add(1, ordering: .relaxed)
                    }
                    while try socket.receiveMultipart(wait: .nonBlocking) != nil {}
                }
                round += 1
            }
        } catch {
            if !stop.load(ordering: .relaxed) { failure.withLock { $0 = "the flood failed: \(error)" } }
        }
    }

    /// A hello payload: name and empty endpoint, as length-prefixed strings.
    static func helloPayload(name: String) -> [UInt8] {
        var w = ByteWriter()
        w.write(name)
        w.write("")
        return w.bytes
    }
}

@Suite("A stranger's hello flood against a live learner")
struct HelloFloodTests {
    /// The suite's settings, with a heartbeat timeout that a loaded machine cannot reach: the flood
    /// thread alone keeps a core busy, and with the other suites running beside it a 3 s timeout
    /// once declared the learner lost in CI. Starvation still fails the test: calls time out
    /// after 10 s, and the run must complete.
    static let settings = ReinActorSystem.Settings(
        callTimeout: .seconds(10), heartbeatInterval: .milliseconds(100), heartbeatTimeout: .seconds(30),
        transportableErrors: [RuntimeError.self])

    /// A stranger floods the learner's ROUTER from many connections with hellos (valid ones, under
    /// identities renewed by reconnecting, and garbage) for the whole run, while one real worker
    /// trains it: the run completes with a balanced ledger and the garbage is counted. With CURVE
    /// on, the stranger's connections (plain ones, and CURVE ones with keys not on the allow-list)
    /// are refused at the handshake, and the allowed worker trains all the same. Bounded by completion (the time limit only stops a
    /// hung test).
    @Test(.timeLimit(.minutes(5)), arguments: [false, true])
    func aHelloFloodFromManyConnectionsDoesNotStarveARealWorker(curve: Bool) async throws {
        let (config, reference, folder) = try tinyRun(steps: 3, maxStaleness: 0)
        // The run's own limits: the connection cap is runtime.max_workers plus the operator's.
        let limits = WireLimits.forRun(config, model: reference.config)
        #expect(limits.maxConnections > HelloFlood.connections + 1, "the flood stays under the cap")
        let learnerKeys = try ZMQCurveKeyPair.generate()
        let workerKeys = try ZMQCurveKeyPair.generate()
        let learnerWire = WireOptions(
            security: curve ? TransportSecurity(keys: learnerKeys) : nil, limits: limits)
        let workerWire = WireOptions(
            security: curve ? TransportSecurity(keys: workerKeys, serverKey: learnerKeys.publicKey) : nil,
            limits: limits)
        let context = try ZMQContext()
        // The ZAP handler is up before the CURVE server sockets bind; it counts its refusals.
        let refusals = Atomic<Int>(0)
        let authenticator =
            try curve
            ? ZMQAuthenticator(context: context, allowedKeys: [workerKeys.publicKey]) { decision in
                if !decision.allowed { refusals.add(1, ordering: .relaxed) }
            } : nil
        defer { authenticator?.stop() }
        let learnerSystem = try ReinActorSystem(
            context: context,
            configuration: .init(
                name: LearnerActor.name, bind: "tcp://127.0.0.1:*", limits: limits,
                security: learnerWire.security, rejections: learnerWire.rejections),
            settings: Self.settings, logger: quiet)
        let learnerChannels = ZMQBulkChannels(context: context, wire: learnerWire, logger: quiet)
        let broadcaster = try learnerChannels.publisher(node: learnerSystem.node, bind: "tcp://127.0.0.1:*")
        defer { broadcaster.close() }
        let learner = try LearnerActor.named(
            on: learnerSystem, config: config, reference: reference, broadcaster: broadcaster, logger: quiet)
        let sink = learnerChannels.sampleSource(bind: "tcp://127.0.0.1:*")
        defer { sink.close() }
        sink.attach(to: learner)
        try await learner.acceptSamples(at: await sink.endpoint())
        let endpoint = try #require(learnerSystem.endpoint)

        let flood = HelloFlood()
        // Closed sockets count against the context's limit until libzmq's reaper has freed them,
        // and on a loaded machine the reconnect storms outran it once (1,023 sockets, libzmq's
        // default, after 65 s of flood): room for the storms of a slow run.
        let floodContext = try ZMQContext(maxSockets: 4096)
        let done = DispatchSemaphore(value: 0)
        let thread = Thread {
            defer { done.signal() }
            flood.run(
                context: floodContext, endpoint: endpoint, learnerKey: curve ? learnerKeys.publicKey : nil)
        }
        thread.start()
        // The flood is under way before the worker arrives.
        while flood.hellos.load(ordering: .relaxed) < 4 * HelloFlood.connections,
            flood.failure.withLock({ $0 }) == nil
        {
            try await Task.sleep(for: .milliseconds(10))
        }

        let workerContext = try ZMQContext()
        let worker = try ReinActorSystem(
            context: workerContext,
            configuration: .init(name: "worker", limits: limits, security: workerWire.security),
            settings: Self.settings, logger: quiet)
        async let served = serveLearner(learner, on: learnerSystem, folder: folder, logger: quiet)
        try await runWorker(
            on: worker, learnerAddress: endpoint, config: config, gpt: reference.config, logger: quiet,
            channels: ZMQBulkChannels(context: workerContext, wire: workerWire, logger: quiet),
            wire: workerWire)
        let result = try await served
        flood.stop.store(true, ordering: .relaxed)
        while done.wait(timeout: .now()) == .timedOut { try await Task.sleep(for: .milliseconds(10)) }

        if let failure = flood.failure.withLock({ $0 }) { Issue.record("\(failure)") }
        let trained = config.train.steps * config.train.promptsPerStep * config.train.groupSize
        #expect(result.ledger.balances && result.ledger.trained == trained && result.ledger.inFlight == 0)
        #expect(result.weights.version == config.train.steps)
        #expect(flood.hellos.load(ordering: .relaxed) >= 4 * HelloFlood.connections)
        if curve {
            // No stranger completes a handshake with a CURVE server: nothing it sent reached the
            // actor system (connections over the cap, in the reconnect storms, are closed before
            // any handshake), and the ZAP handler refused the keys it tried.
            #expect(refusals.load(ordering: .relaxed) > 0)
            let counted = learnerWire.rejections.counts.filter { $0.key != WireRejections.tooManyConnections }
            #expect(counted.isEmpty, "\(learnerWire.rejections.summary)")
        } else {
            #expect(
                learnerWire.rejections.total > 0, "the garbage is counted: \(learnerWire.rejections.summary)")
        }
        print(
            "hello flood (CURVE \(curve ? "on" : "off")): \(flood.hellos.load(ordering: .relaxed)) hellos and \(flood.garbage.load(ordering: .relaxed)) hostile frames queued from \(HelloFlood.connections) connections; learner \(learnerWire.rejections.summary); ZAP refusals \(refusals.load(ordering: .relaxed))"
        )
        for system in [worker, learnerSystem] { await system.shutdown() }
    }
}
