import Foundation
import Logging
import Rein
import ReinKL
import ReinModel
import ReinTasks

/// The tracker's exact per-position measurement on any three checkpoints (`rein bias`): prompts
/// from the task, completions sampled from the behaviour μ, and every KL form's expected gradient
/// under μ compared with ∇KL(π_θ‖π_ref) at each visited prefix, pooled over the positions.
public struct CheckpointBias: Sendable, Codable, Hashable {
    /// One form's bias, pooled over every visited position.
    public struct Form: Sendable, Codable, Hashable {
        /// The `KLImplementation` id.
        public var id: String
        /// ‖g − ∇KL(π_θ‖π_ref)‖ / ‖∇KL(π_θ‖π_ref)‖ over the stacked per-position gradients.
        public var relativeError: Double
        /// cos(g, ∇KL(π_θ‖π_ref)) over the same.
        public var cosine: Double
        /// Relative error to the forward-KL gradient ∇KL(π_ref‖π_θ).
        public var forwardRelativeError: Double

        enum CodingKeys: String, CodingKey {
            case id
            case relativeError = "relative_error"
            case cosine
            case forwardRelativeError = "forward_relative_error"
        }
    }

    /// Sequences sampled.
    public var sequences: Int
    /// Completion positions measured.
    public var positions: Int
    /// Whether μ's weights equal π_θ's (then every naive form is on-policy).
    public var onPolicy: Bool
    /// Every form measured.
    public var forms: [Form]
    /// Mean exact KL(μ‖π_θ) per position.
    public var behaviourKL: Double
    /// Mean exact KL(π_θ‖π_ref) per position.
    public var reverseKL: Double
    /// ESS / N of the token ratios π_θ/μ of the sampled tokens.
    public var tokenESSFraction: Double
    /// ESS / N of the sequence ratios.
    public var sequenceESSFraction: Double
    /// ESS / N of the prefix ratios (nil when not measured).
    public var prefixESSFraction: Double?
    /// The prefix-distribution part of the bias (relative change of the exact per-position
    /// targets reweighted by self-normalised prefix ratios; nil when not measured).
    public var prefixShift: Double?

    enum CodingKeys: String, CodingKey {
        case sequences, positions
        case onPolicy = "on_policy"
        case forms
        case behaviourKL = "behaviour_kl"
        case reverseKL = "reverse_kl"
        case tokenESSFraction = "token_ess_fraction"
        case sequenceESSFraction = "sequence_ess_fraction"
        case prefixESSFraction = "prefix_ess_fraction"
        case prefixShift = "prefix_shift"
    }

    /// What the measurement needs besides the three checkpoints.
    public struct Options: Sendable, Hashable {
        /// The task the prompts come from (its training problems).
        public var task: ArithmeticTaskConfig
        /// Sequences to sample from μ (one per prompt).
        public var samples: Int
        /// Sampling temperature of μ.
        public var temperature: Double
        /// Seed of the prompts and the sampling.
        public var seed: UInt64
        /// Threads of the model.
        public var threads: Int

        /// Options.
        public init(task: ArithmeticTaskConfig, samples: Int, temperature: Double, seed: UInt64, threads: Int)
        {
            self.task = task
            self.samples = samples
            self.temperature = temperature
            self.seed = seed
            self.threads = threads
        }
    }

    /// Samples `options.samples` completions from `behaviour` and measures every form of the
    /// tracker at each visited prefix. The three checkpoints must have the same shape.
    public static func measure(
        policy: GPTParameters, behaviour: GPTParameters, reference: GPTParameters, options: Options,
        logger: Logger
    ) throws -> CheckpointBias {
        guard policy.config == behaviour.config, policy.config == reference.config else {
            throw TrackerError.shape(
                "the checkpoints differ in shape (policy \(policy.config), behaviour \(behaviour.config), reference \(reference.config))"
            )
        }
        guard options.samples >= 1 else { throw TrackerError.shape("--samples must be at least 1") }
        let task = try ArithmeticTask(config: options.task)
        guard task.tokenizer.vocabSize == policy.config.vocab else {
            throw TrackerError.shape(
                "the task's vocabulary has \(task.tokenizer.vocabSize) tokens, the checkpoints \(policy.config.vocab)"
            )
        }
        let dataset = ArithmeticDataset(task: task)
        var random = TaskRandom(seed: options.seed, stream: 0x6269_6173)
        let problems = (0..<options.samples).map { _ in dataset.train[random.next(below: dataset.train.count)]
        }
        let sampler = RolloutSampler(
            task: task, config: behaviour.config, temperature: options.temperature, topK: 0,
            threads: options.threads, reference: reference)
        let batch = try sampler.sample(
            problems, groupSize: 1, parameters: behaviour, version: 0, seed: options.seed, firstID: 0)
        let onPolicy = behaviour.values == policy.values
        let tracker = try StalenessTracker(every: 1, logger: logger)
        let record = try tracker.observe(
            step: 1, batch: batch, version: onPolicy ? 0 : 1, policy: policy, reference: reference,
            behaviour: { _ in behaviour }, temperature: options.temperature, threads: options.threads)
        return CheckpointBias(record: record, onPolicy: onPolicy)
    }

    /// The summary of a one-batch record (all positions in one lag bucket).
    init(record: TrackerRecord, onPolicy: Bool) {
        let buckets = record.buckets
        let n = Double(max(1, buckets.reduce(0) { $0 + $1.positions }))
        func pooled(_ value: (LagBucket) -> Double?) -> Double? {
            let parts = buckets.compactMap { b in value(b).map { (Double(b.positions), $0) } }
            guard !parts.isEmpty else { return nil }
            return parts.reduce(0) { $0 + $1.0 * $1.1 } / Double(parts.reduce(0) { $0 + $1.0 })
        }
        let ids = buckets.first?.implementations.map(\.id) ?? []
        forms = ids.map { id in
            func of(_ key: KeyPath<ImplementationBias, Double>) -> Double {
                pooled { $0.implementations.first { $0.id == id }?[keyPath: key] } ?? .nan
            }
            return Form(
                id: id, relativeError: of(\.relativeError), cosine: of(\.cosine),
                forwardRelativeError: of(\.forwardRelativeError))
        }
        sequences = record.sequences
        positions = Int(n)
        self.onPolicy = onPolicy
        behaviourKL = pooled { $0.behaviourKL } ?? .nan
        reverseKL = pooled { $0.reverseKL } ?? .nan
        tokenESSFraction = pooled { $0.tokenRatio.essFraction } ?? .nan
        sequenceESSFraction = pooled { $0.sequenceRatio.essFraction } ?? .nan
        prefixESSFraction = pooled { $0.prefixRatio?.essFraction }
        prefixShift = pooled { $0.prefixShift }
    }
}
