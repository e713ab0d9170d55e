import Foundation
import ReinKL
import ReinModel
import ReinTasks
import Testing

@testable import Rein

@Suite("Policy-gradient + KL loss through the model")
struct GradientTests {
    /// dLoss/dθ from `lossTerms` + backward, against central finite differences of the loss value,
    /// for KL forms whose value is a differentiable function of θ (no stop-gradient).
    @Test(arguments: [
        KLConfiguration(estimator: .k2),
        KLConfiguration(estimator: .k3, ratio: .token, ratioGradient: .differentiable),
        KLConfiguration(estimator: .k1, ratio: .sequence, ratioGradient: .differentiable),
    ])
    func lossGradientMatchesFiniteDifferences(_ kl: KLConfiguration) throws {
        let config = tinyConfig()
        let policy = try GPTParameters(config: config, seed: 11)
        var refValues = policy.values
        var random = SplitMix64(seed: 5)
        for i in refValues.indices { refValues[i] += Float(Double(random.next() % 1000) / 1000 - 0.5) * 0.2 }
        let reference = try GPTParameters(config: config, values: refValues)
        var train = TrainConfig()
        train.beta = 0.5
        train.kl = kl
        let learner = try Learner(config: train, policy: policy, reference: reference, threads: 2)
        let sampler = GPTSampler(config: config, threads: 1)
        let batch = try targetRollouts(
            sampler, parameters: policy, prompt: [1, 4, 13, 6, 16], target: 5, groups: 2, groupSize: 4,
            seed: 1)
        // Behaviour slightly off the policy, so ratios are not all 1.
        var rows = batch.rollouts
        for i in rows.indices { rows[i].behaviourLogProbs = rows[i].behaviourLogProbs.map { $0 - 0.05 } }
        let advantages = Advantages.grouped([1, 0, 0, 1, 0, 1, 1, 1], groupSize: 4)
        for i in rows.indices { rows[i].reward = [1, 0, 0, 1, 0, 1, 1, 1][i] }
        let refLogProbs = try learner.referenceLogProbs(rows)
        let (tokens, length) = Learner.pack(rows)
        let tokenBatch = try TokenBatch(
            tokens: tokens, batch: rows.count, length: length, lengths: rows.map(Learner.sequenceLength))

        func loss(_ values: [Float]) throws -> Double {
            learner.model.parameters = try GPTParameters(config: config, values: values)
            let out = try learner.model.forward(tokenBatch)
            return try learner.lossTerms(
                out, rows: rows, advantages: advantages, referenceLogProbs: refLogProbs
            ).total
        }
        let out = try learner.model.forward(tokenBatch)
        let terms = try learner.lossTerms(
            out, rows: rows, advantages: advantages, referenceLogProbs: refLogProbs)
        #expect(terms.clipped == 0)
        learner.model.zeroGradients()
        try learner.model.backward(
            dLogProbs: Learner.scatter(terms.dLogPolicy, rows: rows, positions: length - 1))
        let gradients = learner.model.gradients

        // The largest-gradient coordinates of every tensor, checked in float32 with h = 1e-2.
        let base = policy.values
        var checked = 0
        for spec in policy.layout.tensors {
            let index = spec.range.max { abs(gradients[$0]) < abs(gradients[$1]) }!
            guard abs(gradients[index]) > 1e-4 else { continue }
            let h: Float = 1e-2
            var plus = base
            plus[index] += h
            var minus = base
            minus[index] -= h
            let fd = (try loss(plus) - loss(minus)) / Double(2 * h)
            let g = Double(gradients[index])
            #expect(
                abs(fd - g) <= 0.03 * abs(g) + 2e-4, "\(spec.name)[\(index - spec.offset)]: fd \(fd) vs \(g)")
            checked += 1
        }
        #expect(checked >= 8)
    }
}
