import Foundation
import ReinKL
import Testing

/// Numerical safety, clamps, masks, diagnostics and input validation of ``KLObjective``.
@Suite("KLObjective: numerics, clamps, masks and diagnostics")
struct ObjectiveBehaviourTests {
    @Test("No NaN or infinity for |ℓ| and |log w| up to 80, Float inputs, every configuration")
    func extremeLogRatios() throws {
        var a: [Float] = []
        var b: [Float] = []
        var r: [Float] = []
        for l in [-80, -40, 0, 40, 80] as [Float] {
            for lw in [-80, 0, 80] as [Float] {
                let policy: Float = -1 - max(0, -l) - max(0, -lw)
                a.append(policy)
                r.append(policy - l)
                b.append(policy - lw)
            }
        }
        let lengths = [5, 5, 5]
        for c in configurationGrid(bounds: false) + KLImplementation.catalog.map(\.configuration) {
            let result = try KLObjective(c).evaluate(
                logPolicy: a, logBehaviour: b, logReference: r, sequenceLengths: lengths)
            #expect(result.loss.isFinite, "\(c)")
            #expect(result.dLogPolicy.allSatisfy { $0.isFinite }, "\(c)")
            #expect(result.klReward.allSatisfy { $0.isFinite }, "\(c)")
            let d = result.diagnostics
            #expect(
                d.k3Mean.isFinite && d.tokenRatio.mean.isFinite
                    && d.appliedRatio.effectiveSampleSizeFraction.isFinite)
            #expect(abs(d.maxAbsLogRatio - 80) < 1e-3 && abs(d.maxAbsLogWeight - 80) < 1e-3)
        }
        // Single-token extremes are exact in Double.
        let k3 = try KLObjective(KLConfiguration(estimator: .k3)).evaluate(
            logPolicy: [-81.0], logBehaviour: [-81.0], logReference: [-1.0], sequenceLengths: [1])
        expectClose(k3.dLogPolicy[0], -expm1(80), tolerance: 1e-15, "k3 coefficient at ℓ = −80")
        expectClose(k3.loss, exp(80) - 81, tolerance: 1e-15, "k3 value at ℓ = −80")
    }

    @Test("k3 and its coefficient are accurate near ℓ = 0 (expm1)")
    func smallLogRatios() {
        func series(_ l: Double, from first: Int) -> Double {
            var term = 1.0
            var sum = 0.0
            for n in 1...30 {
                term *= -l / Double(n)
                if n >= first { sum += term }
            }
            return sum
        }
        for l in [0.3, 0.099, 0.05, 1e-2, -1e-2, 1e-4, 1e-6, 1e-8, -1e-8, 1e-12, -0.2] {
            // e^{−ℓ} − 1 + ℓ = Σ_{n≥2} (−ℓ)^n/n!; 1 − e^{−ℓ} = −Σ_{n≥1} (−ℓ)^n/n!.
            let value = series(l, from: 2)
            #expect(abs(KLEstimator.k3.value(l) - value) <= 1e-15 * value, "k3(\(l))")
            let derivative = -series(l, from: 1)
            #expect(abs(KLEstimator.k3.derivative(l) - derivative) <= 1e-15 * abs(derivative), "k3′(\(l))")
        }
    }

    @Test(
        "A value clamp zeroes the k2 gradient beyond it; coefficient bounding saturates it; both are counted")
    func clampVersusBound() throws {
        let l = [0.5, 2.0, -3.0, 5.0, -6.0]  // √20 ≈ 4.47: the last two are beyond a clamp of 10
        let a = l.map { -1 - max(0, $0) }
        let r = zip(a, l).map { $0 - $1 }
        let lengths = l.map { _ in 1 }
        let clamp = try KLObjective(KLConfiguration(estimator: .k2, valueClamp: 10)).evaluate(
            logPolicy: a, logBehaviour: a, logReference: r, sequenceLengths: lengths)
        let bound = try KLObjective(KLConfiguration(estimator: .k2, coefficientBound: 20.0.squareRoot()))
            .evaluate(logPolicy: a, logBehaviour: a, logReference: r, sequenceLengths: lengths)
        let n = Double(l.count)
        for i in 0..<3 {
            expectClose(clamp.dLogPolicy[i], l[i] / n, tolerance: 1e-14, "inside the clamp")
            expectClose(bound.dLogPolicy[i], l[i] / n, tolerance: 1e-14, "inside the bound")
        }
        #expect(clamp.dLogPolicy[3] == 0 && clamp.dLogPolicy[4] == 0)
        expectClose(bound.dLogPolicy[3], 20.0.squareRoot() / n, tolerance: 1e-14, "saturated")
        expectClose(bound.dLogPolicy[4], -20.0.squareRoot() / n, tolerance: 1e-14, "saturated")
        #expect(clamp.diagnostics.valueClampFraction == 0.4)
        #expect(bound.diagnostics.coefficientBoundFraction == 0.4)
        #expect(clamp.diagnostics.anyClampFraction > 0 && bound.diagnostics.anyClampFraction > 0)
        // The bound leaves the loss value alone; the clamp caps it.
        expectClose(bound.loss, l.reduce(0) { $0 + $1 * $1 / 2 } / n, tolerance: 1e-14, "bounded value")
        expectClose(clamp.loss, (0.125 + 2 + 4.5 + 10 + 10) / n, tolerance: 1e-14, "clamped value")
        #expect(clamp.klReward[4] == 10 && bound.klReward[4] == 18)
    }

    @Test("Masked tokens leave their sequence; empty sequences are ignored; normalisations use valid counts")
    func masks() throws {
        let a: [Double] = [-1, -2, -0.5, -1.5, -0.7, -3]
        let b: [Double] = [-1.1, -1.9, -0.6, -1.2, -0.9, -2.5]
        let r: [Double] = [-0.8, -2.5, -0.4, -1.1, -0.2, -2]
        let mask = [true, false, true, false, false, true]
        let lengths = [3, 2, 1]  // the middle sequence is fully masked
        for c in configurationGrid(bounds: false) {
            let full = try KLObjective(c).evaluate(
                logPolicy: a, logBehaviour: b, logReference: r, mask: mask, sequenceLengths: lengths)
            let compact = try KLObjective(c).evaluate(
                logPolicy: [a[0], a[2], a[5]], logBehaviour: [b[0], b[2], b[5]],
                logReference: [r[0], r[2], r[5]],
                sequenceLengths: [2, 1])
            #expect(full.loss == compact.loss)
            #expect([full.dLogPolicy[0], full.dLogPolicy[2], full.dLogPolicy[5]] == compact.dLogPolicy)
            #expect(full.dLogPolicy[1] == 0 && full.dLogPolicy[3] == 0 && full.dLogPolicy[4] == 0)
            #expect(full.diagnostics.tokenCount == 3 && full.diagnostics.sequenceCount == 2)
        }
        // Non-finite values on masked tokens are ignored, on valid tokens rejected.
        let objective = try KLObjective(KLConfiguration(estimator: .k2))
        _ = try objective.evaluate(
            logPolicy: [-1, Double.nan], logBehaviour: [-1, -1], logReference: [-1, -1], mask: [true, false],
            sequenceLengths: [2])
        #expect(throws: KLInputError.nonFinite(name: "logReference", index: 1)) {
            try objective.evaluate(
                logPolicy: [-1, -1], logBehaviour: [-1, -1], logReference: [-1, -Double.infinity],
                sequenceLengths: [2])
        }
    }

    @Test("Shape errors are typed and name the problem")
    func inputErrors() throws {
        let objective = try KLObjective(KLConfiguration(estimator: .k1))
        #expect(throws: KLInputError.lengthMismatch(name: "logBehaviour", expected: 2, actual: 1)) {
            try objective.evaluate(
                logPolicy: [-1.0, -1], logBehaviour: [-1], logReference: [-1, -1], sequenceLengths: [2])
        }
        #expect(throws: KLInputError.sequenceLengthsMismatch(sum: 3, count: 2)) {
            try objective.evaluate(
                logPolicy: [-1.0, -1], logBehaviour: [-1, -1], logReference: [-1, -1],
                sequenceLengths: [1, 2])
        }
        #expect(throws: KLInputError.lengthMismatch(name: "mask", expected: 2, actual: 1)) {
            try objective.evaluate(
                logPolicy: [-1.0, -1], logBehaviour: [-1, -1], logReference: [-1, -1], mask: [true],
                sequenceLengths: [2])
        }
        #expect(try KLObjective.sequenceLengths(offsets: [0, 3, 3, 5], count: 9) == [3, 0, 2, 4])
        #expect(throws: KLInputError.badOffsets(index: 1)) {
            try KLObjective.sequenceLengths(offsets: [0, 5, 3], count: 9)
        }
        #expect(
            KLInputError.nonFinite(name: "logPolicy", index: 7).description == "logPolicy[7] is not finite")
    }

    @Test("Diagnostics: ratio statistics, ESS, clip and cap fractions, exact-zero checks")
    func diagnostics() throws {
        let logW: [Double] = [log(0.5), 0, log(1.5), log(3)]
        let a: [Double] = [-1, -1, -1, -1]
        let b = zip(a, logW).map { $0 - $1 }
        let r: [Double] = [-1.5, -1, -0.5, -2]
        let c = KLConfiguration(
            estimator: .k2, ratio: .token, correction: .coefficient, clip: KLClipRange(low: 0.2, high: 0.2),
            ratioCap: 2)
        let result = try KLObjective(c).evaluate(
            logPolicy: a, logBehaviour: b, logReference: r, sequenceLengths: [4])
        let d = result.diagnostics
        let w = [0.5, 1, 1.5, 3.0]
        expectClose(d.tokenRatio.mean, w.reduce(0, +) / 4, tolerance: 1e-15, "mean")
        expectClose(d.tokenRatio.max, 3, tolerance: 1e-15, "max")
        let applied = [0.5, 1, 1.5, 2.0]  // capped at 2
        expectClose(d.appliedRatio.max, 2, tolerance: 1e-15, "capped max")
        let ess = pow(applied.reduce(0, +), 2) / (4 * applied.reduce(0) { $0 + $1 * $1 })
        expectClose(d.appliedRatio.effectiveSampleSizeFraction, ess, tolerance: 1e-15, "ESS/N")
        #expect(d.ratioCapFraction == 0.25)
        // Coefficients ℓ = 0.5, 0, −0.5, 1: token 0 (w = 0.5 < 0.8, c > 0) takes the clipped branch;
        // token 2 (w = 1.5 > 1.2, c < 0) too; token 1 has c = 0 (tie → unclipped); token 3 is capped.
        #expect(d.clipFraction == 0.5)
        #expect(result.dLogPolicy == [0, 0, 0, 0])
        #expect(d.exactOnPolicyTokens == 1 && d.exactReferenceTokens == 1)
        #expect(!d.isExactlyOnPolicy)
    }

    @Test("Configuration: decodes the training config's kl block, validates combinations, round-trips")
    func configurationCoding() throws {
        let text = """
            {"estimator": "k3", "placement": "loss", "ratio": "token", "correction": "coefficient",
             "clip": [0.2, 0.28], "dual_clip": 3, "normalization": "token_mean", "ratio_cap": 10}
            """
        let c = try JSONDecoder().decode(KLConfiguration.self, from: Data(text.utf8))
        #expect(
            c
                == KLConfiguration(
                    estimator: .k3, ratio: .token, normalization: .tokenMean, correction: .coefficient,
                    clip: KLClipRange(low: 0.2, high: 0.28), dualClip: 3, ratioCap: 10))
        let again = try JSONDecoder().decode(KLConfiguration.self, from: JSONEncoder().encode(c))
        #expect(again == c)
        let minimal = try JSONDecoder().decode(KLConfiguration.self, from: Data(#"{"estimator":"k2"}"#.utf8))
        #expect(minimal == KLConfiguration(estimator: .k2))
        #expect(throws: (any Error).self) {
            try JSONDecoder().decode(KLConfiguration.self, from: Data(#"{"estimator":"k4"}"#.utf8))
        }
        let invalid: [KLConfiguration] = [
            KLConfiguration(estimator: .k2, ratio: .token, level: .sequence),
            KLConfiguration(
                estimator: .k1, placement: .reward, ratio: .token, ratioGradient: .differentiable),
            KLConfiguration(estimator: .k1, rewardSource: .behaviour),
            KLConfiguration(estimator: .k2, correction: .coefficient),
            KLConfiguration(estimator: .k2, ratio: .token, clip: KLClipRange(low: 0.2, high: 0.2)),
            KLConfiguration(estimator: .k2, ratio: .token, correction: .coefficient, dualClip: 3),
            KLConfiguration(estimator: .k2, ratio: .token, ratioCap: 0),
            KLConfiguration(estimator: .k2, valueClamp: -1),
            KLConfiguration(estimator: .k2, coefficientBound: .infinity),
        ]
        for c in invalid {
            #expect(throws: KLConfigurationError.self) { try KLObjective(c) }
        }
        #expect(throws: KLConfigurationError.unknownImplementation("k9_loss")) {
            try KLImplementation.named("k9_loss")
        }
        #expect(Set(KLImplementation.catalog.map(\.id)).count == KLImplementation.catalog.count)
        for implementation in KLImplementation.catalog {
            try implementation.configuration.validate()
        }
    }
}
