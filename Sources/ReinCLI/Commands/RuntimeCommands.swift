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
            heartbeatTimeout: timeout, heartbeatsPerSecond: config.runtime.heartbeatsPerSecond,
            transportableErrors: [RuntimeError.self])
    }

    /// The options given on the command line, as arguments (for child processes).
    var arguments: [String] {
        (heartbeatTimeout.map { ["--heartbeat-timeout", "\($0)"] } ?? [])
            + (callTimeout.map { ["--call-timeout", "\($0)"] } ?? [])
    }
}

/// `--exit-with-parent`: a child of `rein launch` stops (as on SIGTERM) when its parent dies, so a
/// killed launcher leaves no orphans. The parent gives the child a stdin pipe it holds open and
/// never writes: end of file on stdin is the parent's death (an event, not a poll of `getppid`).
struct ParentOptions: ParsableArguments {
    @Flag(
        name: .long,
        help: ArgumentHelp(
            "Stop gracefully at end of file on stdin (the parent holds it open: its death).",
            visibility: .hidden))
    var exitWithParent = false

    /// Starts watching the parent, if asked to.
    func watch() {
        guard exitWithParent else { return }
        signal(SIGPIPE, SIG_IGN)  // our output pipes die with the parent; drain anyway
        let watcher = Thread {
            var byte: UInt8 = 0
            while true {
                let count = read(STDIN_FILENO, &byte, 1)
                if count > 0 || (count < 0 && errno == EINTR) { continue }
                break
            }
            kill(getpid(), SIGTERM)
        }
        watcher.name = "rein-parent-watch"
        watcher.start()
    }
}

/// The run folder of a learner, locked for this process, and the checkpoint it continues from:
/// what `rein learner` and `rein train --workers` both open before they start (config.yaml
/// written).
struct LearnerRun {
    let folder: RunFolder
    let lock: RunFolderLock
    let checkpoint: LearnerCheckpoint?

    init(config: RunConfig, resume: Bool, fresh: Bool, logger: Logger) throws {
        folder = try RunFolder(path: config.runDir)
        lock = try folder.lock()
        checkpoint = try loadLearnerCheckpoint(folder: folder, resume: resume, fresh: fresh, logger: logger)
        if let state = checkpoint?.state {
            emit(
                "resuming from a checkpoint at batch \(state.consumed), policy version \(state.version); "
                    + "ledger then: \(state.ledger.summary)")
        }
        try folder.writeConfig(config)
    }
}

extension ServiceGroup {
    /// A group of `services` that shuts down gracefully on SIGTERM and SIGINT, and once the first
    /// of them returns: how every `rein` node process runs.
    /// A group whose `services` end the run when they return, with `also` (e.g. a metrics endpoint)
    /// beside them.
    static func node(
        _ services: [any Service], also: [ServiceGroupConfiguration.ServiceConfiguration] = [], logger: Logger
    ) -> ServiceGroup {
        ServiceGroup(
            configuration: .init(
                services: services.map {
                    .init(service: $0, successTerminationBehavior: .gracefullyShutdownGroup)
                } + also,
                gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
    }
}

/// A value set once by a service and read after its group ran.
final class Outcome<Value: Sendable>: Sendable {
    private let value = Mutex<Value?>(nil)
    func set(_ new: Value) { value.withLock { $0 = new } }
    func get() -> Value? { value.withLock { $0 } }
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

    @Flag(
        name: .long,
        help: ArgumentHelp(
            "Announce the endpoint on stdout with a handshake line (rein launch).", visibility: .hidden))
    var handshake = false

    @OptionGroup var parent: ParentOptions
    @OptionGroup var node: NodeOptions
    @OptionGroup var options: ConfigOptions
    @OptionGroup var reference: ReferenceOptions
    @OptionGroup(title: "Security and wire limits") var security: WireSecurityOptions
    @OptionGroup(title: "Metrics") var metrics: MetricsOptions

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
        let config = try options.load()
        let keys = try security.resolve(config.security, role: .learner)
        var wire = try security.wire(keys)
        let (bind, broadcastBind, samplesBind) = try endpoints(config.runtime)
        if wire.security == nil, let exposure = RuntimeConfig.exposure(bindEndpoint: bind) {
            logger.warning("\(exposure)")
        }
        let metricsEndpoint = try await metrics.start(config, logger: logger)
        let parameters = try reference.load(config)
        wire.limits = security.limits(config: config, model: parameters.config)
        let run = try LearnerRun(config: config, resume: resume, fresh: fresh, logger: logger)
        let context = try ZMQContext()
        // The ZAP handler must be up before the CURVE server sockets bind.
        let authenticator = try security.allowedKeys(keys).map {
            try startAuthenticator(context: context, allowed: $0, rejections: wire.rejections, logger: logger)
        }
        defer {
            authenticator?.stop()
            withExtendedLifetime(run) {}
        }
        let system = try actorSystem(context: context, bind: bind, wire: wire, config: config, logger: logger)
        let progress = TrainingProgress(total: config.train.steps)
        let options = LearnerNode.Options(
            config: config, reference: parameters, folder: run.folder, resume: run.checkpoint,
            evaluator: try HeldOutEvaluator(config: config, gpt: parameters.config), onStep: progress.record,
            broadcastBind: broadcastBind, samplesBind: samplesBind)
        let result = Outcome<DistributedRunResult>()
        let service = LearnerService(
            system: system, channels: ZMQBulkChannels(context: context, wire: wire, logger: logger),
            options: options, logger: logger, listening: announce, finished: result.set)
        defer { logger.info("wire: \(wire.rejections.summary)") }
        try await ServiceGroup.node([service], also: MetricsOptions.services(metricsEndpoint), logger: logger)
            .run()
        progress.finish()
        guard let result = result.get() else { throw CLIError("the learner stopped without a result") }
        emitRunSummary(runDir: config.runDir, result: result)
    }

    /// The learner's actor system, bound to `bind`, with the open-file limit raised to fit
    /// `runtime.max_workers` (each worker holds a control, a broadcast and a sample connection).
    private func actorSystem(
        context: ZMQContext, bind: String, wire: WireOptions, config: RunConfig, logger: Logger
    ) throws -> ReinActorSystem {
        let workers = config.runtime.maxWorkers
        try FileLimit.ensure(
            FileLimit.perWorker * (workers + RuntimeConfig.operatorConnections) + FileLimit.reserve,
            for: "a learner for runtime.max_workers \(workers)")
        return try ReinActorSystem(
            context: context,
            configuration: .init(
                name: "learner", bind: bind, limits: wire.limits, security: wire.security,
                rejections: wire.rejections),
            settings: node.settings(config), logger: logger)
    }

    /// Says where workers connect: for people, and (with `--handshake`) for `rein launch`.
    @Sendable func announce(_ endpoint: String) {
        emit("learner listening on \(endpoint)")
        if handshake { emit(ReadyHandshake.line(endpoint: endpoint)) }
    }
}

/// `rein worker`: a rollout worker of a multi-process run.
struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Run a rollout worker: connect to a learner, sample the batches it assigns, deliver them.",
        discussion: """
            Use the learner's config. SIGTERM or Ctrl-C delivers the batch being sampled and exits 0. \
            A learner that crashes, or stays silent past the heartbeat timeout (stalled, cut off), is \
            looked for again at the same address for --reconnect-timeout seconds; the worker rejoins \
            it as a new node (a restarted learner resumes from its checkpoint) and carries on. A \
            learner that ends the run, or is stopped, ends the worker with status 0.
            """
    )

    @OptionGroup var parent: ParentOptions
    @OptionGroup var node: NodeOptions
    @OptionGroup var options: ConfigOptions

    @OptionGroup(title: "Security and wire limits") var security: WireSecurityOptions
    @OptionGroup(title: "Metrics") var metrics: MetricsOptions

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
        let keys = try security.resolve(config.security, role: .worker)
        let metricsEndpoint = try await metrics.start(config, logger: logger)
        var wire = try security.wire(keys)
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
            gpt: config.gptConfig(vocab: task.tokenizer.vocabSize),
            channels: ZMQBulkChannels(context: context, wire: wire, logger: logger),
            reconnectTimeout: .milliseconds(Int(reconnectTimeout * 1000)),
            beforeDelivery: holdBatches(), wire: wire, logger: logger)
        defer { logger.info("wire: \(wire.rejections.summary)") }
        try await ServiceGroup.node([service], also: MetricsOptions.services(metricsEndpoint), logger: logger)
            .run()
    }
}
