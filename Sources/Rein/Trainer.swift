import Foundation
import Logging
import ReinKL
import ReinModel
import ReinTasks

/// The single-process RL loop: a ``RolloutSampler`` (worker side) and a ``Learner`` exchanging
/// plain ``RolloutBatch`` values, with lag injection from a ring of recent weights.
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
    /// Recent weights by version, oldest first (for lag injection).
    var ring: [(version: Int, parameters: GPTParameters)]
    /// Steps (rollout batches) completed.
    public private(set) var step = 0
    /// Samples produced, trained, dropped (lag above max_staleness).
    public private(set) var ledger = SampleLedger()
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
        return ring.last(where: { $0.version == version })?.parameters
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
        self.ring = [(0, reference)]
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

    /// The weights to sample step `step` with: the newest snapshot at least `inject_lag` versions
    /// older than the learner (the oldest kept one at the start of a run).
    func samplingWeights() -> (version: Int, parameters: GPTParameters) {
        let target = learner.version - config.train.injectLag
        return ring.last(where: { $0.version <= target }) ?? ring[0]
    }

    /// Runs one rollout batch and one learner step; returns the step's metrics.
    public func runStep() throws -> StepMetrics {
        let clock = ContinuousClock()
        let t0 = clock.now
        let (version, weights) = samplingWeights()
        let batch = try sampler.sample(
            problems(forStep: step), groupSize: config.train.groupSize, parameters: weights, version: version,
            seed: Trainer.samplingSeed(forStep: step, seed: config.seed), firstID: UInt64(step) << 20)
        let sampleSeconds = seconds(clock.now - t0)
        ledger.produced += batch.rollouts.count
        let lag = learner.version - version
        var metrics = StepMetrics(step: step + 1, version: learner.version)
        metrics.reward = batch.rollouts.reduce(0) { $0 + $1.reward } / Double(batch.rollouts.count)
        metrics.accuracy =
            Double(batch.rollouts.count(where: { $0.outcome == .correct })) / Double(batch.rollouts.count)
        metrics.responseLength = Double(batch.tokenCount) / Double(batch.rollouts.count)
        metrics.lagMean = Double(lag)
        metrics.lagMax = lag
        metrics.sampleSeconds = sampleSeconds
        if lag > config.train.maxStaleness {
            ledger.dropped += batch.rollouts.count
            onDroppedBatch?(batch, lag)
            metrics.dropped = batch.rollouts.count
            logger.warning("dropped \(batch.rollouts.count) samples with lag \(lag) > max_staleness")
        } else {
            try beforeLearnerStep?(batch, version, weights)
            let learned = try learner.step(batch)
            ledger.trained += batch.rollouts.count
            metrics.learner = learned
            metrics.tokensPerSecond = Double(batch.tokenCount) / (sampleSeconds + learned.seconds)
        }
        step += 1
        remember()
        metrics.version = learner.version
        return metrics
    }

    /// Keeps the current weights in the ring and trims what lag injection can no longer use.
    private func remember() {
        ring.append((learner.version, learner.model.parameters))
        let oldestNeeded = learner.version - config.train.injectLag
        while ring.count > 1, ring[1].version <= oldestNeeded { ring.removeFirst() }
    }

    /// Greedy and sampled accuracy of the current policy on the first `eval_size` held-out problems.
    public func evaluate() throws -> (greedy: EvaluationResult, sampled: EvaluationResult) {
        try HeldOutEvaluation.evaluate(
            learner.model.parameters, afterStep: step, config: config, sampler: sampler, dataset: dataset)
    }

    // MARK: Checkpoints

    /// The ``CheckpointStore`` kind of single-process trainer checkpoints.
    public static let checkpointKind = "single-process trainer"

    /// Writes `checkpoint/` atomically (keeping the previous one as `checkpoint.prev/`): policy,
    /// optimizer state, lag ring and loop state, each file checksummed (see ``CheckpointStore``).
    public func saveCheckpoint() throws {
        let metadata = try checkpointMetadata(task: task, version: learner.version)
        var files: [String: Data] = [
            "policy.safetensors": Data(
                Checkpoint.encode(learner.model.parameters, metadata: metadata).serialized()),
            "optimizer.safetensors": Data(learner.optimizer.encode().serialized()),
        ]
        for (i, entry) in ring.enumerated() {
            let meta = [Checkpoint.policyVersionKey: "\(entry.version)"]
            files["ring-\(i).safetensors"] = Data(
                Checkpoint.encode(entry.parameters, metadata: meta).serialized())
        }
        let state = CheckpointState(
            step: step, version: learner.version, ring: ring.map(\.version), ledger: ledger)
        files["state.json"] = try RunCoding.encoder().encode(state)
        try CheckpointStore(folder: folder).save(files, kind: Self.checkpointKind)
    }

    /// Restores the state written by ``saveCheckpoint()`` (read and verified by
    /// ``CheckpointStore/load(kind:logger:)``).
    public func resume(from stored: StoredCheckpoint) throws {
        let state = try RunCoding.decoder().decode(CheckpointState.self, from: try stored.data("state.json"))
        learner.model.parameters = try Self.parameters(stored, "policy.safetensors")
        try learner.restore(
            optimizer: try SafeTensors.parse(Array(try stored.data("optimizer.safetensors"))),
            version: state.version)
        ring = try state.ring.enumerated().map { i, version in
            (version, try Self.parameters(stored, "ring-\(i).safetensors"))
        }
        step = state.step
        ledger = state.ledger
    }

    /// The weights in file `name` of a stored checkpoint.
    static func parameters(_ stored: StoredCheckpoint, _ name: String) throws -> GPTParameters {
        try Checkpoint.decode(
            try SafeTensors.parse(Array(try stored.data(name)), path: stored.directory + "/" + name),
            path: stored.directory + "/" + name
        ).parameters
    }
}

/// What a checkpoint records besides tensors.
struct CheckpointState: Codable {
    var step: Int
    var version: Int
    var ring: [Int]
    var ledger: SampleLedger
}

/// Sample accounting: every produced sample is trained or dropped (single process: nothing in
/// flight between steps).
public struct SampleLedger: Codable, Sendable, Hashable {
    public var produced = 0
    public var trained = 0
    public var dropped = 0
    public init(produced: Int = 0, trained: Int = 0, dropped: Int = 0) {
        self.produced = produced
        self.trained = trained
        self.dropped = dropped
    }
    public var balances: Bool { produced == trained + dropped }
}

/// One line of `metrics.jsonl`.
public struct StepMetrics: Codable, Sendable {
    public var step: Int
    public var version: Int
    public var reward = 0.0
    /// Fraction of this batch's samples that were exactly correct.
    public var accuracy = 0.0
    public var responseLength = 0.0
    public var lagMean = 0.0
    public var lagMax = 0
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
