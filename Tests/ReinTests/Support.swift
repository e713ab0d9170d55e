import ReinKL
import ReinModel
import ReinTasks
import Testing

@testable import Rein

/// A tiny model for fast tests (vocab of the task tokenizer).
func tinyConfig(vocab: Int = Tokenizer.standard.vocabSize) -> GPTConfig {
    GPTConfig(vocab: vocab, context: 16, dModel: 16, layers: 1, heads: 2)
}

/// Samples `groups × groupSize` completions of `prompt` and rewards those whose first token is
/// `target`.
func targetRollouts(
    _ sampler: GPTSampler, parameters: GPTParameters, prompt: [Int32], target: Int32, groups: Int,
    groupSize: Int,
    seed: UInt64, version: Int = 0
) throws -> RolloutBatch {
    let prompts = Array(repeating: prompt, count: groups * groupSize)
    let seeds = (0..<prompts.count).map { UInt64($0) &+ seed &* 1000 }
    let batch = try sampler.sample(
        parameters: parameters, prompts: prompts, options: SamplingOptions(maxNewTokens: 2), seeds: seeds)
    return RolloutBatch(
        rollouts: (0..<prompts.count).map { row in
            let generated = Array(batch.generated(row))
            return Rollout(
                id: UInt64(row), group: row / groupSize, prompt: prompt, completion: generated,
                behaviourLogProbs: Array(batch.logProbs[(row * 2)..<(row * 2 + generated.count)]),
                versions: Array(repeating: version, count: generated.count),
                reward: generated.first == target ? 1 : 0,
                outcome: generated.first == target ? .correct : .wrongAnswer)
        }, groupSize: groupSize)
}
