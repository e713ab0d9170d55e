import ReinKL
import ReinModel
import ReinTasks
import Testing

@testable import Rein

@Suite("Learner")
struct LearnerTests {
    @Test func aTriviallyLearnableRewardImproves() throws {
        let config = tinyConfig()
        let start = try GPTParameters(config: config, seed: 3)
        var train = TrainConfig()
        train.lr = 1e-2
        train.minLR = 1e-2
        train.warmupSteps = 0
        train.beta = 0
        let learner = try Learner(config: train, policy: start, reference: start, threads: 1)
        let sampler = GPTSampler(config: config, threads: 1)
        let prompt: [Int32] = [1, 5, 13]
        let target: Int32 = 7
        func successRate(_ seed: UInt64) throws -> Double {
            let batch = try targetRollouts(
                sampler, parameters: learner.model.parameters, prompt: prompt, target: target, groups: 32,
                groupSize: 8,
                seed: seed)
            return batch.rollouts.reduce(0) { $0 + $1.reward } / Double(batch.rollouts.count)
        }
        let before = try successRate(999)
        for step in 0..<40 {
            let batch = try targetRollouts(
                sampler, parameters: learner.model.parameters, prompt: prompt, target: target, groups: 8,
                groupSize: 8,
                seed: UInt64(step), version: learner.version)
            _ = try learner.step(batch)
        }
        let after = try successRate(999)
        #expect(learner.version == 40)
        #expect(after > before + 0.3, "success rate \(before) → \(after)")
    }

    /// Rollout workers score π_ref while sampling; the learner then skips its own reference
    /// forward. The numbers must be the learner's own, so training is unchanged.
    @Test func referenceScoredBySamplerEqualsTheLearnersOwnAndTrainsIdentically() throws {
        let task = try ArithmeticTask(config: .default)
        let gpt = tinyConfig(vocab: task.tokenizer.vocabSize)
        let reference = try GPTParameters(config: gpt, seed: 5)
        let policy = try GPTParameters(config: gpt, seed: 6)  // θ ≠ π_ref: a non-zero KL term
        let scoring = RolloutSampler(
            task: task, config: gpt, temperature: 1, topK: 0, threads: 1, reference: reference)
        var random = TaskRandom(seed: 3, stream: 1)
        let problems = (0..<4).map { _ in task.randomProblem(using: &random) }
        let scored = try scoring.sample(
            problems, groupSize: 4, parameters: policy, version: 0, seed: 9, firstID: 0)
        #expect(scored.rollouts.allSatisfy { $0.referenceLogProbs?.count == $0.completion.count })
        #expect(
            scored.rollouts.allSatisfy { $0.referenceRows?.count == $0.completion.count * gpt.vocab })
        var plain = scored
        for i in plain.rollouts.indices {
            plain.rollouts[i].referenceLogProbs = nil
            plain.rollouts[i].referenceRows = nil
        }
        var train = TrainConfig()
        train.beta = 0.1
        let a = try Learner(config: train, policy: policy, reference: reference, threads: 1)
        let b = try Learner(config: train, policy: policy, reference: reference, threads: 1)
        #expect(try a.referenceLogProbs(plain.rollouts) == scored.rollouts.map { $0.referenceLogProbs! })
        let length = Learner.pack(scored.rollouts).length
        #expect(Learner.scoredReference(scored.rollouts, positions: length - 1, vocab: gpt.vocab) != nil)
        #expect(Learner.scoredReference(plain.rollouts, positions: length - 1, vocab: gpt.vocab) == nil)
        let withScores = try a.step(scored)
        let own = try b.step(plain)
        #expect(withScores.klLoss == own.klLoss && withScores.exactKL == own.exactKL)
        #expect(withScores.exactKL > 0 && withScores.klLoss != 0)
        #expect(a.model.parameters.values == b.model.parameters.values)
    }
}
