import ReinKL
import Testing

@testable import ReinTracker

@Suite("Tabular experiment")
struct TabularExperimentTests {
    func run(lags: [Int], trainWith: String? = nil) throws -> [TabularExperiment.LagResult] {
        var options = TabularExperiment.Options()
        options.steps = 5
        options.lags = lags
        options.vocab = 3
        options.length = 2
        if let trainWith { options.trainWith = try KLImplementation.named(trainWith) }
        return try TabularExperiment(options: options).run()
    }

    @Test func sequenceRatioFormsAreExactlyUnbiasedAtEveryLag() throws {
        for result in try run(lags: [0, 1, 3, 8]) {
            for cell in result.cells where ["k1_reward_sgW", "k2_seq_loss_sgW"].contains(cell.id) {
                #expect(cell.meanRelativeError < 1e-9, "\(cell.id) at lag \(cell.lag)")
                #expect(abs(cell.meanCosine - 1) < 1e-9, "\(cell.id) at lag \(cell.lag)")
            }
            if result.lag > 0 {
                let k1 = try #require(result.cells.first { $0.id == "k1_reward" })
                #expect(k1.meanRelativeError > 1e-4, "stale k1 in reward is biased at lag \(result.lag)")
                #expect(result.meanSequenceESS < 1)
            }
        }
    }

    @Test func onPolicyRKLUnbiasedFormsAtLagZero() throws {
        let result = try #require(try run(lags: [0]).first)
        #expect(abs(result.meanSequenceESS - 1) < 1e-12)
        for cell in result.cells where ["k1_reward", "k1_reward_sgW", "k2_seq_loss_sgW"].contains(cell.id) {
            #expect(cell.meanRelativeError < 1e-9, "\(cell.id)")
        }
        let k1 = try #require(result.cells.first { $0.id == "k1_loss" })
        #expect(abs(k1.meanRelativeError - 1) < 1e-9 && k1.meanCosine == 0)
    }

    @Test func finalCellsAreTheKLCoreOnTheFinalPolicy() throws {
        let results = try run(lags: [2], trainWith: "k2_loss")
        let result = try #require(results.first)
        let policy = result.finalPolicy
        let target = policy.exactGradient(of: .rklSeq)
        for cell in result.cells {
            let g = try policy.expectedGradient(of: try KLImplementation.named(cell.id).configuration)
            #expect(abs(cell.finalRelativeError - GradientComparison.relativeError(g, to: target)) < 1e-12)
        }
        // Trained with a stale biased form, the run differs from one trained with the exact gradient.
        let exact = try #require(try run(lags: [2]).first)
        #expect(exact.finalReverseKL != result.finalReverseKL)
    }
}
