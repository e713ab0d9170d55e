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
}
