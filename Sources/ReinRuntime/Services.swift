import Logging
import Rein
import ReinActors
import ReinModel
import ServiceLifecycle
import ZeroMQ

/// The learner process as a swift-service-lifecycle `Service`: serves the learner until the run
/// is over; on graceful shutdown (SIGTERM) it drains — no new batches, the ones handed out are
/// trained, the workers are told the run is over — writes a checkpoint (a later learner on the
/// same run folder resumes from it), `metrics.jsonl` and `ledger.json`, and returns normally.
public struct LearnerService: Service, CustomStringConvertible {
    let learner: LearnerActor
    let system: ReinActorSystem
    let folder: RunFolder
    let logger: Logger
    let drainTimeout: Duration
    let evaluator: HeldOutEvaluator?
    let finished: @Sendable (DistributedRunResult) -> Void

    /// A service for `learner` on `system`; `finished` receives the run's result. With an
    /// `evaluator` it writes `eval-start.json` and `eval.json` (see
    /// ``serveLearner(_:on:folder:logger:stop:evaluator:drainTimeout:poll:)``).
    public init(
        learner: LearnerActor, system: ReinActorSystem, folder: RunFolder, logger: Logger,
        drainTimeout: Duration = .seconds(10), evaluator: HeldOutEvaluator? = nil,
        finished: @escaping @Sendable (DistributedRunResult) -> Void
    ) {
        self.evaluator = evaluator
        self.learner = learner
        self.system = system
        self.folder = folder
        self.logger = logger
        self.drainTimeout = drainTimeout
        self.finished = finished
    }

    public var description: String { "LearnerService(\(system.member))" }

    public func run() async throws {
        let stop = StopSignal()
        let result = try await withGracefulShutdownHandler {
            try await serveLearner(
                learner, on: system, folder: folder, logger: logger, stop: stop, evaluator: evaluator,
                drainTimeout: drainTimeout)
        } onGracefulShutdown: {
            stop.stop()
        }
        await system.shutdown()
        finished(result)
    }
}

/// A rollout-worker process as a `Service`: connects to the learner and works until the run is
/// over; on graceful shutdown it delivers the batch it is sampling, leaves, and returns normally.
public struct WorkerService: Service, CustomStringConvertible {
    let system: ReinActorSystem
    let learnerAddress: String
    let config: RunConfig
    let gpt: GPTConfig
    let logger: Logger
    let context: ZMQContext?
    let reconnectTimeout: Duration
    let beforeDelivery: (@Sendable (Int) async -> Void)?
    let wire: WireOptions

    /// A worker on `system` for the learner at `learnerAddress`; with a `context`, it subscribes
    /// to the learner's weight broadcast. A lost learner is looked for again for up to
    /// `reconnectTimeout` (see ``runWorker(on:learnerAddress:config:gpt:logger:context:connectTimeout:reconnectTimeout:stop:beforeDelivery:wire:)``).
    /// `wire` secures and limits its bulk sockets.
    public init(
        system: ReinActorSystem, learnerAddress: String, config: RunConfig, gpt: GPTConfig,
        context: ZMQContext? = nil, reconnectTimeout: Duration = .seconds(60),
        beforeDelivery: (@Sendable (Int) async -> Void)? = nil, wire: WireOptions = WireOptions(),
        logger: Logger
    ) {
        self.beforeDelivery = beforeDelivery
        self.context = context
        self.reconnectTimeout = reconnectTimeout
        self.wire = wire
        self.system = system
        self.learnerAddress = learnerAddress
        self.config = config
        self.gpt = gpt
        self.logger = logger
    }

    public var description: String { "WorkerService(\(system.member) → \(learnerAddress))" }

    public func run() async throws {
        let stop = StopSignal()
        do {
            try await withGracefulShutdownHandler {
                try await runWorker(
                    on: system, learnerAddress: learnerAddress, config: config, gpt: gpt, logger: logger,
                    context: context, reconnectTimeout: reconnectTimeout, stop: stop,
                    beforeDelivery: beforeDelivery, wire: wire)
            } onGracefulShutdown: {
                stop.stop()
            }
        } catch {
            await system.shutdown()
            throw error
        }
        await system.shutdown()
    }
}
