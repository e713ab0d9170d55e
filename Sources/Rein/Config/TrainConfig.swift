import ReinKL

/// The `train:` block: GRPO with a KL term in any of ReinKL's forms, on-policy or stale.
public struct TrainConfig: Codable, Sendable, Hashable {
    /// Optimizer steps (policy versions) to run. The defaults (64 prompts × 8 samples per step, lr
    /// 3e-4 decaying to 3e-5 over 300 steps) gained +17.2, +15.2 and +25.2 greedy held-out points
    /// over the seed-1/2/3 references (about 80 s of CPU time each; 250 steps left seed 2 at
    /// +14.8); 16 prompts per step at lr 1e-4 gained about +10 for the same number of samples, and
    /// larger learning rates on batches that small collapse (the gradient of 16 prompts is too
    /// noisy for them).
    public var steps = 300
    /// Prompts per rollout batch.
    public var promptsPerStep = 64
    /// Samples per prompt (the GRPO group).
    public var groupSize = 8
    /// Sampling temperature (1 samples the policy itself, which is what the KL analysis assumes).
    public var temperature = 1.0
    /// Keep only the k most likely tokens when sampling (0 = all).
    public var topK = 0
    public var lr = 3e-4
    public var minLR = 3e-5
    public var warmupSteps = 10
    public var weightDecay = 0.0
    public var gradClip = 1.0
    /// Passes over each rollout batch.
    public var epochs = 1
    /// Optimizer steps per pass (the batch is split into this many minibatches).
    public var minibatches = 1
    /// PPO clip range [ε_low, ε_high] of the policy-gradient surrogate.
    public var clip = [0.2, 0.28]
    /// How per-token policy-gradient losses are averaged.
    public var aggregation = LossAggregation.tokenMean
    public var advantage = AdvantageConfig()
    /// KL coefficient β (0 = no KL term; the KL metrics are still recorded).
    public var beta = 0.02
    /// The KL implementation (estimator, placement, ratio, clipping…; see ReinKL's KLForms).
    public var kl = KLConfiguration(estimator: .k2)
    /// Largest admitted lag (learner version − token version); older samples are dropped, counted.
    public var maxStaleness = 16
    /// Sample with the weights exactly this many versions old (fewer at the start of a run).
    public var injectLag = 0
    /// Partial rollouts: a distributed worker that receives new weights (broadcast) while sampling
    /// a batch continues with them at the next token (no sequence is restarted; each live row's KV
    /// cache is re-prefilled with the new weights), and every token carries the version it was
    /// sampled with. Off by default: `rein bench runtime --parts pacing` measured no clear win on the
    /// default task (a 40-step smoke: token lag 1.31 against `auto`'s 1.35 at 0.98× `bound`'s
    /// samples/s), whose completions are at most 4 tokens, so few sequences are still sampling when
    /// new weights arrive. Needs `inject_lag` 0.
    public var partialRollouts = false
    /// Write a checkpoint every this many steps (0 = only at the end).
    public var checkpointEvery = 50
    /// Evaluate on held-out problems every this many steps (0 = only at the start and end).
    public var evalEvery = 25
    /// Held-out problems per evaluation: the first `eval_size` of the split (the default 500 are the
    /// ones `rein pretrain` reports; it stops on the last 500).
    public var evalSize = 500
    /// Where the reference checkpoint is read from (written by `rein pretrain`).
    public var reference = "runs/reference.safetensors"
    /// Run the staleness tracker every this many steps (0: never); it writes `tracker.jsonl`.
    public var trackerEvery = 10
    /// Also compare in parameter space (one backward per KL implementation) on every this many
    /// tracker observations (0: never).
    public var trackerParameterEvery = 0

    public init() {}

    enum CodingKeys: String, CodingKey {
        case steps
        case promptsPerStep = "prompts_per_step"
        case groupSize = "group_size"
        case temperature
        case topK = "top_k"
        case lr
        case minLR = "min_lr"
        case warmupSteps = "warmup_steps"
        case weightDecay = "weight_decay"
        case gradClip = "grad_clip"
        case epochs, minibatches, clip, aggregation, advantage, beta, kl
        case maxStaleness = "max_staleness"
        case injectLag = "inject_lag"
        case partialRollouts = "partial_rollouts"
        case checkpointEvery = "checkpoint_every"
        case evalEvery = "eval_every"
        case evalSize = "eval_size"
        case reference
        case trackerEvery = "tracker_every"
        case trackerParameterEvery = "tracker_parameter_every"
    }

    func validate() throws(ConfigError) {
        try positive(steps, "train.steps")
        try positive(promptsPerStep, "train.prompts_per_step")
        guard groupSize >= 2 else {
            throw ConfigError(path: "train.group_size", "must be at least 2, got \(groupSize)")
        }
        guard temperature > 0, temperature <= 10 else {
            throw ConfigError(path: "train.temperature", "must be in (0, 10], got \(temperature)")
        }
        guard topK >= 0 else { throw ConfigError(path: "train.top_k", "must be ≥ 0 (0 = all tokens)") }
        try rate(lr, "train.lr")
        guard minLR >= 0, minLR <= lr else {
            throw ConfigError(path: "train.min_lr", "must be in [0, train.lr]")
        }
        guard warmupSteps >= 0 else { throw ConfigError(path: "train.warmup_steps", "must be ≥ 0") }
        guard weightDecay >= 0, weightDecay < 1 else {
            throw ConfigError(path: "train.weight_decay", "must be in [0, 1)")
        }
        guard gradClip > 0 else { throw ConfigError(path: "train.grad_clip", "must be > 0") }
        try positive(epochs, "train.epochs")
        try positive(minibatches, "train.minibatches")
        guard minibatches <= promptsPerStep * groupSize else {
            throw ConfigError(
                path: "train.minibatches",
                "must not exceed the rollouts per batch (\(promptsPerStep * groupSize))")
        }
        guard clip.count == 2, clip.allSatisfy({ $0 > 0 && $0 < 1 }) else {
            throw ConfigError(path: "train.clip", "must be [eps_low, eps_high] with both in (0, 1)")
        }
        guard beta >= 0, beta.isFinite else { throw ConfigError(path: "train.beta", "must be ≥ 0") }
        do {
            try kl.validate()
        } catch {
            throw ConfigError(path: "train.kl", "\(error)")
        }
        guard maxStaleness >= 0 else { throw ConfigError(path: "train.max_staleness", "must be ≥ 0") }
        guard injectLag >= 0, injectLag <= maxStaleness else {
            throw ConfigError(
                path: "train.inject_lag",
                "must be in 0...train.max_staleness (\(maxStaleness)), got \(injectLag)")
        }
        guard injectLag % (epochs * minibatches) == 0 else {
            throw ConfigError(
                path: "train.inject_lag",
                "must be a multiple of epochs × minibatches (\(epochs * minibatches) versions per batch), got \(injectLag)"
            )
        }
        guard !partialRollouts || injectLag == 0 else {
            throw ConfigError(
                path: "train.partial_rollouts",
                "needs train.inject_lag 0 (lag injection samples with weights exactly that old), got \(injectLag)"
            )
        }
        guard checkpointEvery >= 0 else { throw ConfigError(path: "train.checkpoint_every", "must be ≥ 0") }
        guard trackerEvery >= 0 else { throw ConfigError(path: "train.tracker_every", "must be ≥ 0") }
        guard trackerParameterEvery >= 0 else {
            throw ConfigError(path: "train.tracker_parameter_every", "must be ≥ 0")
        }
        guard evalEvery >= 0 else { throw ConfigError(path: "train.eval_every", "must be ≥ 0") }
        try positive(evalSize, "train.eval_size")
        guard !reference.isEmpty else { throw ConfigError(path: "train.reference", "must not be empty") }
    }
}
