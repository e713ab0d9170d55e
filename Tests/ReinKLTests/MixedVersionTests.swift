import Foundation
import PropertyBased
import ReinKL
import Testing

/// Partial rollouts: sequences whose tokens were sampled by different behaviour versions (the
/// first token by an older μ, the rest by a newer one). Exact float64 enumeration over every
/// sequence of a tabular policy.
@Suite("Mixed-version behaviour (partial rollouts), exact")
struct MixedVersionTests {
    /// θ, π_ref and two behaviour versions sharing them: an older one (drift 0.9) and a newer one
    /// closer to θ (drift 0.3); the first token is sampled by the older, later tokens by the newer.
    func mixed(vocab: Int, length: Int, seed: Int) throws -> (TabularPolicy, old: TabularPolicy) {
        let old = try offPolicy(vocab: vocab, length: length, seed: seed, drift: 0.9)
        let new = try offPolicy(vocab: vocab, length: length, seed: seed, drift: 0.3)
        let versions = (0..<length).map { $0 == 0 ? 0 : 1 }
        return (try old.mixingBehaviour([old.behaviour, new.behaviour], versionAt: versions), old)
    }

    /// Σ_s P_μ(s)·g(s) in row layout, for a per-position quantity g of the exact rows at s (the
    /// staleness tracker's construction: the behaviour row of each position is its version's).
    func perPosition(_ p: TabularPolicy, _ g: (KLPosition) throws -> [Double]) throws -> [[Double]] {
        let oracle = OracleTabular(p)
        var result = zeros(like: p.theta)
        for prefix in oracle.prefixes {
            let row = oracle.row(prefix)
            let weight = oracle.prefixProbability(p.behaviour, prefix)
            let position = try KLPosition(
                thetaLogits: p.theta[row], behaviourLogits: p.behaviour[row],
                referenceLogits: p.reference[row])
            result[row] = try g(position).map { weight * $0 }
        }
        return result
    }

    @Test("The mixed behaviour table is each position's version")
    func theMixedTableIsEachPositionsVersion() throws {
        let (p, old) = try mixed(vocab: 3, length: 3, seed: 5)
        let new = try offPolicy(vocab: 3, length: 3, seed: 5, drift: 0.3)
        #expect(p.behaviour[0] == old.behaviour[0])
        #expect(Array(p.behaviour[1...]) == Array(new.behaviour[1...]))
        #expect(p.theta == old.theta && p.reference == old.reference)
        #expect(throws: TabularPolicyError.self) {
            try old.mixingBehaviour([old.behaviour], versionAt: [0, 1, 0])
        }
        #expect(throws: TabularPolicyError.self) { try old.mixingBehaviour([old.behaviour], versionAt: [0]) }
    }

    @Test(
        "Mixed-version μ: sg(w)·k2 and w·k3 are unbiased per position, prefix and sequence ratios stay exact, the naive bias is the per-position sum"
    )
    func mixedVersionBehaviour() async {
        await propertyCheck(count: 6, input: seeds, vocabularies, Gen.int(in: 2...3)) { seed, vocab, length in
            let (p, _) = try mixed(vocab: vocab, length: length, seed: seed)
            let truth = Truth(p)
            // The per-position target under μ's prefixes: Σ_s P_μ(s)·∇_z KL(π_θ(·|s)‖π_ref(·|s)).
            let target = try perPosition(p) { $0.reverseKLGradient }
            for id in ["k2_loss_sgw_token", "k3_loss_w_token"] {
                expectClose(try expected(id, p), target, tolerance: 1e-9, id)
            }
            // Prefix ratios undo μ's prefixes: the on-policy per-token gradient.
            expectClose(
                try expected("k2_loss_sgw_prefix", p), truth.tokenReverseKL, tolerance: fdTolerance, "prefix")
            // Sequence ratios W = Π_t π_θ/μ_{v_t}: the sequence KL gradients.
            for id in ["k1_reward_sgW", "k2_seq_loss_sgW", "k3_seq_loss_W"] {
                expectClose(try expected(id, p), truth.reverseKL, tolerance: fdTolerance, id)
            }
            expectClose(
                try expected("k3_seq_loss_sgW", p), truth.forwardKL, tolerance: fdTolerance, "sg(W)·k3")
            // The naive forms are biased, by exactly the per-position bias the tracker measures.
            for id in ["k2_loss", "k3_loss", "k1_loss"] {
                let configuration = try KLImplementation.named(id).configuration
                let enumerated = minus(try expected(id, p), target)
                let predicted = minus(
                    try perPosition(p) { try $0.expectedGradient(of: configuration) }, target)
                expectClose(enumerated, predicted, tolerance: 1e-9, "\(id) bias")
                #expect(maxNorm(enumerated) > 1e-4, "\(id) is biased")
            }
        }
    }
}
