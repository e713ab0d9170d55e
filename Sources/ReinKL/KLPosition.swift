import RealModule

/// Exact quantities at one prefix s from full vocabulary rows of logits of π_θ, μ and π_ref:
/// the reverse and forward KL and their gradients with respect to the θ logits, and the
/// *expected* gradient of any ``KLConfiguration`` when the token is drawn from μ(·|s) — a sum
/// over the vocabulary, no sampling. The staleness tracker is built on these.
///
/// At one position every form reduces to its single-token version (reward-to-go, prefix and
/// sequence ratios all equal the token quantities), so this measures the action-level part of
/// the bias; the prefix-distribution part needs sequences (``TabularPolicy``).
public struct KLPosition: Sendable, Hashable {
    /// log π_θ(·|s).
    public let logPolicy: [Double]
    /// log μ(·|s).
    public let logBehaviour: [Double]
    /// log π_ref(·|s).
    public let logReference: [Double]

    /// Normalises the three logit rows with log-sum-exp.
    public init(
        thetaLogits: [Double], behaviourLogits: [Double], referenceLogits: [Double]
    ) throws(KLPositionError) {
        let width = thetaLogits.count
        guard width > 0 else { throw .emptyRow }
        guard behaviourLogits.count == width, referenceLogits.count == width else {
            throw .widthMismatch(
                theta: width, behaviour: behaviourLogits.count, reference: referenceLogits.count)
        }
        for (name, row) in [
            ("theta", thetaLogits), ("behaviour", behaviourLogits), ("reference", referenceLogits),
        ] {
            if let index = row.firstIndex(where: { !$0.isFinite }) {
                throw .nonFinite(name: name, index: index)
            }
        }
        logPolicy = Softmax.logProbabilities(thetaLogits)
        logBehaviour = Softmax.logProbabilities(behaviourLogits)
        logReference = Softmax.logProbabilities(referenceLogits)
    }

    /// KL(π_θ‖π_ref) = Σ_v π_v ℓ_v.
    public var reverseKL: Double {
        var kl = 0.0
        for v in logPolicy.indices {
            kl += Double.exp(logPolicy[v]) * (logPolicy[v] - logReference[v])
        }
        return kl
    }

    /// KL(π_ref‖π_θ) = Σ_v π_ref,v (−ℓ_v).
    public var forwardKL: Double {
        var kl = 0.0
        for v in logPolicy.indices {
            kl += Double.exp(logReference[v]) * (logReference[v] - logPolicy[v])
        }
        return kl
    }

    /// ∂KL(π_θ‖π_ref)/∂z_v = π_v (ℓ_v − KL).
    public var reverseKLGradient: [Double] {
        let kl = reverseKL
        return logPolicy.indices.map { v in
            Double.exp(logPolicy[v]) * (logPolicy[v] - logReference[v] - kl)
        }
    }

    /// ∂KL(π_ref‖π_θ)/∂z_v = π_v − π_ref,v.
    public var forwardKLGradient: [Double] {
        logPolicy.indices.map { v in Double.exp(logPolicy[v]) - Double.exp(logReference[v]) }
    }

    /// E_{y~μ}[c(y)·∇_z log π_θ(y)] = Σ_y μ_y c_y (e_y − π) for the configuration's per-sample
    /// coefficient c (its ∂loss/∂ log π_θ on the one-token sequence y).
    public func expectedGradient(of configuration: KLConfiguration) throws(KLConfigurationError)
        -> [Double]
    {
        try configuration.validate()
        var kernel = SequenceKernel(configuration: configuration)
        kernel.reserve(1)
        var gradient = [Double](repeating: 0, count: logPolicy.count)
        var total = 0.0
        for y in logPolicy.indices {
            kernel.policy[0] = logPolicy[y]
            kernel.behaviour[0] = logBehaviour[y]
            kernel.reference[0] = logReference[y]
            _ = kernel.run(count: 1)
            let weighted = Double.exp(logBehaviour[y]) * kernel.gradient[0]
            gradient[y] += weighted
            total += weighted
        }
        for v in gradient.indices { gradient[v] -= Double.exp(logPolicy[v]) * total }
        return gradient
    }

    /// ``expectedGradient(of:)`` for each implementation, in order.
    public func expectedGradients(of implementations: [KLImplementation]) throws(KLConfigurationError)
        -> [[Double]]
    {
        var result: [[Double]] = []
        for implementation in implementations {
            result.append(try expectedGradient(of: implementation.configuration))
        }
        return result
    }
}

/// Rows that ``KLPosition`` cannot use.
public enum KLPositionError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A row of width zero.
    case emptyRow
    /// Rows of different widths.
    case widthMismatch(theta: Int, behaviour: Int, reference: Int)
    /// A NaN or infinite logit.
    case nonFinite(name: String, index: Int)

    /// One line naming the problem.
    public var description: String {
        switch self {
        case .emptyRow: return "logit rows must not be empty"
        case .widthMismatch(let t, let b, let r):
            return "logit rows differ in width (theta \(t), behaviour \(b), reference \(r))"
        case .nonFinite(let name, let index): return "\(name) logit \(index) is not finite"
        }
    }
}
