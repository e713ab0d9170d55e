import ArgumentParser
import Rein
import Testing

@testable import ReinCLI

@Suite("rein bench runtime: the pacing part")
struct PacingBenchTests {
    /// A trained step with `lag` and `tokens` tokens per sample.
    func step(lag: Int, tokens: Double) -> StepMetrics {
        var metrics = StepMetrics(step: 1, version: lag)
        metrics.lagMean = Double(lag)
        metrics.lagMax = lag
        metrics.responseLength = tokens
        return metrics
    }

    @Test func lagsAreWeightedByTokens() {
        // Three batches at lag 1 of 10 tokens a sample, one at lag 16 of 30: half the tokens each.
        let lags = LagDistribution(
            [
                step(lag: 1, tokens: 10), step(lag: 16, tokens: 30), step(lag: 1, tokens: 10),
                step(lag: 1, tokens: 10),
            ])
        #expect(lags.mean == 8.5)
        #expect(lags.quantile(0.5) == 1 && lags.quantile(0.51) == 16 && lags.quantile(0.99) == 16)
        #expect(lags.largest == 16)
        let empty = LagDistribution([])
        #expect(empty.mean == 0 && empty.largest == 0 && empty.quantile(0.5) == 0)
    }

    @Test func partialRolloutStepsSpreadTheirTokensOverTheirLags() {
        // One batch of 2 samples, 10 tokens: 6 at lag 1, 4 at lag 0 (5 tokens a sample); and a
        // uniform batch at lag 2 of 5 tokens a sample.
        var mixed = step(lag: 1, tokens: 5)
        mixed.lagHistogram = [
            LagCount(lag: 0, sequences: 0, tokens: 4), LagCount(lag: 1, sequences: 2, tokens: 6),
        ]
        let lags = LagDistribution([mixed, step(lag: 2, tokens: 5)])
        #expect(abs(lags.mean - (0 * 2 + 1 * 3 + 2 * 5) / 10.0) < 1e-12)
        #expect(lags.quantile(0.2) == 0 && lags.quantile(0.5) == 1 && lags.quantile(0.51) == 2)
        #expect(lags.largest == 2)
    }

    @Test func thePacingPartParsesAndBadCountsAreRefused() throws {
        let bench = try RuntimeBench.parse([
            "--parts", "pacing", "--pacing-steps", "8", "--pacing-repeats", "2",
        ])
        #expect(bench.pacingSteps == 8 && bench.pacingRepeats == 2 && bench.pacingWorkers == 2)
        #expect(throws: (any Error).self) { try RuntimeBench.parse(["--pacing-repeats", "0"]) }
        #expect(throws: (any Error).self) { try RuntimeBench.parse(["--parts", "pace"]) }
    }
}
