import ArgumentParser
import Foundation
import Logging
import Rein
import ReinActors
import ReinModel
import ReinRuntime
import ReinTasks
import ReinTracker
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
        let (reference, metadata) = try Checkpoint.load(from: config.train.reference)
        try checkReferenceTask(metadata: metadata, path: config.train.reference, task: config.task)
        try config.checkReference(reference, source: config.train.reference)
        return reference
    }
}

/// Liveness and call timeouts of a node: the flags override `runtime.heartbeat_timeout` and
/// `runtime.call_timeout`.
struct NodeOptions: ParsableArguments {
    @Option(
        name: .long,
        help:
            "Seconds a silent peer is given before it is declared dead (and its batch lost); default runtime.heartbeat_timeout."
    )
    var heartbeatTimeout: Double?

    @Option(name: .long, help: "Seconds a remote call may wait for its reply; default runtime.call_timeout.")
    var callTimeout: Double?

    func validate() throws {
        guard (heartbeatTimeout ?? 1) > 0, (callTimeout ?? 1) > 0 else {
            throw ValidationError("--heartbeat-timeout and --call-timeout must be positive")
        }
    }

    /// The actor-system settings of a node of `config`'s run: heartbeats every quarter of the
    /// timeout (at most 250 ms).
    func settings(_ config: RunConfig) -> ReinActorSystem.Settings {
        let heartbeat = heartbeatTimeout ?? config.runtime.heartbeatTimeout
        let call = callTimeout ?? config.runtime.callTimeout
        let timeout = Duration.milliseconds(Int(heartbeat * 1000))
        return ReinActorSystem.Settings(
            callTimeout: .milliseconds(Int(call * 1000)),
            heartbeatInterval: min(.milliseconds(250), timeout / 4),
            heartbeatTimeout: timeout, transportableErrors: [RuntimeError.self])
    }

    /// The options given on the command line, as arguments (for child processes).
    var arguments: [String] {
        (heartbeatTimeout.map { ["--heartbeat-timeout", "\($0)"] } ?? [])
            + (callTimeout.map { ["--call-timeout", "\($0)"] } ?? [])
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

/// The learner checkpoint to continue from, with `rein train`'s semantics: the run folder's
/// checkpoint if it has one (unless `fresh`, which removes it); `resume` requires one.
/// - Throws: ``CLIError`` when `resume` finds none; ``Rein/CheckpointError`` when checkpoints
///   exist but none is usable (nothing is overwritten then).
func loadLearnerCheckpoint(folder: RunFolder, resume: Bool, fresh: Bool, logger: Logger) throws
    -> LearnerCheckpoint?
{
    if fresh {
        try CheckpointStore(folder: folder).removeAll()
        return nil
    }
    let checkpoint = try LearnerCheckpoint.load(from: folder, logger: logger)
    if checkpoint == nil, resume {
        throw CLIError("--resume: no checkpoint in \(CheckpointStore(folder: folder).current)")
    }
    if let consumed = checkpoint?.state.consumed {
        // The batches after the checkpoint are trained (and observed) again.
        try folder.keepRecords(TrackerRecord.self, of: .tracker) { $0.step <= consumed }
    }
    return checkpoint
}

/// `rein learner`: the learner of a multi-process run.
struct LearnerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "learner",
        abstract: "Serve the learner: rollout workers (`rein worker`) connect to it; writes the run folder.",
        discussion: """
            Prints `learner listening on ENDPOINT` once bound (status.json says the same). Trains \
            train.steps batches, admitting samples under train.max_staleness, with the same run folder \
            (eval-start.json, metrics.jsonl with a held-out evaluation every train.eval_every steps, \
            tracker.jsonl, eval.json, ledger.json), progress line and end summary as `rein train`. \
            Endpoints and timeouts come from the config's runtime: section unless given as flags. \
            Checkpoints \
            into run_dir/checkpoint/ (the previous one kept as checkpoint.prev/) every \
            train.checkpoint_every batches and at the end; a learner started on a run folder with a \
            checkpoint resumes from it (workers reconnect by themselves). Rewrites \
            RUN_DIR/status.json every 2 s (`rein status` reads it). SIGTERM or Ctrl-C drains \
            (no new batches; those handed out are trained; workers are told to stop), checkpoints \
            and exits 0.
            """
    )

    @Flag(name: .long, help: "Continue from run_dir/checkpoint (started automatically if it exists).")
    var resume = false

    @Flag(name: .long, help: "Start over even if run_dir has a checkpoint (removes it).")
    var fresh = false

    @OptionGroup var parent: ParentOptions
    @OptionGroup var node: NodeOptions
    @OptionGroup var options: ConfigOptions
    @OptionGroup var reference: ReferenceOptions
    @OptionGroup(title: "Security and wire limits") var security: WireSecurityOptions

    @Option(
        name: .long,
        help:
            "Endpoint to listen on (tcp://HOST:PORT, port * for any; ipc://PATH); default runtime.learner_bind."
    )
    var bind: String?

    @Option(
        name: .long,
        help:
            "Endpoint of the weight broadcast (PUB); default runtime.broadcast_bind (auto: the --bind host on any free port)."
    )
    var broadcastBind: String?

    @Option(
        name: .long,
        help:
            "Endpoint of the sample stream (PULL); default runtime.samples_bind (auto: the --bind host on any free port)."
    )
    var samplesBind: String?

    /// The endpoints to bind: flags over `runtime:`, `auto` resolved (nil: none).
    func endpoints(_ runtime: RuntimeConfig) throws -> (bind: String, broadcast: String?, samples: String?) {
        let bind = self.bind ?? runtime.learnerBind
        if let problem = RuntimeConfig.problem(bindEndpoint: bind) { throw CLIError("--bind: \(problem)") }
        func resolve(_ flag: String?, _ configured: String, suffix: String) -> String? {
            let value = flag ?? configured
            return value == RuntimeConfig.automatic
                ? Self.broadcastEndpoint(for: bind, suffix: suffix) : value
        }
        return (
            bind, resolve(broadcastBind, runtime.broadcastBind, suffix: ".weights"),
            resolve(samplesBind, runtime.samplesBind, suffix: ".samples")
        )
    }

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
        var wire = try security.wire()
        let allowed = try security.allowedKeys()
        let config = try options.load()
        let (bind, broadcastBind, samplesBind) = try endpoints(config.runtime)
        let parameters = try reference.load(config)
        wire.limits = security.limits(config: config, model: parameters.config)
        let folder = try RunFolder(path: config.runDir)
        let lock = try folder.lock()
        defer { withExtendedLifetime(lock) {} }
        let checkpoint = try loadLearnerCheckpoint(
            folder: folder, resume: resume, fresh: fresh, logger: logger)
        if let state = checkpoint?.state {
            emit(
                "resuming from a checkpoint at batch \(state.consumed), policy version \(state.version); "
                    + "ledger then: \(state.ledger.summary)")
        }
        try folder.writeConfig(config)
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
            settings: node.settings(config), logger: logger)
        let broadcaster = try broadcastBind.map {
            try WeightBroadcaster(context: context, node: system.node, bind: $0, security: wire.security)
        }
        defer { broadcaster?.close() }
        let progress = TrainingProgress(total: config.train.steps)
        let evaluator = try HeldOutEvaluator(config: config, gpt: parameters.config)
        let learner = try LearnerActor.named(
            on: system, config: config, reference: parameters, broadcaster: broadcaster, folder: folder,
            resume: checkpoint, evaluator: evaluator, onStep: progress.record, logger: logger)
        let sink = samplesBind.map {
            SampleSink(context: context, bind: $0, wire: wire, logger: logger)
        }
        defer { sink?.close() }
        if let sink {
            sink.attach(to: learner)
            let endpoint = await sink.endpoint()
            try await learner.acceptSamples(at: endpoint)
            logger.info("samples stream in on \(endpoint)")
        }
        let listening = system.endpoint ?? bind
        emit("learner listening on \(listening)")
        let statusWriter = LearnerStatus.keepWriting(learner: learner, endpoint: listening, folder: folder)
        if let endpoint = broadcaster?.endpoint { logger.info("weights broadcast on \(endpoint)") }
        let outcome = Mutex<DistributedRunResult?>(nil)
        let service = LearnerService(
            learner: learner, system: system, folder: folder, logger: logger, evaluator: evaluator
        ) { result in
            outcome.withLock { $0 = result }
        }
        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: service, successTerminationBehavior: .gracefullyShutdownGroup)],
                gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        var failure: (any Error)?
        do { try await group.run() } catch { failure = error }
        progress.finish()
        logger.info("wire: \(wire.rejections.summary)")
        // The last status: finished (the probe turns unready) or failed.
        statusWriter.cancel()
        await statusWriter.value
        let state: LearnerStatus.State =
            failure == nil && outcome.withLock({ $0 }) != nil ? .finished : .failed
        try? await LearnerStatus.current(learner: learner, endpoint: listening, state: state).write(
            to: folder)
        if let failure { throw failure }
        guard let result = outcome.withLock({ $0 }) else {
            throw CLIError("the learner stopped without a result")
        }
        emitRunSummary(runDir: config.runDir, result: result)
    }
}

/// `rein worker`: a rollout worker of a multi-process run.
struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Run a rollout worker: connect to a learner, sample the batches it assigns, deliver them.",
        discussion: """
            Use the learner's config. SIGTERM or Ctrl-C delivers the batch being sampled and exits 0. \
            A learner that crashes is looked for again at the same address for --reconnect-timeout \
            seconds; the worker rejoins the restarted learner (which resumes from its checkpoint) \
            and carries on. A learner that ends the run, or is stopped, ends the worker with status 0.
            """
    )

    @OptionGroup var parent: ParentOptions
    @OptionGroup var node: NodeOptions
    @OptionGroup var options: ConfigOptions

    @OptionGroup(title: "Security and wire limits") var security: WireSecurityOptions

    @Option(
        name: .long, help: "The learner's endpoint (tcp://HOST:PORT or ipc://PATH); default runtime.learner.")
    var learner: String?

    @Option(name: .long, help: "This worker's name (default worker-PID).")
    var name: String?

    @Option(
        name: .long,
        help: "Seconds to keep trying to reach the learner again after losing it (0: give up at once).")
    var reconnectTimeout = 60.0

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Hold each sampled batch this many seconds before delivering it (tests: a batch in flight "
                + "across a learner restart).", visibility: .hidden))
    var delayDelivery = 0.0

    /// Sleeps `--delay-delivery` seconds before each delivery (nil when 0).
    func holdBatches() -> (@Sendable (Int) async -> Void)? {
        guard delayDelivery > 0 else { return nil }
        let hold = Duration.milliseconds(Int(delayDelivery * 1000))
        return { _ in try? await Task.sleep(for: hold) }
    }

    func validate() throws {
        guard reconnectTimeout >= 0, delayDelivery >= 0 else {
            throw ValidationError("--reconnect-timeout and --delay-delivery must be ≥ 0")
        }
    }

    func run() async throws {
        let logger = Logger(label: "rein.worker")
        parent.watch()
        let config = try options.load()
        let learner = self.learner ?? config.runtime.learner
        if let problem = RuntimeConfig.problem(connectEndpoint: learner) {
            throw CLIError("--learner: \(problem)")
        }
        let task = try ArithmeticTask(config: config.task)
        try security.check(server: false)
        var wire = try security.wire()
        wire.limits = security.limits(
            config: config, model: config.gptConfig(vocab: task.tokenizer.vocabSize))
        let context = try ZMQContext()
        let system = try ReinActorSystem(
            context: context,
            configuration: .init(
                name: name ?? "worker-\(getpid())", limits: wire.limits, security: wire.security,
                rejections: wire.rejections),
            settings: node.settings(config),
            logger: logger)
        let service = WorkerService(
            system: system, learnerAddress: learner, config: config,
            gpt: config.gptConfig(vocab: task.tokenizer.vocabSize), context: context,
            reconnectTimeout: .milliseconds(Int(reconnectTimeout * 1000)),
            beforeDelivery: holdBatches(), wire: wire, logger: logger)
        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: service, successTerminationBehavior: .gracefullyShutdownGroup)],
                gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        defer { logger.info("wire: \(wire.rejections.summary)") }
        try await group.run()
    }
}
