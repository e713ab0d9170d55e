import Logging
import Rein
import ReinActors
import ReinModel
import ServiceLifecycle

/// The learner process as a swift-service-lifecycle `Service`: starts a ``LearnerNode`` on
/// `system`, serves it until the run is over, keeps `status.json` current meanwhile, and on
/// graceful shutdown (SIGTERM) drains — no new batches, the ones handed out are trained, the
/// workers are told the run is over — writes a checkpoint (a later learner on the same run folder
/// resumes from it), `metrics.jsonl` and `ledger.json`, and returns normally.
public struct LearnerService: Service, CustomStringConvertible {
    let system: ReinActorSystem
    let channels: (any BulkChannels)?
    let options: LearnerNode.Options
    let logger: Logger
    let drainTimeout: Duration
    let listening: @Sendable (String) -> Void
    let finished: @Sendable (DistributedRunResult) -> Void

    /// A learner on `system` with bulk `channels`; `listening` is told the endpoint workers connect
    /// to once the learner serves, `finished` the run's result.
    public init(
        system: ReinActorSystem, channels: (any BulkChannels)?, options: LearnerNode.Options,
        drainTimeout: Duration = .seconds(10), logger: Logger,
        listening: @escaping @Sendable (String) -> Void = { _ in },
        finished: @escaping @Sendable (DistributedRunResult) -> Void
    ) {
        self.system = system
        self.channels = channels
        self.options = options
        self.drainTimeout = drainTimeout
        self.logger = logger
        self.listening = listening
        self.finished = finished
    }

    public var description: String { "LearnerService(\(system.member))" }

    public func run() async throws {
        let node: LearnerNode
        do {
            node = try await LearnerNode.start(
                on: system, channels: channels, options: options, logger: logger)
        } catch {
            await system.shutdown()
            throw error
        }
        defer { node.close() }
        let endpoint = system.endpoint ?? system.name
        let folder = options.folder
        let status = LearnerStatus.keepWriting(learner: node.learner, endpoint: endpoint, folder: folder)
        listening(endpoint)
        let stop = StopSignal()
        let outcome: Result<DistributedRunResult, any Error>
        do {
            outcome = .success(
                try await withGracefulShutdownHandler {
                    try await node.serve(stop: stop, drainTimeout: drainTimeout)
                } onGracefulShutdown: {
                    stop.stop()
                })
        } catch {
            outcome = .failure(error)
        }
        // The last status: finished (the probe turns unready) or failed.
        status.cancel()
        await status.value
        let state: LearnerStatus.State = (try? outcome.get()) == nil ? .failed : .finished
        try? await LearnerStatus.current(learner: node.learner, endpoint: endpoint, state: state).write(
            to: folder)
        await system.shutdown()
        finished(try outcome.get())
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
    let channels: (any BulkChannels)?
    let reconnectTimeout: Duration
    let beforeDelivery: (@Sendable (Int) async -> Void)?
    let wire: WireOptions

    /// A worker on `system` for the learner at `learnerAddress`; with `channels`, it subscribes
    /// to the learner's weight broadcast and pushes batches on its sample stream. A lost learner is
    /// looked for again for up to `reconnectTimeout` (see
    /// ``runWorker(on:learnerAddress:config:gpt:logger:channels:connectTimeout:reconnectTimeout:stop:beforeDelivery:wire:)``).
    public init(
        system: ReinActorSystem, learnerAddress: String, config: RunConfig, gpt: GPTConfig,
        channels: (any BulkChannels)? = nil, reconnectTimeout: Duration = .seconds(60),
        beforeDelivery: (@Sendable (Int) async -> Void)? = nil, wire: WireOptions = WireOptions(),
        logger: Logger
    ) {
        self.beforeDelivery = beforeDelivery
        self.channels = channels
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
                    channels: channels, reconnectTimeout: reconnectTimeout, stop: stop,
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

/// `rein train --workers`: a ``DistributedTrainer`` as a `Service`; graceful shutdown drains the
/// learner (see ``DistributedTrainer/run(stop:)``) and the run ends early with a checkpoint.
public struct DistributedTrainerService: Service, CustomStringConvertible {
    let trainer: DistributedTrainer
    let finished: @Sendable (DistributedRunResult) -> Void

    /// Runs `trainer`; `finished` receives the result.
    public init(_ trainer: DistributedTrainer, finished: @escaping @Sendable (DistributedRunResult) -> Void) {
        self.trainer = trainer
        self.finished = finished
    }

    public var description: String { "DistributedTrainer(\(trainer.workers) workers)" }

    public func run() async throws {
        let stop = StopSignal()
        let result = try await withGracefulShutdownHandler {
            try await trainer.run(stop: stop)
        } onGracefulShutdown: {
            stop.stop()
        }
        finished(result)
    }
}
