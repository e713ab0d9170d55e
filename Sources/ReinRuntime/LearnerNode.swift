import Foundation
import Logging
import Rein
import ReinActors
import ReinModel

/// A learner node: the learner registered on its actor system, with its weight broadcast and
/// sample stream — the wiring every launch mode shares (`rein learner`, `rein launch`'s learner,
/// `rein train --workers`).
public struct LearnerNode: Sendable {
    /// What the learner trains, where it writes, and where its bulk channels bind.
    public struct Options: Sendable {
        /// The run configuration.
        public var config: RunConfig
        /// The reference policy (also the starting policy).
        public var reference: GPTParameters
        /// The run folder (metrics, ledger, evaluations, checkpoints).
        public var folder: RunFolder
        /// The checkpoint to continue from (`nil`: start from the reference).
        public var resume: LearnerCheckpoint?
        /// The held-out evaluation (`nil`: none).
        public var evaluator: HeldOutEvaluator?
        /// Told of every step's metrics once recorded (the console's progress line).
        public var onStep: (@Sendable (StepMetrics) -> Void)?
        /// Where the weight broadcast binds (`nil`, or `runtime.weight_delivery: orders`: none; workers
        /// get weights with their orders).
        public var broadcastBind: String?
        /// Where the sample stream binds (`nil`: none; workers deliver by call).
        public var samplesBind: String?

        /// Options of a run of `config` from `reference` into `folder`.
        public init(
            config: RunConfig, reference: GPTParameters, folder: RunFolder, resume: LearnerCheckpoint? = nil,
            evaluator: HeldOutEvaluator? = nil, onStep: (@Sendable (StepMetrics) -> Void)? = nil,
            broadcastBind: String? = nil, samplesBind: String? = nil
        ) {
            self.config = config
            self.reference = reference
            self.folder = folder
            self.resume = resume
            self.evaluator = evaluator
            self.onStep = onStep
            self.broadcastBind = broadcastBind
            self.samplesBind = samplesBind
        }
    }

    /// The node's actor system.
    public let system: ReinActorSystem
    /// The learner, registered under ``LearnerActor/name``.
    public let learner: LearnerActor
    /// The options it was made with.
    public let options: Options
    let broadcaster: (any BulkPublisher)?
    let samples: (any SampleSource)?
    let logger: Logger

    /// Makes the learner on `system` and binds its bulk channels (none without `channels`).
    /// - Throws: ``RuntimeError`` if the checkpoint does not fit; what binding threw.
    public static func start(
        on system: ReinActorSystem, channels: (any BulkChannels)?, options: Options, logger: Logger
    ) async throws -> LearnerNode {
        // With `runtime.weight_delivery: orders` nothing is published: no PUB socket either.
        let subscribes = WeightDelivery(options.config).subscribes
        let broadcaster = try channels.flatMap { channels in
            try options.broadcastBind.flatMap { bind in
                subscribes ? try channels.publisher(node: system.node, bind: bind) : nil
            }
        }
        let learner: LearnerActor
        do {
            learner = try LearnerActor.named(
                on: system, config: options.config, reference: options.reference, broadcaster: broadcaster,
                folder: options.folder, resume: options.resume, evaluator: options.evaluator,
                onStep: options.onStep, logger: logger)
        } catch {
            broadcaster?.close()
            throw error
        }
        var samples: (any SampleSource)?
        if let channels, let bind = options.samplesBind {
            let source = channels.sampleSource(bind: bind)
            source.attach(to: learner)
            let endpoint = await source.endpoint()
            try await learner.acceptSamples(at: endpoint)
            logger.info("samples stream in on \(endpoint)")
            samples = source
        }
        if let endpoint = broadcaster?.endpoint {
            logger.info("weights broadcast on \(endpoint)")
        } else if !subscribes {
            logger.info("weights go in the work orders (runtime.weight_delivery: orders)")
        }
        return LearnerNode(
            system: system, learner: learner, options: options, broadcaster: broadcaster, samples: samples,
            logger: logger)
    }

    /// Serves the learner until the run is over (see
    /// ``serveLearner(_:on:folder:logger:stop:evaluator:drainTimeout:)``).
    public func serve(stop: StopSignal? = nil, drainTimeout: Duration = .seconds(10)) async throws
        -> DistributedRunResult
    {
        try await serveLearner(
            learner, on: system, folder: options.folder, logger: logger, stop: stop,
            evaluator: options.evaluator, drainTimeout: drainTimeout)
    }

    /// Closes the bulk channels (once the actor system has shut down).
    public func close() {
        samples?.close()
        broadcaster?.close()
    }
}

/// What a running learner process says about itself in `RUN_DIR/status.json`, rewritten
/// atomically every few seconds: enough for a readiness probe (Kubernetes, systemd, scripts,
/// `rein status`) to tell a live, listening learner from a dead or finished one without speaking
/// the wire protocol.
public struct LearnerStatus: Codable, Equatable, Sendable {
    /// What the learner is doing.
    public enum State: String, Codable, Sendable {
        /// Bound and serving workers.
        case listening
        /// Trained every step and wrote the run folder.
        case finished
        /// Stopped with an error.
        case failed
    }

    public var state: State
    /// The endpoint workers connect to.
    public var endpoint: String
    public var pid: Int32
    public var host: String
    /// Policy version (optimizer steps taken).
    public var version: Int
    /// Workers currently joined.
    public var workers: Int
    /// Samples trained so far.
    public var trained: Int
    /// Seconds since 1970 of this write.
    public var updated: Double

    /// A status of the learner process `pid` on `host`.
    public init(
        state: State, endpoint: String, pid: Int32, host: String, version: Int, workers: Int, trained: Int,
        updated: Double
    ) {
        self.state = state
        self.endpoint = endpoint
        self.pid = pid
        self.host = host
        self.version = version
        self.workers = workers
        self.trained = trained
        self.updated = updated
    }

    /// The status file's name in the run folder.
    public static let file = RunFile.status.rawValue

    /// Writes the status (atomically) into `folder`.
    public func write(to folder: RunFolder) throws {
        try folder.write(self, as: .status, pretty: false)
    }

    /// Reads the status of the run folder at `path` (`nil`: none yet).
    public static func read(runDir path: String) throws -> LearnerStatus? {
        try RunFolder.existing(path).read(LearnerStatus.self, from: .status)
    }

    /// Rewrites the status of `learner` every `interval` (a timer) until cancelled.
    static func keepWriting(
        learner: LearnerActor, endpoint: String, folder: RunFolder, interval: Duration = .seconds(2)
    ) -> Task<Void, Never> {
        Task {
            while !Task.isCancelled {
                if let status = try? await current(learner: learner, endpoint: endpoint, state: .listening) {
                    try? status.write(to: folder)
                }
                try? await Task.sleep(for: interval)
            }
        }
    }

    /// The status of `learner`, in `state`, now.
    static func current(learner: LearnerActor, endpoint: String, state: State) async throws -> LearnerStatus {
        LearnerStatus(
            state: state, endpoint: endpoint, pid: getpid(), host: ProcessInfo.processInfo.hostName,
            version: try await learner.currentVersion(), workers: try await learner.workerCount(),
            trained: try await learner.currentLedger().trained,
            updated: Date().timeIntervalSince1970)
    }
}
