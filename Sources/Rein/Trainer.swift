import Foundation
import Logging
import ReinKL
import ReinModel
import ReinTasks

/// The single-process RL loop: a ``RolloutSampler`` (worker side) and a ``Learner`` exchanging
/// plain ``RolloutBatch`` values, driven by a ``RunStateMachine`` (lag injection, staleness,
/// ledger, step metrics: the decisions the distributed learner takes from the same machine).
///
/// Everything random is a function of (seed, step), so a run resumed from a checkpoint repeats
/// exactly what the uninterrupted run would have done.
public final class Trainer {
    public let config: RunConfig
    public let task: ArithmeticTask
    public let dataset: ArithmeticDataset
    public let learner: Learner
    public let folder: RunFolder
    let sampler: RolloutSampler
    let reference: GPTParameters
    let logger: Logger
    /// Every decision of the run (the same machine the distributed learner drives); this trainer
    /// is its only worker.
    private(set) var machine: RunStateMachine<Int>
    /// The weights of the versions the machine keeps (for lag injection), by version.
    var weights: [Int: GPTParameters]
    /// The origin of the times given to the machine.
    private let clock = ContinuousClock()
    private let origin: ContinuousClock.Instant
    /// Steps (rollout batches) completed.
    public var step: Int { machine.consumed }
    /// Where every sample went.
    public var ledger: SampleLedger { machine.ledger }
    /// Called by ``runStep()`` just before each learner step with the batch, the version that
    /// sampled it and that version's weights (the staleness tracker's hook; nil by default).
    public var beforeLearnerStep: ((RolloutBatch, Int, GPTParameters) throws -> Void)?
    /// Called by ``runStep()`` with each batch dropped for staleness and its lag (the tracker's
    /// selection-skew hook; nil by default).
    public var onDroppedBatch: ((RolloutBatch, Int) -> Void)?

    /// The frozen reference weights π_ref.
    public var referenceParameters: GPTParameters { reference }

    /// The weights of `version` if the lag ring still holds them (the learner's current weights
    /// for the current version).
    public func parameters(ofVersion version: Int) -> GPTParameters? {
        if version == learner.version { return learner.model.parameters }
        return weights[version]
    }

    public init(config: RunConfig, reference: GPTParameters, folder: RunFolder, logger: Logger) throws {
        self.config = config
        self.task = try ArithmeticTask(config: config.task)
        self.dataset = ArithmeticDataset(task: task)
        self.reference = reference
        self.folder = folder
        self.logger = logger
        let gpt = reference.config
        guard gpt.vocab == task.tokenizer.vocabSize else {
            throw TrainerError(
                "the reference has vocab \(gpt.vocab), the task's tokenizer \(task.tokenizer.vocabSize)")
        }
        self.learner = try Learner(
            config: config.train, policy: reference, reference: reference, threads: config.threads)
        // The sampler scores π_ref as rollout workers do, so every launch mode trains on the same
        // numbers.
        self.sampler = RolloutSampler(
            task: task, config: gpt, temperature: config.train.temperature, topK: config.train.topK,
            threads: config.threads, reference: reference)
        self.machine = RunStateMachine(settings: .init(config.train), incarnation: 0)
        self.weights = [0: reference]
        self.origin = clock.now
    }

    /// The problems of step `s`: a pure function of the seed and the step.
    func problems(forStep s: Int) -> [ArithmeticProblem] {
        Trainer.problems(forStep: s, config: config, dataset: dataset)
    }

    /// The problems of step `s` of a run with `config` over `dataset` (shared with the distributed
    /// runtime, so that every launch mode samples the same prompts for the same step).
    public static func problems(forStep s: Int, config: RunConfig, dataset: ArithmeticDataset)
        -> [ArithmeticProblem]
    {
        var random = TaskRandom(seed: config.seed, stream: 0x7261_696E + UInt64(s))
        return (0..<config.train.promptsPerStep).map { _ in
            dataset.train[random.next(below: dataset.train.count)]
        }
    }

    /// The sampling seed of step `s` of a run seeded with `seed`.
    public static func samplingSeed(forStep s: Int, seed: UInt64) -> UInt64 {
        seed &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(s)
    }

    /// The weights the next step will sample with (the machine's decision, without taking it).
    func samplingWeights() -> (version: Int, parameters: GPTParameters) {
        var preview = machine
        guard case .sample(let order) = preview.requestWork(worker: 0, now: .zero) else {
            return (learner.version, learner.model.parameters)
        }
        return (order.version, parameters(ofVersion: order.version) ?? reference)
    }

    private var now: Duration { clock.now - origin }

    /// Runs one rollout batch and one learner step; returns the step's metrics.
    public func runStep() throws -> StepMetrics {
        guard case .sample(let order) = machine.requestWork(worker: 0, now: now) else {
            throw TrainerError("the run is over after \(step) steps")
        }
        guard let behaviour = parameters(ofVersion: order.version) else {
            throw TrainerError("the weights of version \(order.version) are not kept")
        }
        let batch = try sampler.sample(
            problems(forStep: order.index), groupSize: config.train.groupSize, parameters: behaviour,
            version: order.version, seed: Trainer.samplingSeed(forStep: order.index, seed: config.seed),
            firstID: Rollout.firstID(index: order.index, attempt: order.attempt))
        let delivery = machine.deliver(
            worker: 0, index: order.index, attempt: order.attempt, token: order.token,
            incarnation: machine.incarnation,
            batch: batch,
            now: now)
        guard delivery == .accepted else { throw TrainerError("batch \(order.index): \(delivery)") }
        switch machine.nextBatch() {
        case .dropped(let metrics, let dropped):
            onDroppedBatch?(dropped.batch, dropped.lag)
            logger.warning("dropped \(batch.rollouts.count) samples with lag \(dropped.lag) > max_staleness")
            remember()
            return metrics
        case .train(let train):
            try beforeLearnerStep?(train.batch, train.sampledBy, behaviour)
            let learned: LearnerStepMetrics
            do {
                learned = try learner.step(train.batch)
            } catch {
                machine.trainingFailed(train)
                throw error
            }
            let metrics = machine.trained(train, learner: learned, version: learner.version)
            remember()
            return metrics
        case nil:
            throw TrainerError("batch \(order.index) was delivered but is not next to train")
        }
    }

    /// Keeps the current weights and forgets those the machine no longer keeps.
    private func remember() {
        weights[learner.version] = learner.model.parameters
        let kept = Set(machine.keptVersions)
        weights = weights.filter { kept.contains($0.key) }
    }

    /// Greedy and sampled accuracy of the current policy on the first `eval_size` held-out problems.
    public func evaluate() throws -> (greedy: EvaluationResult, sampled: EvaluationResult) {
        try HeldOutEvaluation.evaluate(
            learner.model.parameters, afterStep: step, config: config, sampler: sampler, dataset: dataset)
    }

    // MARK: Checkpoints

    /// The ``CheckpointStore`` kind of the trainer's checkpoints: the run checkpoint every launch
    /// mode writes (``LearnerCheckpoint``).
    public static let checkpointKind = LearnerCheckpoint.kind

    /// Writes `checkpoint/` atomically (keeping the previous one as `checkpoint.prev/`): policy,
    /// optimizer state, lag ring and loop state, each file checksummed (see ``CheckpointStore``) —
    /// a ``LearnerCheckpoint``, as the distributed learner writes.
    public func saveCheckpoint() throws {
        let snapshot = machine.snapshot()
        let ring = try snapshot.ring.map { version in
            guard let parameters = parameters(ofVersion: version) else {
                throw TrainerError("the weights of kept version \(version) are missing")
            }
            return parameters
        }
        let state = LearnerState(
            snapshot, metrics: [],
            reference: ReferenceIdentity(reference, source: config.train.reference))
        try LearnerCheckpoint(
            state: state, policy: learner.model.parameters, optimizer: learner.optimizer.encode(), ring: ring
        ).save(to: folder, metadata: try checkpointMetadata(task: task, version: learner.version))
    }

    /// Restores the state written by ``saveCheckpoint()`` or by the distributed learner (read and
    /// verified by ``CheckpointStore/load(kind:logger:)``).
    /// - Throws: ``CheckpointError`` if it does not decode, was trained against another reference
    ///   or holds another model.
    public func resume(from stored: StoredCheckpoint) throws {
        let checkpoint = try LearnerCheckpoint.decode(stored)
        let state = checkpoint.state
        try state.check(reference: ReferenceIdentity(reference, source: config.train.reference))
        guard checkpoint.policy.config == reference.config,
            checkpoint.ring.allSatisfy({ $0.config == reference.config })
        else {
            throw CheckpointError(
                "\(stored.directory) holds another model than the reference's \(reference.config)")
        }
        learner.model.parameters = checkpoint.policy
        try learner.restore(optimizer: checkpoint.optimizer, version: state.version)
        var weights = Dictionary(zip(state.ring, checkpoint.ring), uniquingKeysWith: { _, last in last })
        weights[state.version] = checkpoint.policy
        self.weights = weights
        machine = RunStateMachine(
            settings: machine.settings, restoring: state.snapshot, incarnation: machine.incarnation)
    }
}

/// One line of `metrics.jsonl`.
public struct StepMetrics: Codable, Sendable {
    public var step: Int
    public var version: Int
    public var reward = 0.0
    /// Fraction of this batch's samples that were exactly correct.
    public var accuracy = 0.0
    public var responseLength = 0.0
    /// Token-weighted mean lag of the batch (``Lag``).
    public var lagMean = 0.0
    /// Its largest token lag (= its largest sequence lag).
    public var lagMax = 0
    /// With partial rollouts, the largest version span within one of its sequences (nil without).
    public var versionSpanMax: Int?
    /// With partial rollouts, tokens and sequences per lag (nil without: every token of the batch
    /// then has the lag ``lagMax``).
    public var lagHistogram: [LagCount]?
    public var dropped = 0
    public var sampleSeconds = 0.0
    public var tokensPerSecond = 0.0
    public var learner: LearnerStepMetrics?
    /// Held-out accuracy (greedy / sampled), on evaluation steps.
    public var evalGreedy: Double?
    public var evalSampled: Double?

    /// Metrics of step `step` (1-based), taken at policy `version`.
    public init(step: Int, version: Int) {
        self.step = step
        self.version = version
    }

    /// The `metrics.jsonl` keys (snake_case; see ``RunCoding``).
    enum CodingKeys: String, CodingKey {
        case step, version, reward, accuracy
        case responseLength = "response_length"
        case lagMean = "lag_mean"
        case lagMax = "lag_max"
        case versionSpanMax = "version_span_max"
        case lagHistogram = "lag_histogram"
        case dropped
        case sampleSeconds = "sample_seconds"
        case tokensPerSecond = "tokens_per_second"
        case learner
        case evalGreedy = "eval_greedy"
        case evalSampled = "eval_sampled"
    }
}

/// A training-loop failure, as one line.
public struct TrainerError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// A duration in seconds, as a `Double`.
public func seconds(_ d: Duration) -> Double {
    Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
}
