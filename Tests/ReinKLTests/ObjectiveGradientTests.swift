import Foundation
import ReinKL
import Testing

/// The production API's ∂loss/∂ log π_θ against central finite differences of the oracle's
/// literal surrogate, for every configuration.
@Suite("KLObjective: gradients and values of every configuration")
struct ObjectiveGradientTests {
    func check(_ configurations: [KLConfiguration], seeds: ClosedRange<UInt64>) throws {
        for seed in seeds {
            let batch = RandomBatch(seed: seed, lengths: [3, 1, 4, 2])
            for c in configurations {
                let result = try KLObjective(c).evaluate(
                    logPolicy: batch.logPolicy, logBehaviour: batch.logBehaviour,
                    logReference: batch.logReference,
                    mask: batch.mask, sequenceLengths: batch.lengths)
                let fd = finiteDifference(batch.logPolicy, step: 1e-6) { batch.oracleLoss(c, live: $0) }
                let d = relativeDistance(result.dLogPolicy, fd)
                #expect(d < 1e-7, "seed \(seed) \(c): distance \(d)")
                let value = batch.oracleLoss(c, live: batch.logPolicy)
                #expect(abs(result.loss - value) <= 1e-12 * max(1, abs(value)), "loss of \(c)")
                for i in batch.mask.indices where !batch.mask[i] {
                    #expect(result.dLogPolicy[i] == 0 && result.klReward[i] == 0)
                }
            }
        }
    }

    @Test("Every structural configuration matches finite differences (3 batches)")
    func structural() throws {
        let grid = configurationGrid(bounds: false)
        #expect(grid.count > 150)
        try check(grid, seeds: 1...3)
    }

    @Test(
        "Every configuration with clip, dual clip, cap, coefficient bound and value clamp matches finite differences"
    )
    func bounded() throws {
        let grid = configurationGrid(bounds: true)
        #expect(grid.count > 2000)
        // The full cross product on one batch, a sample of it on two more.
        try check(grid, seeds: 11...11)
        try check(grid.enumerated().filter { $0.offset % 7 == 0 }.map(\.element), seeds: 12...13)
    }

    @Test("Catalog ids: exact enumeration equals the oracle's finite-difference expectation")
    func catalog() throws {
        for (seed, vocab, length) in [(1, 3, 1), (2, 3, 2), (3, 4, 2), (4, 3, 3), (5, 4, 3)] {
            let p = try offPolicy(vocab: vocab, length: length, seed: seed)
            for implementation in KLImplementation.catalog {
                let mine = try p.expectedGradient(of: implementation.configuration)
                let oracle = oracleExpectedGradient(implementation.configuration, p)
                expectClose(mine, oracle, tolerance: fdTolerance, "\(implementation.id) V\(vocab) T\(length)")
            }
        }
    }

    @Test("Production API and enumeration agree on the same sequences")
    func batchMatchesEnumeration() throws {
        let p = try offPolicy(vocab: 3, length: 3, seed: 42)
        var sequences: [TabularSequence] = []
        p.forEachSequence { sequences.append($0) }
        let logPolicy = sequences.flatMap(\.logPolicy)
        let logBehaviour = sequences.flatMap(\.logBehaviour)
        let logReference = sequences.flatMap(\.logReference)
        let probabilities = p.theta.map(Softmax.probabilities)
        for implementation in KLImplementation.catalog {
            let result = try KLObjective(implementation.configuration).evaluate(
                logPolicy: logPolicy, logBehaviour: logBehaviour, logReference: logReference,
                sequenceLengths: sequences.map { _ in 3 })
            // Reweight each sequence by μ(y) (the batch weights them 1/N) and apply the score.
            var g = zeros(like: p.theta)
            for (i, s) in sequences.enumerated() {
                let weight = exp(s.logBehaviour.reduce(0, +)) * Double(sequences.count)
                for t in 0..<3 {
                    let c = weight * result.dLogPolicy[3 * i + t]
                    for v in 0..<3 {
                        g[s.rows[t]][v] += c * ((v == s.tokens[t] ? 1 : 0) - probabilities[s.rows[t]][v])
                    }
                }
            }
            expectClose(
                g, try p.expectedGradient(of: implementation.configuration), tolerance: exactTolerance,
                implementation.id)
        }
    }

    @Test("Float inputs give the Double results to Float precision")
    func floatPath() throws {
        let batch = RandomBatch(seed: 5, lengths: [5, 7, 3])
        let f = { (x: [Double]) in x.map { Float($0) } }
        let d = { (x: [Double]) in x.map { Double(Float($0)) } }
        for implementation in KLImplementation.catalog {
            let objective = try KLObjective(implementation.configuration)
            let single = try objective.evaluate(
                logPolicy: f(batch.logPolicy), logBehaviour: f(batch.logBehaviour),
                logReference: f(batch.logReference), mask: batch.mask, sequenceLengths: batch.lengths)
            let double = try objective.evaluate(
                logPolicy: d(batch.logPolicy), logBehaviour: d(batch.logBehaviour),
                logReference: d(batch.logReference), mask: batch.mask, sequenceLengths: batch.lengths)
            #expect(single.loss == double.loss, "accumulation is in Double")
            expectClose(
                single.dLogPolicy.map(Double.init), double.dLogPolicy, tolerance: 1e-7, implementation.id)
            expectClose(single.klReward.map(Double.init), double.klReward, tolerance: 1e-7, implementation.id)
        }
    }
}
