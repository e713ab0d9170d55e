import ArgumentParser
import Testing

@testable import ReinCLI

@Suite struct ModelBenchTests {
    /// Each figure is the median of its rounds, a ratio too (not the ratio of the medians), and
    /// every round's ratios are kept.
    @Test func roundsReduceToMediansAndKeepEachRoundsRatios() {
        let rounds: [[String: Double]] = [
            [
                "sample_tokens_per_s": 100, "peer_sample_tokens_per_s": 50, "ratio_sample": 2.0,
                "ratio_learner": 1.0,
            ],
            [
                "sample_tokens_per_s": 60, "peer_sample_tokens_per_s": 40, "ratio_sample": 1.5,
                "ratio_learner": 1.4,
            ],
            [
                "sample_tokens_per_s": 90, "peer_sample_tokens_per_s": 30, "ratio_sample": 3.0,
                "ratio_learner": 1.2,
            ],
        ]
        let m = ModelBench.medians(rounds)
        #expect(m["sample_tokens_per_s"] == 90)
        #expect(m["peer_sample_tokens_per_s"] == 40)
        #expect(m["ratio_sample"] == 2.0)
        #expect(m["ratio_learner"] == 1.2)
        #expect(m["rounds"] == 3)
        #expect(m["ratio_sample_round_2"] == 1.5 && m["ratio_learner_round_3"] == 1.2)
        // An even count takes the mean of the middle two; one round is returned as it is.
        #expect(ModelBench.medians(Array(rounds.prefix(2)))["ratio_sample"] == 1.75)
        #expect(ModelBench.medians([rounds[0]]) == rounds[0])
    }

    @Test func roundsMustBePositive() {
        #expect(throws: (any Error).self) { try ModelBench.parse(["--rounds", "0"]) }
    }
}
