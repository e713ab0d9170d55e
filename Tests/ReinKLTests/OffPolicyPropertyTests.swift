import Foundation
import PropertyBased
import ReinKL
import Testing

/// §7 items 9–17: off-policy, samples from μ ≠ π_θ (tabular policies of length 1).
@Suite("kl-gradients §7: off-policy, single action")
struct OffPolicyPropertyTests {
    func perSample(_ c: KLConfiguration, _ a: Double, _ b: Double, _ r: Double) throws -> Double {
        try KLObjective(c).evaluate(
            logPolicy: [a], logBehaviour: [b], logReference: [r], sequenceLengths: [1]
        ).dLogPolicy[0]
    }

    func perSample(_ id: String, _ a: Double, _ b: Double, _ r: Double) throws -> Double {
        try perSample(KLImplementation.named(id).configuration, a, b, r)
    }

    @Test("9. E_μ[∇ sg(w)·k2] = E_μ[∇ w·k3] = E_μ[∇ w·k1] = ∇RKL; per sample ∇(w·k3) = ∇(sg(w)·k2) = w·ℓ·s")
    func property9() async {
        await propertyCheck(count: 8, input: seeds, Gen.int(in: 3...6)) { seed, vocab in
            let p = try offPolicy(vocab: vocab, length: 1, seed: seed)
            let rkl = Truth(p).reverseKL
            for id in ["k2_loss_sgw_token", "k3_loss_w_token", "k1_loss_w_token"] {
                expectClose(try expected(id, p), rkl, tolerance: fdTolerance, id)
            }
            for _ in 0..<5 {
                let a = -Double.random(in: 0.1...4)
                let b = -Double.random(in: 0.1...4)
                let r = -Double.random(in: 0.1...4)
                let wl = exp(a - b) * (a - r)
                expectClose(try perSample("k3_loss_w_token", a, b, r), wl, tolerance: 1e-13, "w·k3")
                expectClose(try perSample("k2_loss_sgw_token", a, b, r), wl, tolerance: 1e-13, "sg(w)·k2")
            }
        }
    }

    @Test("10. E_μ[∇ w·k2] (w differentiable) = ∇E_π[k2] ≠ ∇RKL")
    func property10() async {
        await propertyCheck(count: 8, input: seeds, Gen.int(in: 3...6)) { seed, vocab in
            let p = try offPolicy(vocab: vocab, length: 1, seed: seed)
            let truth = Truth(p)
            let g = try expected("k2_loss_w_token", p)
            expectClose(g, truth.expectedK2, tolerance: fdTolerance, "w·k2")
            #expect(relativeGap(g, truth.reverseKL) > 1e-3)
        }
    }

    @Test("11. Naive k2: E_μ[∇k2] − ∇RKL = E_μ[(1 − w)·ℓ·s], zero when μ = π_θ")
    func property11() async {
        await propertyCheck(count: 8, input: seeds, Gen.int(in: 3...6)) { seed, vocab in
            let p = try offPolicy(vocab: vocab, length: 1, seed: seed)
            let bias = minus(try expected("k2_loss", p), Truth(p).reverseKL)
            let predicted = OracleTabular(p).surrogateGradient(theta0: p.theta) { live, frozen, mu, ref in
                (1 - exp(frozen[0] - mu[0])) * (frozen[0] - ref[0]) * live[0]
            }
            expectClose(bias, predicted, tolerance: fdTolerance, "bias")
            #expect(maxNorm(bias) > 1e-4)
            let on = try onPolicy(vocab: vocab, length: 1, seed: seed)
            expectClose(try expected("k2_loss", on), Truth(on).reverseKL, tolerance: fdTolerance, "on-policy")
        }
    }

    @Test("12. Naive k1: E_μ[∇k1] = −∇KL(μ‖π_θ), nonzero once θ ≠ θ_old")
    func property12() async {
        await propertyCheck(count: 8, input: seeds, Gen.int(in: 3...6)) { seed, vocab in
            let p = try offPolicy(vocab: vocab, length: 1, seed: seed)
            let g = try expected("k1_loss", p)
            expectClose(g, times(-1, Truth(p).behaviourToPolicyKL), tolerance: fdTolerance, "k1")
            #expect(maxNorm(g) > 1e-4)
        }
    }

    @Test("13. Naive k3: E_μ[∇k3] = E_μ[(1 − δ)·s]; coefficient-corrected E_μ[∇(w·sg(1 − δ))] = ∇FKL")
    func property13() async {
        await propertyCheck(count: 8, input: seeds, Gen.int(in: 3...6)) { seed, vocab in
            let p = try offPolicy(vocab: vocab, length: 1, seed: seed)
            let predicted = OracleTabular(p).surrogateGradient(theta0: p.theta) { live, frozen, _, ref in
                (1 - exp(ref[0] - frozen[0])) * live[0]
            }
            expectClose(try expected("k3_loss", p), predicted, tolerance: fdTolerance, "naive k3")
            let truth = Truth(p)
            expectClose(
                try expected("k3_loss_coef_token", p), truth.forwardKL, tolerance: fdTolerance, "coef k3")
            expectClose(
                try expected("k3_loss_sgw_token", p), truth.forwardKL, tolerance: fdTolerance, "sg(w)·k3")
        }
    }

    @Test("14. Coefficient-corrected k1: E_μ[∇(w·1)] = 0")
    func property14() async {
        await propertyCheck(count: 8, input: seeds, Gen.int(in: 3...6)) { seed, vocab in
            let p = try offPolicy(vocab: vocab, length: 1, seed: seed)
            #expect(maxNorm(try expected("k1_loss_coef_token", p)) < 1e-14)
            #expect(maxNorm(try expected("k1_loss_sgw_token", p)) < 1e-14)
            // and the coefficient-corrected k2 is the RKL gradient.
            expectClose(
                try expected("k2_loss_coef_token", p), Truth(p).reverseKL, tolerance: fdTolerance, "k2")
        }
    }

    @Test("15. Stale KL reward: E_μ[w·sg(log π_old − log π_ref)·s] = ∇RKL − ∇KL(π_θ‖π_old)")
    func property15() async {
        await propertyCheck(count: 8, input: seeds, Gen.int(in: 3...6)) { seed, vocab in
            let p = try offPolicy(vocab: vocab, length: 1, seed: seed)
            let truth = Truth(p)
            expectClose(
                try expected("k1_reward_own_stale_sgw_token", p),
                minus(truth.reverseKL, truth.policyToBehaviourKL),
                tolerance: fdTolerance, "stale")
        }
    }

    @Test(
        "16. PPO-clipped KL head: inside [1 − ε, 1 + ε] the per-sample gradient is w·c·s; outside, the one-sided rule"
    )
    func property16() throws {
        let clip = KLClipRange(low: 0.2, high: 0.28)
        for estimator in KLEstimator.allCases {
            let c = KLConfiguration(estimator: estimator, ratio: .token, correction: .coefficient, clip: clip)
            for logW in stride(from: -0.6, through: 0.6, by: 0.05) {
                for l in [-1.3, -0.4, 0.3, 1.1] {
                    let r = -2.0
                    let a = r + l
                    let b = a - logW
                    let w = exp(logW)
                    let coef = estimator.derivative(l)
                    let g = try perSample(c, a, b, r)
                    let inside = w >= 0.8 && w <= 1.28
                    // PPO (pessimistic) rule: the clipped branch is taken — and the gradient is
                    // zero — when the ratio is outside the range on the side that lowers the loss.
                    let zeroed = !inside && ((coef > 0 && w < 0.8) || (coef < 0 && w > 1.28))
                    let want = zeroed ? 0 : w * coef
                    expectClose(g, want, tolerance: 1e-13, "\(estimator) w=\(w) ℓ=\(l)")
                }
            }
        }
        // Dual clip: a positive coefficient and a ratio above the bound carry no gradient.
        let dual = KLConfiguration(
            estimator: .k2, ratio: .token, correction: .coefficient, clip: clip, dualClip: 3)
        #expect(try perSample(dual, -1, -1 - log(4), -2) == 0)
        expectClose(try perSample(dual, -1, -1 - log(2), -2), 2, tolerance: 1e-14, "below the dual bound")
        // Ties take the unclipped branch: at w = 1.28 exactly, the gradient is w·c.
        let tie = try perSample(
            KLConfiguration(estimator: .k2, ratio: .token, correction: .coefficient, clip: clip),
            -1, -1 - log(1.28), -2)
        expectClose(tie, 1.28, tolerance: 1e-12, "tie")
    }

    @Test("17. Staleness sweep μ = θ + σ·noise: naive biases grow from 0, the item-9 forms stay unbiased")
    func property17() throws {
        for seed in [3, 17, 29] {
            var previous = [-1.0, -1.0, -1.0]
            for sigma in [0.0, 0.1, 0.2, 0.4, 0.8] {
                let p = try TabularPolicy.random(
                    vocab: 5, length: 1, seed: UInt64(seed), referenceScale: 0.7, drift: sigma)
                let truth = Truth(p)
                let rkl = truth.reverseKL
                let on = try TabularPolicy.random(
                    vocab: 5, length: 1, seed: UInt64(seed), referenceScale: 0.7)
                let biases = [
                    maxNorm(try expected("k1_loss", p)),
                    maxNorm(minus(try expected("k2_loss", p), rkl)),
                    maxNorm(minus(try expected("k3_loss", p), try expected("k3_loss", on))),
                ]
                for i in 0..<3 {
                    if sigma == 0 {
                        #expect(biases[i] < 1e-7, "σ = 0, form \(i)")
                    } else {
                        #expect(biases[i] > previous[i], "seed \(seed) σ \(sigma) form \(i)")
                    }
                }
                previous = biases
                for id in ["k2_loss_sgw_token", "k3_loss_w_token", "k1_loss_w_token"] {
                    expectClose(try expected(id, p), rkl, tolerance: fdTolerance, "\(id) σ=\(sigma)")
                }
            }
        }
    }
}
