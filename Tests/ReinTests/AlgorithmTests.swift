import Foundation
import ReinKL
import ReinModel
import ReinTasks
import Testing

@testable import Rein

@Suite("GRPO advantages and the clipped surrogate")
struct AlgorithmTests {
    @Test func groupNormalisedAdvantages() {
        let a = Advantages.grouped(
            [1, 0, 0, 0, 2, 2, 2, 2], groupSize: 4, config: AdvantageConfig(epsilon: 0))
        // Group 1: mean 0.25, std √(3/16).
        let std = (3.0 / 16).squareRoot()
        #expect(abs(a[0] - 0.75 / std) < 1e-12)
        #expect(abs(a[1] + 0.25 / std) < 1e-12)
        // A group whose rewards are all equal carries no signal.
        #expect(a[4...].allSatisfy { $0 == 0 })
    }

    @Test func leaveOneOutUsesTheOtherSamplesAsBaseline() {
        let a = Advantages.grouped(
            [1, 0, 0, 3], groupSize: 4, config: AdvantageConfig(normalize: false, leaveOneOut: true))
        let expected: [Double] = [0, -4.0 / 3, -4.0 / 3, 3 - 1.0 / 3]
        #expect(a == expected)
        let plain = Advantages.grouped([1, 0, 0, 3], groupSize: 4, config: AdvantageConfig(normalize: false))
        #expect(plain == [0, -1, -1, 2])
    }

    @Test func clippedSurrogateDerivativeMatchesFiniteDifferences() {
        let s = ClippedSurrogate(epsilonLow: 0.2, epsilonHigh: 0.28)
        let h = 1e-6
        for (logMu, advantage) in [(-1.0, 1.5), (-1.0, -0.7), (-2.0, 0.3)] {
            for delta in stride(from: -0.5, through: 0.5, by: 0.05) {
                let lp = logMu + delta
                let r = s.token(logPolicy: lp, logBehaviour: logMu, advantage: advantage)
                let fd =
                    (s.token(logPolicy: lp + h, logBehaviour: logMu, advantage: advantage).loss
                        - s.token(logPolicy: lp - h, logBehaviour: logMu, advantage: advantage).loss)
                    / (2 * h)
                let w = Foundation.exp(delta)
                let nearKink = abs(w - 0.8) < 1e-4 || abs(w - 1.28) < 1e-4
                if !nearKink { #expect(abs(fd - r.dLogPolicy) < 1e-6, "w \(w) A \(advantage)") }
                // The clipped branch is taken exactly when the ratio is outside the range in the
                // direction the advantage rewards.
                let outside = advantage > 0 ? w > 1.28 : w < 0.8
                if !nearKink { #expect(r.clipped == outside) }
            }
        }
    }
}
