import Foundation
import Rein
import ReinModel
import ReinTasks

/// The learner side's held-out evaluation: ``Rein/HeldOutEvaluation/of(_:afterStep:config:sampler:dataset:)``
/// (the one the single-process trainer runs) on a thread of its own, so the cooperative pool stays
/// free for heartbeats and workers' calls while it computes.
///
/// ``serveLearner(_:on:folder:logger:stop:evaluator:drainTimeout:)`` writes `eval-start.json`
/// and `eval.json` with it; ``LearnerActor`` records every `train.eval_every` steps in
/// `metrics.jsonl` with it, so every launch mode writes the same evaluation files and numbers.
public struct HeldOutEvaluator: Sendable {
    /// The run configuration (seed, temperature, `eval_size`, threads).
    public let config: RunConfig
    /// The model shape of the weights evaluated.
    public let gpt: GPTConfig
    let task: ArithmeticTask
    let dataset: ArithmeticDataset

    /// An evaluator of `config`'s task for weights of shape `gpt`.
    /// - Throws: ``ReinTasks/ArithmeticTaskConfigError`` if the task config is invalid.
    public init(config: RunConfig, gpt: GPTConfig) throws {
        self.config = config
        self.gpt = gpt
        self.task = try ArithmeticTask(config: config.task)
        self.dataset = ArithmeticDataset(task: task)
    }

    /// Evaluates `parameters` after `step` steps (here, on the calling thread).
    public func evaluate(_ parameters: GPTParameters, afterStep step: Int) throws -> HeldOutEvaluation {
        let sampler = RolloutSampler(
            task: task, config: gpt, temperature: config.train.temperature, topK: config.train.topK,
            threads: config.threads)
        return try HeldOutEvaluation.of(
            parameters, afterStep: step, config: config, sampler: sampler, dataset: dataset)
    }

    /// Evaluates the weights `values` after `step` steps, on a thread of its own.
    public func evaluation(of values: [Float], afterStep step: Int) async throws -> HeldOutEvaluation {
        try await evaluation(of: try GPTParameters(config: gpt, values: values), afterStep: step)
    }

    /// Evaluates `parameters` after `step` steps, on a thread of its own.
    public func evaluation(of parameters: GPTParameters, afterStep step: Int) async throws
        -> HeldOutEvaluation
    {
        try await onThread("rein-eval") { try evaluate(parameters, afterStep: step) }
    }
}

extension HeldOutEvaluation {
    /// "held-out accuracy 12.3% greedy, 10.0% sampled": how every launch mode reports it.
    public var summary: String {
        "held-out accuracy \(percent(greedy.accuracy)) greedy, "
            + "\(percent(sampled?.accuracy ?? .nan)) sampled"
    }
}
