import Foundation
import PropertyBased
import ReinKL
import Testing

/// §7 items 18–21: whole sequences of a tabular autoregressive policy (vocab 3–4, length 1–3).
@Suite("kl-gradients §7: sequences")
struct SequencePropertyTests {
    @Test("18. E[Σ_t sg(G_t)·s_t] = E[Σ_t sg(Σ_u ℓ_u)·s_t] = E[∇½(Σ_t ℓ_t)²] = ∇RKL_seq")
    func property18() async {
        await propertyCheck(count: 6, input: seeds, vocabularies, lengths) { seed, vocab, length in
            let p = try onPolicy(vocab: vocab, length: length, seed: seed)
            let rkl = Truth(p).reverseKL
            for id in ["k1_reward", "k1_reward_sum", "k2_seq_loss"] {
                expectClose(try expected(id, p), rkl, tolerance: fdTolerance, id)
            }
            expectClose(p.exactGradient(of: .rklSeq), rkl, tolerance: fdTolerance, "rkl_seq")
        }
    }

    @Test(
        "19. E[∇Σ_t ½ℓ_t²] = E[Σ_t sg(ℓ_t)·s_t] misses −E[Σ_t (Σ_{u>t} ℓ_u)·s_t]; zero gap when T = 1 or future KL is token-independent"
    )
    func property19() async throws {
        await propertyCheck(count: 6, input: seeds, vocabularies, lengths) { seed, vocab, length in
            let p = try onPolicy(vocab: vocab, length: length, seed: seed)
            let k2 = try expected("k2_loss", p)
            expectClose(k2, try expected("k1_reward_own", p), tolerance: exactTolerance, "same gradient")
            expectClose(k2, Truth(p).tokenReverseKL, tolerance: fdTolerance, "per-token RKL")
            let missing = OracleTabular(p).surrogateGradient(theta0: p.theta) { live, frozen, _, ref in
                var s = 0.0
                for t in live.indices {
                    var future = 0.0
                    for u in (t + 1)..<live.count { future += frozen[u] - ref[u] }
                    s += future * live[t]
                }
                return -s
            }
            let gap = minus(k2, Truth(p).reverseKL)
            expectClose(gap, missing, tolerance: fdTolerance, "gap")
            if length == 1 {
                #expect(maxNorm(gap) < 1e-9)
            } else {
                #expect(maxNorm(gap) > 1e-5, "generic policy, T = \(length)")
            }
        }
        // A policy whose rows at each depth do not depend on the prefix: the expected KL-to-go
        // after t does not depend on y_t, and the gap vanishes.
        for seed in 0..<4 {
            let base = try TabularPolicy.random(vocab: 3, length: 3, seed: UInt64(seed), referenceScale: 0.7)
            let depthOf = { (row: Int) in row == 0 ? 0 : (row <= 3 ? 1 : 2) }
            let firstOfDepth = [0, 1, 4]
            let theta = (0..<13).map { base.theta[firstOfDepth[depthOf($0)]] }
            let reference = (0..<13).map { base.reference[firstOfDepth[depthOf($0)]] }
            let p = try TabularPolicy(
                vocab: 3, length: 3, theta: theta, behaviour: theta, reference: reference)
            let truth = Truth(p)
            expectClose(
                try expected("k2_loss", p), truth.reverseKL, tolerance: fdTolerance, "baseline-like future")
            #expect(maxNorm(truth.reverseKL) > 1e-3)
        }
    }

    @Test(
        "20. E[∇Σ_t k3(δ_t)] = Σ_t E_{s_t}[∇KL(π_ref‖π_θ)(s_t)] with prefix weights frozen; E[∇k3(Π_t δ_t)] = ∇FKL_seq"
    )
    func property20() async {
        await propertyCheck(count: 6, input: seeds, vocabularies, lengths) { seed, vocab, length in
            let p = try onPolicy(vocab: vocab, length: length, seed: seed)
            let truth = Truth(p)
            let token = try expected("k3_loss", p)
            expectClose(token, truth.tokenForwardKL, tolerance: fdTolerance, "per-token k3")
            expectClose(
                p.exactGradient(of: .fklToken), truth.tokenForwardKL, tolerance: fdTolerance, "fkl_token")
            expectClose(
                try expected("k3_seq_loss", p), truth.forwardKL, tolerance: fdTolerance, "sequence k3")
            expectClose(p.exactGradient(of: .fklSeq), truth.forwardKL, tolerance: fdTolerance, "fkl_seq")
            if length > 1 {
                #expect(relativeGap(token, truth.forwardKL) > 1e-5)
                #expect(relativeGap(token, truth.reverseKL) > 1e-5)
            }
        }
    }

    @Test(
        "21. Off-policy: prefix ratios reproduce the on-policy per-token k2 gradient, token ratios do not, W·sg(Σℓ) gives ∇RKL_seq"
    )
    func property21() async {
        await propertyCheck(count: 6, input: seeds, vocabularies, Gen.int(in: 2...3)) { seed, vocab, length in
            let p = try offPolicy(vocab: vocab, length: length, seed: seed)
            let truth = Truth(p)
            let onPolicyToken = truth.tokenReverseKL
            expectClose(
                try expected("k2_loss_sgw_prefix", p), onPolicyToken, tolerance: fdTolerance, "prefix")
            expectClose(
                p.exactGradient(of: .k2TokenOnPolicy), onPolicyToken, tolerance: fdTolerance, "target")
            #expect(relativeGap(try expected("k2_loss_sgw_token", p), onPolicyToken) > 1e-5)
            for id in ["k1_reward_sgW", "k2_seq_loss_sgW", "k3_seq_loss_W"] {
                expectClose(try expected(id, p), truth.reverseKL, tolerance: fdTolerance, id)
            }
            expectClose(
                try expected("k3_seq_loss_sgW", p), truth.forwardKL, tolerance: fdTolerance, "sg(W)·k3 seq")
        }
    }
}
