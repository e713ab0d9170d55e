import ArgumentParser
import Foundation
import ReinActors
import ZeroMQ

/// `rein fuzz-wire` (hidden): sends hostile frames (``WireFuzzer``) to a live learner's sockets, or
/// poses as a learner and floods a worker that connects to it. Used by `scripts/fuzz-wire.sh`.
struct FuzzWireCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fuzz-wire",
        abstract: "Send hostile frames to a live learner (ROUTER, sample PULL) or worker (DEALER).",
        discussion: """
            With --learner/--samples: a stranger that never says hello, a member that does, and a \
            sample pusher send --frames frames in all (30/40/30%), then oversize frames beyond \
            --max-frame-bytes. With --serve-worker: binds a fake learner, welcomes the first worker \
            that connects and sends it --frames frames. Prints what was sent, by the reason the \
            receiver must count it under.
            """,
        shouldDisplay: false
    )

    @Option(name: .long, help: "The learner's actor-system endpoint (ROUTER).")
    var learner: String?

    @Option(name: .long, help: "The learner's sample-stream endpoint (PULL).")
    var samples: String?

    @Option(name: .long, help: "Bind a fake learner here and flood the worker that connects.")
    var serveWorker: String?

    @Option(name: .long, help: "Hostile frames to send in all.")
    var frames = 100_000

    @Option(name: .long, help: "The receivers' frame limit; oversize frames are one byte more.")
    var maxFrameBytes = WireLimits.default.maxFrameBytes

    @Option(name: .long, help: "Seed of the hostile frames.")
    var seed: UInt64 = 1

    func validate() throws {
        guard learner != nil || samples != nil || serveWorker != nil else {
            throw ValidationError("give --learner and/or --samples, or --serve-worker")
        }
        guard frames > 0 else { throw ValidationError("--frames must be positive") }
    }

    func run() throws {
        let context = try ZMQContext()
        var tally: [String: Int] = [:]
        let clock = ContinuousClock()
        let started = clock.now
        if let serveWorker {
            try floodWorker(at: serveWorker, context: context, count: frames, tally: &tally)
        } else {
            try floodLearner(context: context, tally: &tally)
        }
        let sent = tally.values.reduce(0, +)
        let elapsed = started.duration(to: clock.now)
        emit(
            "sent \(sent) hostile frames in \(String(format: "%.1f", Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)) s: "
                + tally.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
        fflush(nil)
    }

    /// Floods the learner's ROUTER (as a stranger, then as a member) and its sample PULL, by shares.
    private func floodLearner(context: ZMQContext, tally: inout [String: Int]) throws {
        let targets = [learner != nil, learner != nil, samples != nil]
        let shares = [30, 40, 30].enumerated().map { targets[$0.offset] ? $0.element : 0 }
        let total = shares.reduce(0, +)
        let counts = shares.map { frames * $0 / total }
        if let learner {
            let stranger = NodeID.random()
            let socket = try dealer(stranger, to: learner, context: context)
            var fuzz = WireFuzzer(seed: seed, sender: stranger)
            try flood(socket, count: counts[0], tally: &tally) { fuzz.next(for: .stranger) }
            let member = NodeID.random()
            let memberSocket = try dealer(member, to: learner, context: context)
            _ = try memberSocket.send(multipart: Self.hello(from: member, kind: .hello))
            guard try memberSocket.receiveMultipart(wait: .timeout(.seconds(10))) != nil else {
                throw CLIError("no welcome from \(learner)")
            }
            fuzz = WireFuzzer(seed: seed &+ 1, sender: member)
            let beat = WireHeader(kind: .heartbeat, sender: member).encoded()
            try flood(memberSocket, count: counts[1], tally: &tally, keepAlive: [beat]) {
                fuzz.next(for: .member)
            }
            try oversize(context: context, pattern: .dealer, to: learner)
        }
        if let samples {
            let push = try context.socket(.push)
            try push.setLinger(.seconds(5))
            try push.connect(samples)
            var fuzz = WireFuzzer(seed: seed &+ 2, sender: .random())
            try flood(push, count: counts[2], tally: &tally) { fuzz.next(for: .bulk) }
            try oversize(context: context, pattern: .push, to: samples)
        }
    }

    /// Binds a fake learner, welcomes the first worker and floods its DEALER.
    private func floodWorker(at address: String, context: ZMQContext, count: Int, tally: inout [String: Int])
        throws
    {
        let router = try context.socket(.router)
        try router.setLinger(.zero)
        try router.setRouterMandatory(true)  // block at the high-water mark instead of dropping
        try router.bind(address)
        emit("fake learner listening on \(try router.lastEndpoint)")
        fflush(nil)
        let node = NodeID.random()
        var hello: [ZMQMessage]?
        while hello == nil {
            hello = try router.receiveMultipart(wait: .timeout(.seconds(60)))
            guard hello != nil else { throw CLIError("no worker connected within 60 s") }
            if hello!.count < 2 { hello = nil }
        }
        let victim = hello![0].bytes
        _ = try router.send(multipart: [victim] + Self.hello(from: node, kind: .welcome))
        var fuzz = WireFuzzer(seed: seed &+ 3, sender: node)
        let beat = WireHeader(kind: .heartbeat, sender: node).encoded()
        try flood(router, count: count, tally: &tally, prefix: victim, keepAlive: [beat]) {
            fuzz.next(for: .dealer)
        }
        emit("flood done: \(tally.values.reduce(0, +)) frames; an oversize frame follows in 2 s")
        fflush(nil)
        for _ in 0..<8 {
            _ = try router.send(multipart: [victim, beat], wait: .timeout(.seconds(1)))
            Thread.sleep(forTimeInterval: 0.25)
        }
        // Oversize frames towards the worker's DEALER: libzmq drops the connection (and the
        // worker finds its learner lost).
        _ = try router.send(
            multipart: [victim, [UInt8](repeating: 1, count: maxFrameBytes + 1)], wait: .timeout(.seconds(1)))
        Thread.sleep(forTimeInterval: 0.5)
    }

    private func dealer(_ node: NodeID, to endpoint: String, context: ZMQContext) throws -> ZMQSocket {
        let socket = try context.socket(.dealer)
        try socket.setRoutingID(node.bytes)
        try socket.setLinger(.seconds(5))
        try socket.connect(endpoint)
        return socket
    }

    /// Sends `count` messages; a keep-alive every 200 (so a member is not declared dead), and
    /// drains what the receiver sends back (welcomes, heartbeats).
    private func flood(
        _ socket: ZMQSocket, count: Int, tally: inout [String: Int], prefix: [UInt8]? = nil,
        keepAlive: [[UInt8]]? = nil, _ next: () -> WireFuzzer.Message
    ) throws {
        let head = prefix.map { [$0] } ?? []
        for i in 0..<count {
            if i % 200 == 0 {
                if let keepAlive { _ = try socket.send(multipart: head + keepAlive) }
                if socket.type != .push {
                    while try socket.receiveMultipart(wait: .nonBlocking) != nil {}
                }
            }
            let message = next()
            guard try socket.send(multipart: head + message.frames, wait: .timeout(.seconds(30))) else {
                throw CLIError("the receiver stopped taking frames (30 s)")
            }
            tally[message.reason ?? "any", default: 0] += 1
        }
    }

    /// Five frames one byte over the limit, each on a fresh connection.
    private func oversize(context: ZMQContext, pattern: ZMQSocketType, to endpoint: String) throws {
        let big = [UInt8](repeating: 9, count: maxFrameBytes + 1)
        for _ in 0..<5 {
            let socket =
                pattern == .dealer
                ? try dealer(.random(), to: endpoint, context: context) : try context.socket(pattern)
            if pattern != .dealer { try socket.connect(endpoint) }
            try socket.setLinger(.seconds(1))
            _ = try socket.send(multipart: [big], wait: .timeout(.seconds(1)))
            Thread.sleep(forTimeInterval: 0.2)
            socket.close()
        }
    }

    /// A hello or welcome message from `node`.
    static func hello(from node: NodeID, kind: MessageKind) -> [[UInt8]] {
        var w = ByteWriter()
        w.write("fuzz")
        w.write("")
        let payload = w.bytes
        return [
            WireHeader(kind: kind, sender: node, frameCount: 1, payloadBytes: UInt64(payload.count))
                .encoded(),
            payload,
        ]
    }
}
