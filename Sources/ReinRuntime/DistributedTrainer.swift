import Distributed
import Foundation
import Logging
import Rein
import ReinActors
import ReinModel
import ZeroMQ

/// What a distributed run produced.
public struct DistributedRunResult: Sendable {
    /// Batches the learner consumed (trained or dropped): the records of `metrics.jsonl`.
    public var steps: Int
    /// The run folder, whose `metrics.jsonl` holds the metrics of every batch.
    public var folder: RunFolder
    /// The final sample ledger (balanced, nothing in flight).
    public var ledger: RuntimeLedger
    /// The final weights and version.
    public var weights: PolicyWeights
    /// How busy the learner was.
    public var utilisation = LearnerUtilisation(busySeconds: 0, wallSeconds: 0)
    /// The held-out evaluation of the final policy (`eval.json`), when the learner had an evaluator.
    public var evaluation: HeldOutEvaluation?
    /// What was trained from each worker (`workers.json`).
    public var workers = WorkerContributions(workers: [])
    /// How new weights reached the workers: versions broadcast, orders that carried weights,
    /// fetches (`runtime.weight_delivery`).
    public var deliveries = WeightDeliveryCounts()

    /// Metrics of every batch, in index order, read from the run folder's `metrics.jsonl` (a
    /// result does not hold them: a long run's would take as much memory as its file).
    /// - Throws: ``Rein/RunFolderError`` if the file cannot be read.
    public func metrics() throws -> [StepMetrics] {
        Array(try folder.metrics().prefix(steps))
    }

    /// Samples trained per second of the run's wall time.
    public var trainedPerSecond: Double {
        utilisation.wallSeconds > 0 ? Double(ledger.trained) / utilisation.wallSeconds : 0
    }
}

/// Forwards the death or departure of worker nodes to the learner, so their batches count lost.
public func watchMembership(of system: ReinActorSystem, for learner: LearnerActor) async {
    for await event in system.membershipEvents() {
        switch event {
        case .dead(let member, _), .left(let member):
            try? await learner.workerLost(member.node)
        case .joined:
            break
        }
    }
}

/// The learner and `workers` rollout workers in one process, each on its own node (of an
/// ``InMemoryBus`` with ``InMemoryBulkChannels``, or of ZeroMQ over `inproc://` with
/// ``ZMQBulkChannels``), talking through the actor system and the bulk channels exactly as separate
/// processes do; the learner is a ``LearnerNode``, as in `rein learner`.
public struct DistributedTrainer: Sendable {
    /// How the nodes of a one-process run reach each other.
    public enum Transport: String, Sendable, CaseIterable {
        /// The in-memory bus and bulk channels (tests: no libzmq).
        case inMemory
        /// ZeroMQ `inproc://` sockets: the same transport code as multi-process runs.
        case inproc
    }

    /// The run configuration.
    public let config: RunConfig
    /// The reference policy (also the starting policy).
    public let reference: GPTParameters
    /// Where metrics.jsonl and ledger.json go.
    public let folder: RunFolder
    /// Rollout workers.
    public let workers: Int
    /// How the nodes reach each other.
    public let transport: Transport
    /// Timeouts and heartbeats of every node.
    public let settings: ReinActorSystem.Settings
    /// The checkpoint to continue from (`nil`: start from the reference).
    public let resume: LearnerCheckpoint?
    /// The held-out evaluation (eval-start.json, every `train.eval_every` steps, eval.json).
    public let evaluator: HeldOutEvaluator?
    /// Told of every step's metrics once recorded (the console's progress line).
    public let onStep: (@Sendable (StepMetrics) -> Void)?
    let logger: Logger

    /// A run of `config` from `reference` (or continued from `resume`) with `workers` workers,
    /// writing into `folder` (checkpoints included, as ``LearnerActor`` does; with an
    /// `evaluator`, the held-out evaluations too).
    public init(
        config: RunConfig, reference: GPTParameters, folder: RunFolder, workers: Int,
        transport: Transport = .inMemory, settings: ReinActorSystem.Settings = ReinActorSystem.Settings(),
        resume: LearnerCheckpoint? = nil, evaluator: HeldOutEvaluator? = nil,
        onStep: (@Sendable (StepMetrics) -> Void)? = nil, logger: Logger
    ) {
        self.evaluator = evaluator
        self.onStep = onStep
        self.resume = resume
        self.config = config
        self.reference = reference
        self.folder = folder
        self.workers = workers
        self.transport = transport
        self.settings = settings
        self.logger = logger
    }

    /// Runs `config.train.steps` batches; writes `metrics.jsonl`, `ledger.json`, a checkpoint and
    /// (with an evaluator) `eval-start.json` and `eval.json`.
    /// - Parameter stop: when raised (SIGTERM), the learner drains and the run ends early, with a
    ///   checkpoint to resume from (see ``serveLearner(_:on:folder:logger:stop:evaluator:drainTimeout:)``).
    /// - Throws: ``RuntimeError`` if the ledger does not balance at the end, or what a part threw.
    public func run(stop: StopSignal? = nil) async throws -> DistributedRunResult {
        let learnerSystem: ReinActorSystem
        let workerSystems: [ReinActorSystem]
        let channels: any BulkChannels
        let scheme: String
        var context: ZMQContext?  // kept alive until every system has shut down
        defer { withExtendedLifetime(context) {} }
        switch transport {
        case .inMemory:
            let bus = InMemoryBus()
            learnerSystem = ReinActorSystem(
                bus: bus, name: LearnerActor.name, settings: settings, logger: logger)
            workerSystems = (0..<workers).map {
                ReinActorSystem(bus: bus, name: "worker-\($0)", settings: settings, logger: logger)
            }
            channels = InMemoryBulkChannels(logger: logger)
            scheme = "memory"
        case .inproc:
            let zmq = try ZMQContext()
            context = zmq
            learnerSystem = try ReinActorSystem(
                context: zmq,
                configuration: .init(
                    name: LearnerActor.name, bind: uniqueAddress("learner", scheme: "inproc")),
                settings: settings, logger: logger)
            workerSystems = try (0..<workers).map {
                try ReinActorSystem(
                    context: zmq, configuration: .init(name: "worker-\($0)"), settings: settings,
                    logger: logger)
            }
            channels = ZMQBulkChannels(context: zmq, logger: logger)
            scheme = "inproc"
        }
        let learnerAddress = learnerSystem.endpoint ?? LearnerActor.name
        let systems = workerSystems + [learnerSystem]  // workers leave first
        var node: LearnerNode?
        defer { node?.close() }
        do {
            let options = LearnerNode.Options(
                config: config, reference: reference, folder: folder, resume: resume, evaluator: evaluator,
                onStep: onStep, broadcastBind: uniqueAddress("weights", scheme: scheme),
                samplesBind: uniqueAddress("samples", scheme: scheme))
            let learner = try await LearnerNode.start(
                on: learnerSystem, channels: channels, options: options, logger: logger)
            node = learner
            let result = try await withThrowingTaskGroup(of: DistributedRunResult?.self) { group in
                for system in workerSystems {
                    group.addTask {
                        try await runWorker(
                            on: system, learnerAddress: learnerAddress, config: config,
                            gpt: reference.config, logger: logger, channels: channels)
                        return nil
                    }
                }
                group.addTask { try await learner.serve(stop: stop, drainTimeout: .seconds(10)) }
                var result: DistributedRunResult?
                for try await value in group { result = result ?? value }
                return result
            }
            for system in systems { await system.shutdown() }
            guard let result else { throw RuntimeError("the learner returned no result") }
            return result
        } catch {
            for system in systems { await system.shutdown() }
            throw error
        }
    }
}
