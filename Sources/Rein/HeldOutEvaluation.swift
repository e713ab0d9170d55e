import Foundation
import ReinModel
import ReinTasks

/// The held-out evaluation of `eval-start.json` and `eval.json`: greedy and sampled accuracy
/// of the policy on the first `train.eval_size` held-out problems.
public struct HeldOutEvaluation: Codable, Sendable, Hashable {
    /// Greedy decoding (temperature 0).
    public var greedy: EvaluationResult
    /// Sampling at `train.temperature` (`nil` in folders written by the distributed runtime
    /// before schema version 1).
    public var sampled: EvaluationResult?

    /// An evaluation with these parts.
    public init(greedy: EvaluationResult, sampled: EvaluationResult?) {
        self.greedy = greedy
        self.sampled = sampled
    }
}

extension HeldOutEvaluation {
    /// The held-out evaluation of `parameters` after `step` steps of a run of `config`: greedy,
    /// and sampled at `train.temperature` with seed `seed + step`, on the first `train.eval_size`
    /// held-out problems of `dataset`. Every launch mode evaluates through this, so the numbers
    /// of equal runs are equal.
    public static func of(
        _ parameters: GPTParameters, afterStep step: Int, config: RunConfig, sampler: RolloutSampler,
        dataset: ArithmeticDataset
    ) throws(ModelError) -> HeldOutEvaluation {
        let (greedy, sampled) = try evaluate(
            parameters, afterStep: step, config: config, sampler: sampler, dataset: dataset)
        return HeldOutEvaluation(greedy: greedy, sampled: sampled)
    }

    /// The greedy and sampled results of ``of(_:afterStep:config:sampler:dataset:)``.
    static func evaluate(
        _ parameters: GPTParameters, afterStep step: Int, config: RunConfig, sampler: RolloutSampler,
        dataset: ArithmeticDataset
    ) throws(ModelError) -> (greedy: EvaluationResult, sampled: EvaluationResult) {
        let problems = dataset.heldOut(prefix: config.train.evalSize)
        let greedy = try sampler.evaluate(problems, parameters: parameters)
        let sampled = try sampler.evaluate(
            problems, parameters: parameters, temperature: config.train.temperature,
            seed: config.seed &+ UInt64(step))
        return (greedy, sampled)
    }
}

/// `x` (a fraction) as a percentage with one decimal, "–" for NaN: how every command and report
/// prints an accuracy.
public func percent(_ x: Double) -> String { x.isNaN ? "–" : String(format: "%.1f%%", 100 * x) }
