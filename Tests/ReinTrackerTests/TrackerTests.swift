import Foundation
import Logging
import Rein
import ReinKL
import ReinModel
import ReinTasks
import Testing

@testable import ReinTracker

/// Deterministic logit rows.
func randomRow(_ width: Int, seed: UInt64, scale: Double = 1) -> [Double] {
    var state = seed &* 0x9E37_79B9_7F4A_7C15 &+ 1
    return (0..<width).map { _ in
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return scale * (Double(state >> 11) / Double(1 << 53) * 2 - 1)
    }
}

func logSoftmax(_ z: [Double]) -> [Double] {
    let m = z.max()!
    let s = log(z.reduce(0) { $0 + exp($1 - m) }) + m
    return z.map { $0 - s }
}

/// A position whose behaviour drifts further from θ with the lag.
func position(lag: Int, sequence: Int, token: Int, seed: UInt64, width: Int = 7) throws -> TrackedPosition {
    let theta = randomRow(width, seed: seed)
    let drift = randomRow(width, seed: seed &+ 100)
    let behaviour = zip(theta, drift).map { $0 + 0.3 * Double(lag) * $1 }
    let reference = randomRow(width, seed: seed &+ 200)
    return TrackedPosition(
        lag: lag, sequence: sequence, token: token,
        rows: try KLPosition(thetaLogits: theta, behaviourLogits: behaviour, referenceLogits: reference))
}

let logger = Logger(label: "tracker-test")

/// Forms whose expected gradient equals ∇KL(π_θ‖π_ref) at every lag (token-level corrections;
/// at one position prefix and sequence ratios are the token ratio).
let correctedIDs = [
    "k2_loss_sgw_token", "k3_loss_w_token", "k2_loss_sgw_prefix", "k1_reward_sgW", "k2_seq_loss_sgW",
    "k2_loss_coef_token",
]
/// Forms that are unbiased for the reverse KL on-policy.
let onPolicyUnbiasedIDs = ["k2_loss", "k1_reward", "k2_loss_coefclip_token"] + correctedIDs

@Suite("Staleness tracker")
struct TrackerTests {
    @Test func k2LossBiasMatchesAnIndependentComputation() throws {
        let tracker = try StalenessTracker(
            implementations: [try KLImplementation.named("k2_loss")], logger: logger)
        let p = try position(lag: 3, sequence: 0, token: 2, seed: 5)
        let record = try tracker.analyse(step: 1, version: 3, positions: [p], sequenceLags: [3])
        // Independently: g = Σ_y μ_y ℓ_y (e_y − π), target_v = π_v (ℓ_v − KL).
        let theta = logSoftmax(randomRow(7, seed: 5))
        let drift = randomRow(7, seed: 105)
        let mu = logSoftmax(zip(randomRow(7, seed: 5), drift).map { $0 + 0.9 * $1 })
        let ref = logSoftmax(randomRow(7, seed: 205))
        let pi = theta.map(exp)
        let ell = zip(theta, ref).map { $0 - $1 }
        let kl = zip(pi, ell).reduce(0) { $0 + $1.0 * $1.1 }
        let target = (0..<7).map { pi[$0] * (ell[$0] - kl) }
        var g = [Double](repeating: 0, count: 7)
        for y in 0..<7 {
            for v in 0..<7 { g[v] += exp(mu[y]) * ell[y] * ((v == y ? 1 : 0) - pi[v]) }
        }
        let bias = try #require(record.buckets.first?.implementations.first)
        #expect(abs(bias.relativeError - GradientComparison.relativeError(g, to: target)) < 1e-12)
        #expect(abs(bias.cosine - GradientComparison.cosine(g, target)) < 1e-12)
        #expect(bias.relativeError > 1e-3, "lag 3 must bias naive k2")
        // And KL(μ‖π_θ), the token ratio at the sampled token.
        let behaviourKL = (0..<7).reduce(0.0) { $0 + exp(mu[$1]) * (mu[$1] - theta[$1]) }
        #expect(abs(record.buckets[0].behaviourKL - behaviourKL) < 1e-12)
        #expect(abs(record.buckets[0].tokenRatio.mean - exp(theta[2] - mu[2])) < 1e-12)
    }

    @Test func everyImplementationMatchesKLPosition() throws {
        let tracker = try StalenessTracker(logger: logger)
        let positions = try (0..<4).map {
            try position(lag: 2, sequence: $0 / 2, token: $0, seed: UInt64($0))
        }
        let record = try tracker.analyse(step: 1, version: 2, positions: positions, sequenceLags: [2, 2])
        for (i, implementation) in tracker.implementations.enumerated() {
            var err = 0.0
            var norm = 0.0
            var cos = 0.0
            for p in positions {
                let g = try p.rows.expectedGradient(of: implementation.configuration)
                let t = p.rows.reverseKLGradient
                err += zip(g, t).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }
                norm += t.reduce(0) { $0 + $1 * $1 }
                // Rounding noise (‖g‖ ≤ 1e-12‖t‖, e.g. corrected k1: E_π[∇log π] = 0) has no direction.
                let noise = g.reduce(0) { $0 + $1 * $1 } <= 1e-24 * t.reduce(0) { $0 + $1 * $1 }
                cos += noise ? 0 : GradientComparison.cosine(g, t)
            }
            let bias = record.buckets[0].implementations[i]
            #expect(bias.id == implementation.id)
            #expect(abs(bias.relativeError - (err / norm).squareRoot()) < 1e-12)
            #expect(abs(bias.meanCosine - cos / 4) < 1e-12)
        }
    }

    @Test(arguments: [0, 1, 2, 4, 8])
    func correctedFormsHaveZeroBiasAtEveryLag(lag: Int) throws {
        let tracker = try StalenessTracker(logger: logger)
        let positions = try (0..<6).map {
            try position(lag: lag, sequence: $0, token: $0 % 7, seed: UInt64(40 + $0))
        }
        let record = try tracker.analyse(
            step: 1, version: 8, positions: positions, sequenceLags: Array(repeating: lag, count: 6))
        let bucket = try #require(record.buckets.first)
        for bias in bucket.implementations where correctedIDs.contains(bias.id) {
            #expect(bias.relativeError < 1e-9, "\(bias.id) at lag \(lag)")
            #expect(abs(bias.cosine - 1) < 1e-9, "\(bias.id) at lag \(lag)")
        }
        if lag > 0 {
            for id in ["k2_loss", "k1_reward"] {
                let naive = try #require(bucket.implementations.first { $0.id == id })
                #expect(naive.relativeError > 1e-3, "\(id) at lag \(lag) should be biased")
            }
        }
    }

    @Test func onPolicyUnbiasedFormsHaveZeroBiasAtLagZero() throws {
        let tracker = try StalenessTracker(logger: logger)
        let positions = try (0..<5).map {
            try position(lag: 0, sequence: 0, token: $0, seed: UInt64(70 + $0))
        }
        let record = try tracker.analyse(step: 1, version: 0, positions: positions, sequenceLags: [0])
        let bucket = try #require(record.buckets.first)
        #expect(bucket.behaviourKL.magnitude < 1e-12)
        #expect(bucket.tokenRatio.essFraction == 1)
        for bias in bucket.implementations where onPolicyUnbiasedIDs.contains(bias.id) {
            #expect(bias.relativeError < 1e-9, "\(bias.id)")
        }
        // k3 as loss follows the forward KL on-policy; k1 as loss has zero expected gradient.
        let k3 = try #require(bucket.implementations.first { $0.id == "k3_loss" })
        #expect(k3.forwardRelativeError < 1e-9 && k3.relativeError > 1e-3)
        let k1 = try #require(bucket.implementations.first { $0.id == "k1_loss" })
        #expect(abs(k1.relativeError - 1) < 1e-9)
    }

    @Test func histogramsAndSequenceRatios() throws {
        let tracker = try StalenessTracker(
            implementations: [try KLImplementation.named("k2_loss")], logger: logger)
        // Sequence 0: lags 1, 1; sequence 1: lags 0, 2 (oldest: 2); sequence 2: lag 0.
        let positions = try [
            position(lag: 1, sequence: 0, token: 0, seed: 1),
            position(lag: 1, sequence: 0, token: 1, seed: 2),
            position(lag: 0, sequence: 1, token: 2, seed: 3),
            position(lag: 2, sequence: 1, token: 3, seed: 4),
            position(lag: 0, sequence: 2, token: 4, seed: 5),
        ]
        let record = try tracker.analyse(step: 3, version: 9, positions: positions, sequenceLags: [1, 2, 0])
        #expect(
            record.lagHistogram == [
                LagCount(lag: 0, sequences: 1, tokens: 2), LagCount(lag: 1, sequences: 1, tokens: 2),
                LagCount(lag: 2, sequences: 1, tokens: 1),
            ])
        #expect(record.buckets.map(\.positions) == [2, 2, 1])
        let w = positions.map { exp($0.rows.logPolicy[$0.token] - $0.rows.logBehaviour[$0.token]) }
        #expect(abs(record.buckets[1].sequenceRatio.mean - w[0] * w[1]) < 1e-12)
        #expect(abs(record.buckets[2].sequenceRatio.mean - w[2] * w[3]) < 1e-12)
        // JSON line round trip, snake_case keys.
        let line = try StalenessTracker.jsonLine(record)
        #expect(line.contains("\"lag_histogram\"") && line.contains("\"ess_fraction\""))
        let decoded = try JSONDecoder().decode(TrackerRecord.self, from: Data(line.utf8))
        #expect(decoded == record)
    }

    @Test func prefixRatiosAndPrefixShift() throws {
        let tracker = try StalenessTracker(
            implementations: [try KLImplementation.named("k2_loss_sgw_token")], logger: logger)
        // On-policy: every prefix ratio is 1, nothing to reweight.
        let onPolicy = try (0..<3).map { try position(lag: 0, sequence: 0, token: $0, seed: UInt64(40 + $0)) }
        let zero = try #require(
            try tracker.analyse(step: 1, version: 0, positions: onPolicy, sequenceLags: [0]).buckets.first)
        #expect(zero.prefixShift == 0)
        #expect(zero.prefixRatio?.max == 1 && zero.prefixRatio?.min == 1)
        // One stale sequence of two tokens: ρ = (1, w₀). The token-corrected form has no
        // per-position bias, so the prefix shift is all that remains.
        let stale = try [
            position(lag: 2, sequence: 0, token: 1, seed: 11), position(lag: 2, sequence: 0, token: 2, seed: 12),
        ]
        let bucket = try #require(
            try tracker.analyse(step: 1, version: 2, positions: stale, sequenceLags: [2]).buckets.first)
        let w0 = exp(stale[0].rows.logPolicy[1] - stale[0].rows.logBehaviour[1])
        #expect(abs(w0 - 1) > 1e-3, "the fixture must be off-policy")
        #expect(abs((bucket.prefixRatio?.mean ?? 0) - (1 + w0) / 2) < 1e-12)
        let a = stale[0].rows.reverseKLGradient.reduce(0) { $0 + $1 * $1 }
        let b = stale[1].rows.reverseKLGradient.reduce(0) { $0 + $1 * $1 }
        let r0 = 2 / (1 + w0)
        let r1 = 2 * w0 / (1 + w0)
        let expected = (((1 - r0) * (1 - r0) * a + (1 - r1) * (1 - r1) * b) / (r0 * r0 * a + r1 * r1 * b)).squareRoot()
        #expect(abs(try #require(bucket.prefixShift) - expected) < 1e-12 * max(1, expected))
        #expect(try #require(bucket.prefixShift) > 0)
        #expect(try #require(bucket.implementations.first).relativeError < 1e-9)
        // Older records without the fields still decode.
        let line = try StalenessTracker.jsonLine(
            try tracker.analyse(step: 1, version: 2, positions: stale, sequenceLags: [2]))
        #expect(line.contains("\"prefix_shift\""))
        let old = line.replacingOccurrences(of: "\"prefix_shift\"", with: "\"unused_key\"")
        let decoded = try JSONDecoder().decode(TrackerRecord.self, from: Data(old.utf8))
        #expect(decoded.buckets.first?.prefixShift == nil)
    }

    @Test func ratioSummaryQuantilesAndESS() {
        let s = RatioSummary([1, 2, 3, 4])
        #expect(s.mean == 2.5 && s.min == 1 && s.max == 4 && s.p50 == 2 && s.p90 == 4)
        #expect(abs(s.essFraction - 100.0 / (4 * 30)) < 1e-15)
        #expect(RatioSummary([]).essFraction == 1)
    }

    @Test func rejectsBadInput() throws {
        #expect(throws: TrackerError.self) { try StalenessTracker(every: 0, logger: logger) }
        let tracker = try StalenessTracker(logger: logger)
        let p = try position(lag: 0, sequence: 3, token: 0, seed: 1)
        #expect(throws: TrackerError.self) {
            try tracker.analyse(step: 1, version: 0, positions: [p], sequenceLags: [0])
        }
        #expect(tracker.shouldObserve(step: 1) && !tracker.shouldObserve(step: 2))
        #expect(tracker.shouldObserve(step: 11))
    }
}

@Suite("Selection skew")
struct SelectionTests {
    func batch(lengths: [Int], rewards: [Double]) -> RolloutBatch {
        RolloutBatch(
            rollouts: zip(lengths, rewards).enumerated().map { i, lr in
                Rollout(
                    id: UInt64(i), group: 0, prompt: [1], completion: Array(repeating: 2, count: lr.0),
                    behaviourLogProbs: Array(repeating: 0, count: lr.0),
                    versions: Array(repeating: 0, count: lr.0),
                    reward: lr.1, outcome: lr.1 > 0 ? .correct : .wrongAnswer)
            }, groupSize: lengths.count)
    }

    @Test func summarisesTrainedAndDroppedSides() {
        var selection = SelectionAccumulator()
        selection.addTrained(batch(lengths: [2, 4, 6, 8], rewards: [1, 0, 1, 1]))
        selection.addDropped(batch(lengths: [10, 10], rewards: [0, 0]))
        let s = selection.summary
        #expect(s.trained.count == 4 && s.trained.lengthMean == 5 && s.trained.lengthP50 == 4)
        #expect(
            s.trained.lengthP90 == 8 && s.trained.rewardMean == 0.75
                && s.trained.rewardPositiveFraction == 0.75)
        #expect(s.dropped.count == 2 && s.dropped.lengthMean == 10 && s.dropped.rewardMean == 0)
    }
}
