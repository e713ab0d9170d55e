import ReinKL
import ReinModel
import ReinTasks

/// Everything a `rein pretrain` / `rein train` run needs, as read from YAML (snake_case keys).
/// Every key has a default; `validate()` names the key path of the first bad value.
public struct RunConfig: ValidatedConfig, Sendable, Hashable {
    /// Seed of everything random in the run (initialisation, sampling, data order).
    public var seed: UInt64 = 1
    /// Where `rein train` writes `config.yaml`, `metrics.jsonl`, checkpoints and the evaluation.
    public var runDir = "runs/default"
    /// Cores to use (sampler shards, model shards).
    public var threads = 2
    /// Matrix-product library: `auto` (oneDNN on x86-64, else OpenBLAS), `onednn` or `openblas`;
    /// the `REIN_GEMM` environment variable overrides it.
    public var gemm = GemmChoice.auto
    /// The policy's shape (vocab comes from the task's tokenizer).
    public var model = ModelSection()
    /// The verifiable task.
    public var task = ArithmeticTaskConfig.default
    /// Supervised pretraining of the reference policy.
    public var pretrain = PretrainConfig()
    /// RL fine-tuning.
    public var train = TrainConfig()
    /// Endpoints and liveness of a multi-process run (`rein learner`, `rein worker`).
    public var runtime = RuntimeConfig()
    /// CURVE key files of a `rein learner` / `rein worker` node (paths only; off by default).
    public var security = SecurityConfig()

    public init() {}

    enum CodingKeys: String, CodingKey {
        case seed
        case runDir = "run_dir"
        case threads, gemm, model, task, pretrain, train, runtime, security
    }

    public func validate() throws(ConfigError) {
        guard !runDir.isEmpty else { throw ConfigError(path: "run_dir", "must not be empty") }
        guard (1...64).contains(threads) else {
            throw ConfigError(path: "threads", "must be in 1...64, got \(threads)")
        }
        do {
            try task.validate()
        } catch {
            throw ConfigError(path: "task", "\(error)")
        }
        try model.validate()
        try pretrain.validate()
        try train.validate()
        try runtime.validate()
        try security.validate()
        if runtime.weightDelivery == .orders, train.partialRollouts {
            throw ConfigError(
                path: "runtime.weight_delivery",
                "orders cannot serve train.partial_rollouts (mid-sequence swaps need the broadcast): use broadcast or auto"
            )
        }
        let task = try? ArithmeticTask(config: task)
        if let task, task.maxSequenceLength > model.context {
            throw ConfigError(
                path: "model.context",
                "\(model.context) is shorter than the task's longest sequence (\(task.maxSequenceLength) tokens)"
            )
        }
    }

    /// Throws unless the pretraining evaluation and validation problems both fit in the held-out
    /// split, apart (checked when pretraining starts: runs that only fine-tune need not satisfy it).
    public func validatePretrainSplits() throws(ConfigError) {
        guard pretrain.evalSize + pretrain.validationSize <= task.heldOutSize else {
            throw ConfigError(
                path: "pretrain.validation_size",
                "pretrain.eval_size + pretrain.validation_size (\(pretrain.evalSize) + \(pretrain.validationSize)) must not exceed task.held_out_size (\(task.heldOutSize)): the validation problems must not be evaluation problems"
            )
        }
    }

    /// The model shape for this run's tokenizer.
    public func gptConfig(vocab: Int) -> GPTConfig {
        GPTConfig(
            vocab: vocab, context: model.context, dModel: model.dModel, layers: model.layers,
            heads: model.heads)
    }
}

/// The `model:` block.
public struct ModelSection: Codable, Sendable, Hashable {
    public var context = 64
    /// 64 (about 0.2M parameters): on the default task it left the accuracy plateau sooner than
    /// 128 did (seed 1: 60% validation accuracy after ~1,050 steps, against 24% after 1,000 for
    /// 128) at about a third of the cost per step.
    public var dModel = 64
    public var layers = 4
    public var heads = 4

    public init() {}

    enum CodingKeys: String, CodingKey {
        case context
        case dModel = "d_model"
        case layers, heads
    }

    func validate() throws(ConfigError) {
        guard (2...1024).contains(context) else {
            throw ConfigError(path: "model.context", "must be in 2...1024, got \(context)")
        }
        guard (1...64).contains(layers) else {
            throw ConfigError(path: "model.layers", "must be in 1...64, got \(layers)")
        }
        guard heads >= 1, dModel >= heads, dModel % heads == 0 else {
            throw ConfigError(
                path: "model.d_model", "must be a positive multiple of model.heads (\(heads)), got \(dModel)")
        }
    }
}

/// The `pretrain:` block: supervised training of π_ref on task examples.
public struct PretrainConfig: Codable, Sendable, Hashable {
    /// Optimizer steps the cosine schedule spans; with `target_accuracy` the run usually stops
    /// well before.
    public var steps = 3000
    /// With `target_accuracy`, the most steps taken past `steps` (at `min_lr`) while validation
    /// accuracy is still short of it: the task is learnt in a sudden jump whose timing depends on
    /// the seed and on the float rounding of the machine's kernels, and a run whose jump comes
    /// late would otherwise end with a weak reference. Runs that reach the target within `steps`
    /// are unchanged.
    public var extraSteps = 2000
    public var batchSize = 64
    public var lr = 3e-3
    public var minLR = 3e-4
    public var warmupSteps = 50
    public var weightDecay = 0.01
    /// AdamW's second-moment decay.
    public var beta2 = 0.999
    public var gradClip = 1.0
    /// Measure validation accuracy every this many steps (0 = only at the end).
    public var evalEvery = 20
    /// Held-out problems per evaluation (the first ones of the held-out split; what
    /// `rein pretrain` reports).
    public var evalSize = 500
    /// Stop as soon as greedy accuracy on the validation problems reaches this (0 = run all
    /// `steps`); checked every `eval_every` steps.
    public var targetAccuracy = 0.67
    /// Validation problems: the last ones of the held-out split, disjoint from the `eval_size`
    /// first ones as long as both fit in `task.held_out_size`.
    public var validationSize = 500
    /// Where the reference checkpoint is written (and where `rein train` reads it).
    public var output = "runs/reference.safetensors"

    public init() {}

    enum CodingKeys: String, CodingKey {
        case steps
        case extraSteps = "extra_steps"
        case batchSize = "batch_size"
        case lr
        case minLR = "min_lr"
        case warmupSteps = "warmup_steps"
        case weightDecay = "weight_decay"
        case beta2
        case gradClip = "grad_clip"
        case evalEvery = "eval_every"
        case evalSize = "eval_size"
        case targetAccuracy = "target_accuracy"
        case validationSize = "validation_size"
        case output
    }

    func validate() throws(ConfigError) {
        try positive(steps, "pretrain.steps")
        guard extraSteps >= 0 else { throw ConfigError(path: "pretrain.extra_steps", "must be ≥ 0") }
        try positive(batchSize, "pretrain.batch_size")
        try positive(evalSize, "pretrain.eval_size")
        try positive(validationSize, "pretrain.validation_size")
        guard targetAccuracy >= 0, targetAccuracy <= 1 else {
            throw ConfigError(
                path: "pretrain.target_accuracy", "must be in [0, 1] (0 = off), got \(targetAccuracy)")
        }
        try rate(lr, "pretrain.lr")
        try rate(minLR, "pretrain.min_lr")
        guard warmupSteps >= 0 else { throw ConfigError(path: "pretrain.warmup_steps", "must be ≥ 0") }
        guard evalEvery >= 0 else { throw ConfigError(path: "pretrain.eval_every", "must be ≥ 0") }
        guard weightDecay >= 0, weightDecay < 1 else {
            throw ConfigError(path: "pretrain.weight_decay", "must be in [0, 1)")
        }
        guard beta2 > 0, beta2 < 1 else { throw ConfigError(path: "pretrain.beta2", "must be in (0, 1)") }
        guard gradClip > 0 else { throw ConfigError(path: "pretrain.grad_clip", "must be > 0") }
        guard !output.isEmpty else { throw ConfigError(path: "pretrain.output", "must not be empty") }
    }
}

func positive(_ value: Int, _ path: String) throws(ConfigError) {
    guard value >= 1 else { throw ConfigError(path: path, "must be at least 1, got \(value)") }
}

func rate(_ value: Double, _ path: String) throws(ConfigError) {
    guard value > 0, value < 1 else { throw ConfigError(path: path, "must be in (0, 1), got \(value)") }
}
