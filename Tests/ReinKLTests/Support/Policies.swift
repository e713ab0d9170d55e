import Foundation
import PropertyBased
import ReinKL

/// Random seeds for tabular policies.
let seeds = Gen.int(in: 0...1_000_000)
/// Vocabulary sizes of the property tests.
let vocabularies = Gen.int(in: 3...4)
/// Sequence lengths of the property tests.
let lengths = Gen.int(in: 1...3)

/// A random policy with θ = behaviour (on-policy).
func onPolicy(vocab: Int, length: Int, seed: Int) throws -> TabularPolicy {
    try TabularPolicy.random(vocab: vocab, length: length, seed: UInt64(seed), referenceScale: 0.7)
}

/// A random policy whose behaviour has drifted from θ.
func offPolicy(vocab: Int, length: Int, seed: Int, drift: Double = 0.6) throws -> TabularPolicy {
    try TabularPolicy.random(
        vocab: vocab, length: length, seed: UInt64(seed), referenceScale: 0.7, drift: drift)
}

/// The expected gradient of a catalog id under the policy's behaviour table.
func expected(_ id: String, _ p: TabularPolicy) throws -> [[Double]] {
    try p.expectedGradient(of: KLImplementation.named(id).configuration)
}

/// Gradients computed independently by finite differences of exact values.
struct Truth {
    let oracle: OracleTabular
    let theta: [[Double]]

    init(_ p: TabularPolicy) {
        oracle = OracleTabular(p)
        theta = p.theta
    }

    var reverseKL: [[Double]] { finiteDifference(theta, oracle.reverseKL) }
    var forwardKL: [[Double]] { finiteDifference(theta, oracle.forwardKL) }
    var expectedK2: [[Double]] { finiteDifference(theta, oracle.expectedK2) }
    var behaviourToPolicyKL: [[Double]] { finiteDifference(theta, oracle.behaviourToPolicyKL) }
    var policyToBehaviourKL: [[Double]] { finiteDifference(theta, oracle.policyToBehaviourKL) }
    /// Σ_s P_θ₀(s)·∇KL_s(π_θ‖π_ref): the on-policy per-token k2 gradient.
    var tokenReverseKL: [[Double]] {
        finiteDifference(theta, oracle.frozenPrefixKL(theta0: theta, reverse: true))
    }
    /// Σ_s P_θ₀(s)·∇KL_s(π_ref‖π_θ): the on-policy per-token k3 gradient.
    var tokenForwardKL: [[Double]] {
        finiteDifference(theta, oracle.frozenPrefixKL(theta0: theta, reverse: false))
    }
}

/// Zero rows of the same shape.
func zeros(like x: [[Double]]) -> [[Double]] { x.map { $0.map { _ in 0 } } }

/// a − b row-wise.
func minus(_ a: [[Double]], _ b: [[Double]]) -> [[Double]] {
    zip(a, b).map { zip($0, $1).map { $0 - $1 } }
}

/// a + b row-wise.
func plus(_ a: [[Double]], _ b: [[Double]]) -> [[Double]] {
    zip(a, b).map { zip($0, $1).map { $0 + $1 } }
}

/// s·a row-wise.
func times(_ s: Double, _ a: [[Double]]) -> [[Double]] { a.map { $0.map { s * $0 } } }

/// Max-norm of rows.
func maxNorm(_ a: [[Double]]) -> Double { a.joined().reduce(0) { max($0, abs($1)) } }

/// FD-vs-exact tolerance (central differences with h = 1e-5 in float64).
let fdTolerance = 1e-7
/// Exact-vs-exact tolerance.
let exactTolerance = 1e-9
