import Foundation
import PropertyBased
import ReinKL
import Testing

/// §7 items 1–8: on-policy, single action (tabular policies of length 1, sampling = θ).
@Suite("kl-gradients §7: on-policy, single action")
struct OnPolicyPropertyTests {
    /// Single-token objective, Double inputs.
    func perSample(_ id: String, _ a: Double, _ b: Double, _ r: Double) throws -> Double {
        let objective = try KLObjective(KLImplementation.named(id).configuration)
        return try objective.evaluate(
            logPolicy: [a], logBehaviour: [b], logReference: [r], sequenceLengths: [1]
        ).dLogPolicy[0]
    }

    @Test("1. E_π[∇ k2-as-loss] = ∇RKL; per sample ∇(½ℓ²) = ℓ·s = ∇ sg(ℓ)·log π_θ")
    func property1() async {
        await propertyCheck(count: 8, input: seeds, Gen.int(in: 3...6)) { seed, vocab in
            let p = try onPolicy(vocab: vocab, length: 1, seed: seed)
            expectClose(try expected("k2_loss", p), Truth(p).reverseKL, tolerance: fdTolerance, "k2_loss")
            for y in 0..<vocab {
                let a = Softmax.logProbabilities(p.theta[0])[y]
                let r = Softmax.logProbabilities(p.reference[0])[y]
                let k2 = try perSample("k2_loss", a, a, r)
                expectClose(k2, a - r, tolerance: 1e-15, "k2 coefficient = ℓ")
                #expect(k2 == (try perSample("k1_reward", a, a, r)), "same random variable")
            }
        }
    }

    @Test("2. E_π[∇ k1-as-loss] = 0; per-sample gradient is s, independent of π_ref")
    func property2() async {
        await propertyCheck(count: 8, input: seeds, Gen.int(in: 3...6)) { seed, vocab in
            let p = try onPolicy(vocab: vocab, length: 1, seed: seed)
            #expect(maxNorm(try expected("k1_loss", p)) < 1e-15)
            let a = Softmax.logProbabilities(p.theta[0])[0]
            for r in [-5.0, -1, -0.1, a] {
                #expect(try perSample("k1_loss", a, a, r) == 1)
            }
        }
    }

    @Test("3. E_π[∇ k3-as-loss] = ∇FKL; its bias from ∇RKL is −E_π[k3·s] = ∇FKL − ∇RKL")
    func property3() async {
        await propertyCheck(count: 8, input: seeds, Gen.int(in: 3...6)) { seed, vocab in
            let p = try onPolicy(vocab: vocab, length: 1, seed: seed)
            let truth = Truth(p)
            let k3 = try expected("k3_loss", p)
            expectClose(k3, truth.forwardKL, tolerance: fdTolerance, "k3_loss = ∇FKL")
            // −E_π[k3·s] computed as the expected gradient of the surrogate −sg(k3)·log π_θ.
            let minusK3Score = OracleTabular(p).surrogateGradient(theta0: p.theta) { live, frozen, _, ref in
                -oracleK(.k3, frozen[0] - ref[0]) * live[0]
            }
            expectClose(minus(k3, truth.reverseKL), minusK3Score, tolerance: fdTolerance, "bias")
            expectClose(minusK3Score, minus(truth.forwardKL, truth.reverseKL), tolerance: fdTolerance, "gap")
        }
    }

    @Test("4. Per sample ℓ − (1 − δ) = k3(δ) ≥ 0, and 1 − e^{−ℓ} = ℓ − ℓ²/2 + O(ℓ³)")
    func property4() async {
        await propertyCheck(count: 200, input: Gen.double(in: -30...30)) { l in
            let gap = l - KLEstimator.k3.derivative(l)
            let k3 = KLEstimator.k3.value(l)
            #expect(k3 >= 0)
            #expect(abs(gap - k3) <= 1e-12 * max(1, abs(k3)))
        }
        for l in [1e-1, 1e-2, 1e-3, -1e-2, -1e-3] {
            // (1 − e^{−ℓ} − ℓ + ℓ²/2)/ℓ³ → 1/6.
            let remainder = (KLEstimator.k3.derivative(l) - l + l * l / 2) / (l * l * l)
            #expect(abs(remainder - 1.0 / 6) < abs(l))
        }
    }

    @Test("5. Var_π(1 − δ) = Σ_y π_ref(y)²/π_θ(y) − 1")
    func property5() async {
        await propertyCheck(count: 8, input: seeds, Gen.int(in: 3...6)) { seed, vocab in
            let p = try onPolicy(vocab: vocab, length: 1, seed: seed)
            let lp = oracleLogSoftmax(p.theta[0])
            let lr = oracleLogSoftmax(p.reference[0])
            var mean = 0.0
            var second = 0.0
            var chi2 = -1.0
            for y in 0..<vocab {
                let c = KLEstimator.k3.derivative(lp[y] - lr[y])
                mean += exp(lp[y]) * c
                second += exp(lp[y]) * c * c
                chi2 += exp(2 * lr[y] - lp[y])
            }
            expectClose(mean, 0, tolerance: 1e-14, "E_π[1 − δ] = 0")
            expectClose(second - mean * mean, chi2, tolerance: 1e-12, "variance")
        }
    }

    @Test("6. k3-in-reward gives ∇RKL − ∇FKL; k2-in-reward gives ∇E_π[k2] − ∇RKL")
    func property6() async {
        await propertyCheck(count: 8, input: seeds, Gen.int(in: 3...6)) { seed, vocab in
            let p = try onPolicy(vocab: vocab, length: 1, seed: seed)
            let truth = Truth(p)
            expectClose(
                try expected("k3_reward", p), minus(truth.reverseKL, truth.forwardKL), tolerance: fdTolerance,
                "k3_reward")
            expectClose(
                try expected("k2_reward", p), minus(truth.expectedK2, truth.reverseKL),
                tolerance: fdTolerance,
                "k2_reward")
        }
    }

    @Test(
        "7. At π_θ = π_ref: unbiased forms have zero expected gradient; k2-as-loss and k1-in-reward zero per sample; k1-as-loss not"
    )
    func property7() async {
        await propertyCheck(count: 8, input: seeds, Gen.int(in: 3...6)) { seed, vocab in
            let q = try onPolicy(vocab: vocab, length: 1, seed: seed)
            let p = try TabularPolicy(
                vocab: vocab, length: 1, theta: q.theta, behaviour: q.theta, reference: q.theta)
            for id in ["k2_loss", "k1_reward", "k3_loss_w_token", "k2_loss_sgw_token", "k1_loss", "k3_loss"] {
                #expect(maxNorm(try expected(id, p)) < 1e-15, "\(id)")
            }
            let lp = Softmax.logProbabilities(p.theta[0])
            for y in 0..<vocab {
                #expect(try perSample("k2_loss", lp[y], lp[y], lp[y]) == 0)
                #expect(try perSample("k1_reward", lp[y], lp[y], lp[y]) == 0)
                #expect(try perSample("k1_loss", lp[y], lp[y], lp[y]) == 1)
            }
            // The batch API reports the exact-zero checks.
            let result = try KLObjective(KLConfiguration(estimator: .k2)).evaluate(
                logPolicy: lp, logBehaviour: lp, logReference: lp, sequenceLengths: lp.map { _ in 1 })
            #expect(result.diagnostics.isExactlyReference && result.diagnostics.isExactlyOnPolicy)
            #expect(result.dLogPolicy.allSatisfy { $0 == 0 })
        }
    }

    @Test("7b. k3 in reward plus k3 as loss: per-sample coefficient k3 + (1 − δ) = ℓ, RKL-unbiased")
    func property7b() async {
        await propertyCheck(count: 8, input: seeds, Gen.int(in: 3...6)) { seed, vocab in
            let p = try onPolicy(vocab: vocab, length: 1, seed: seed)
            let sum = plus(try expected("k3_reward", p), try expected("k3_loss", p))
            expectClose(sum, Truth(p).reverseKL, tolerance: fdTolerance, "k3 reward + loss")
            let lp = Softmax.logProbabilities(p.theta[0])
            let lr = Softmax.logProbabilities(p.reference[0])
            for y in 0..<vocab {
                let c =
                    try perSample("k3_reward", lp[y], lp[y], lr[y])
                    + perSample("k3_loss", lp[y], lp[y], lr[y])
                expectClose(c, try perSample("k2_loss", lp[y], lp[y], lr[y]), tolerance: 1e-14, "per sample")
            }
        }
    }

    @Test("8. ρ = exp(log π_θ − sg(log π_θ)): ρ·k3 → ∇RKL, ρ·k2 → ∇E_π[k2], sg(ρ)·k2 unchanged")
    func property8() async {
        await propertyCheck(count: 8, input: seeds, Gen.int(in: 3...6)) { seed, vocab in
            let p = try onPolicy(vocab: vocab, length: 1, seed: seed)
            let truth = Truth(p)
            expectClose(try expected("k3_loss_w_token", p), truth.reverseKL, tolerance: fdTolerance, "ρ·k3")
            expectClose(try expected("k2_loss_w_token", p), truth.expectedK2, tolerance: fdTolerance, "ρ·k2")
            expectClose(
                try expected("k2_loss_sgw_token", p), try expected("k2_loss", p), tolerance: exactTolerance,
                "sg(ρ)·k2")
        }
    }
}
