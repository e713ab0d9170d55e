import ArgumentParser
import Foundation
import Logging
import Rein
import ReinActors
import ReinModel
import ReinRuntime
import ReinTasks
import ServiceLifecycle
import Synchronization
import UnixSignals
import ZeroMQ

/// Where the reference policy comes from: `train.reference`, or a random one (tests, demos).
struct ReferenceOptions: ParsableArguments {
    @Option(
        name: .long,
        help: ArgumentHelp(
            "Start from a random reference with this seed instead of train.reference (tests, demos).",
            visibility: .hidden))
    var randomReference: UInt64?

    func load(_ config: RunConfig) throws -> GPTParameters {
        if let seed = randomReference {
            let task = try ArithmeticTask(config: config.task)
            return try GPTParameters(config: config.gptConfig(vocab: task.tokenizer.vocabSize), seed: seed)
        }
        guard FileManager.default.fileExists(atPath: config.train.reference) else {
            throw CLIError(
                "no reference checkpoint at \(config.train.reference); run `rein pretrain` first (same config)"
            )
        }
        return try Checkpoint.load(from: config.train.reference).parameters
    }
}

/// Liveness and call timeouts of a node.
struct NodeOptions: ParsableArguments {
    @Option(
        name: .long, help: "Seconds a silent peer is given before it is declared dead (and its batch lost).")
    var heartbeatTimeout = 1.5

    @Option(name: .long, help: "Seconds a remote call may wait for its reply.")
    var callTimeout = 30.0

    func validate() throws {
        guard heartbeatTimeout > 0, callTimeout > 0 else {
            throw ValidationError("--heartbeat-timeout and --call-timeout must be positive")
        }
    }

    /// The actor-system settings: heartbeats every quarter of the timeout (at most 250 ms).
    var settings: ReinActorSystem.Settings {
        let timeout = Duration.milliseconds(Int(heartbeatTimeout * 1000))
        return ReinActorSystem.Settings(
            callTimeout: .milliseconds(Int(callTimeout * 1000)),
            heartbeatInterval: min(.milliseconds(250), timeout / 4),
            heartbeatTimeout: timeout, transportableErrors: [RuntimeError.self])
    }

    /// The same options as arguments (for child processes).
    var arguments: [String] {
        ["--heartbeat-timeout", "\(heartbeatTimeout)", "--call-timeout", "\(callTimeout)"]
    }
}

/// `--exit-with-parent`: a child of `rein launch` stops (as on SIGTERM) when its parent dies, so a
/// killed launcher leaves no orphans.
struct ParentOptions: ParsableArguments {
    @Flag(
        name: .long, help: ArgumentHelp("Stop gracefully when the parent process dies.", visibility: .hidden))
    var exitWithParent = false

    /// Starts watching the parent, if asked to.
    func watch() {
        guard exitWithParent else { return }
        signal(SIGPIPE, SIG_IGN)  // our output pipes die with the parent; drain anyway
        let parent = getppid()
        Task.detached {
            while getppid() == parent { try? await Task.sleep(for: .milliseconds(250)) }
            kill(getpid(), SIGTERM)
        }
    }
}

/// Writes a line to stdout at once (a parent process may be waiting for it on a pipe).
func emitNow(_ line: String) {
    emit(line)
    fflush(nil)
}

/// `rein learner`: the learner of a multi-process run.
struct LearnerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "learner",
        abstract: "Serve the learner: rollout workers (`rein worker`) connect to it; writes the run folder.",
        discussion: """
            Prints `learner listening on ENDPOINT` once bound. Trains train.steps batches, admitting \
            samples under train.max_staleness, then writes metrics.jsonl and ledger.json. SIGTERM or \
            Ctrl-C drains (no new batches; those handed out are trained) and exits 0.
            """
    )

    @OptionGroup var parent: ParentOptions
    @OptionGroup var node: NodeOptions
    @OptionGroup var options: ConfigOptions
    @OptionGroup var reference: ReferenceOptions
    @OptionGroup(title: "Security and wire limits") var security: WireSecurityOptions

    @Option(name: .long, help: "Endpoint to listen on (tcp://HOST:PORT, port * for any; ipc://PATH).")
    var bind = "tcp://0.0.0.0:7070"

    @Option(
        name: .long,
        help: "Endpoint of the weight broadcast (PUB); default: the --bind host on any free port.")
    var broadcastBind: String?

    @Option(
        name: .long,
        help: "Endpoint of the sample stream (PULL); default: the --bind host on any free port.")
    var samplesBind: String?

    /// The default broadcast endpoint for a learner bound to `bind`: same host, any port (tcp),
    /// `PATH.weights` (ipc), none otherwise.
    static func broadcastEndpoint(for bind: String, suffix: String = ".weights") -> String? {
        if bind.hasPrefix("tcp://"), let colon = bind.lastIndex(of: ":"),
            colon > bind.index(bind.startIndex, offsetBy: 5)
        {
            return String(bind[..<colon]) + ":*"
        }
        if bind.hasPrefix("ipc://") { return bind + suffix }
        return nil
    }

    func run() async throws {
        let logger = Logger(label: "rein.learner")
        parent.watch()
        try security.check(server: true)
        let wire = try security.wire()
        let allowed = try security.allowedKeys()
        let config = try options.load()
        let parameters = try reference.load(config)
        let folder = try RunFolder(path: config.runDir)
        try folder.write(Data(try ConfigLoader.yaml(config).utf8), to: "config.yaml")
        let context = try ZMQContext()
        // The ZAP handler must be up before the CURVE server sockets bind.
        let authenticator = try allowed.map {
            try startAuthenticator(context: context, allowed: $0, rejections: wire.rejections, logger: logger)
        }
        defer { authenticator?.stop() }
        let system = try ReinActorSystem(
            context: context,
            configuration: .init(
                name: "learner", bind: bind, limits: wire.limits, security: wire.security,
                rejections: wire.rejections),
            settings: node.settings, logger: logger)
        let broadcaster = try (broadcastBind ?? Self.broadcastEndpoint(for: bind)).map {
            try WeightBroadcaster(context: context, node: system.node, bind: $0, security: wire.security)
        }
        defer { broadcaster?.close() }
        let learner = try LearnerActor.named(
            on: system, config: config, reference: parameters, broadcaster: broadcaster, logger: logger)
        let sink = (samplesBind ?? Self.broadcastEndpoint(for: bind, suffix: ".samples")).map {
            SampleSink(context: context, bind: $0, wire: wire, logger: logger)
        }
        defer { sink?.close() }
        if let sink {
            sink.attach(to: learner)
            let endpoint = await sink.endpoint()
            try await learner.acceptSamples(at: endpoint)
            logger.info("samples stream in on \(endpoint)")
        }
        emitNow("learner listening on \(system.endpoint ?? bind)")
        if let endpoint = broadcaster?.endpoint { logger.info("weights broadcast on \(endpoint)") }
        let outcome = Mutex<DistributedRunResult?>(nil)
        let service = LearnerService(learner: learner, system: system, folder: folder, logger: logger) {
            result in
            outcome.withLock { $0 = result }
        }
        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: service, successTerminationBehavior: .gracefullyShutdownGroup)],
                gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
        logger.info("wire: \(wire.rejections.summary)")
        guard let result = outcome.withLock({ $0 }) else {
            throw CLIError("the learner stopped without a result")
        }
        emitNow(
            "run folder \(config.runDir): \(result.metrics.count) batches, policy version \(result.weights.version); "
                + "ledger: \(result.ledger.summary)")
        emitNow(
            String(
                format: "learner busy %.0f%% of %.2f s; %.0f samples trained per second",
                100 * result.utilisation.busyFraction, result.utilisation.wallSeconds, result.trainedPerSecond
            ))
    }
}

/// `rein worker`: a rollout worker of a multi-process run.
struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Run a rollout worker: connect to a learner, sample the batches it assigns, deliver them.",
        discussion:
            "Use the learner's config. SIGTERM or Ctrl-C delivers the batch being sampled and exits 0."
    )

    @OptionGroup var parent: ParentOptions
    @OptionGroup var node: NodeOptions
    @OptionGroup var options: ConfigOptions

    @OptionGroup(title: "Security and wire limits") var security: WireSecurityOptions

    @Option(name: .long, help: "The learner's endpoint (tcp://HOST:PORT or ipc://PATH).")
    var learner: String

    @Option(name: .long, help: "This worker's name (default worker-PID).")
    var name: String?

    func run() async throws {
        let logger = Logger(label: "rein.worker")
        parent.watch()
        let config = try options.load()
        let task = try ArithmeticTask(config: config.task)
        try security.check(server: false)
        let wire = try security.wire()
        let context = try ZMQContext()
        let system = try ReinActorSystem(
            context: context,
            configuration: .init(
                name: name ?? "worker-\(getpid())", limits: wire.limits, security: wire.security,
                rejections: wire.rejections),
            settings: node.settings,
            logger: logger)
        let service = WorkerService(
            system: system, learnerAddress: learner, config: config,
            gpt: config.gptConfig(vocab: task.tokenizer.vocabSize), context: context, wire: wire,
            logger: logger)
        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: service, successTerminationBehavior: .gracefullyShutdownGroup)],
                gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        defer { logger.info("wire: \(wire.rejections.summary)") }
        try await group.run()
    }
}
