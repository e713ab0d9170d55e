import RealModule

/// The PPO-clipped policy-gradient surrogate on per-token log-probabilities.
///
/// For token t with ratio w_t = exp(log π_θ − log μ) and advantage A:
/// L_t = −min(w_t·A, clip(w_t, 1 − ε_low, 1 + ε_high)·A). Its derivative w.r.t. log π_θ is
/// −w_t·A where the unclipped branch is active and 0 where the clipped (constant) branch is.
public struct ClippedSurrogate: Sendable {
    public var epsilonLow: Double
    public var epsilonHigh: Double

    public init(epsilonLow: Double = 0.2, epsilonHigh: Double = 0.28) {
        self.epsilonLow = epsilonLow
        self.epsilonHigh = epsilonHigh
    }

    /// Per-token loss value and ∂L/∂ log π_θ, and whether the clipped branch was taken.
    @inlinable
    public func token(logPolicy: Double, logBehaviour: Double, advantage a: Double)
        -> (loss: Double, dLogPolicy: Double, clipped: Bool)
    {
        let w = Double.exp(Swift.min(logPolicy - logBehaviour, 80))
        let wc = Swift.min(Swift.max(w, 1 - epsilonLow), 1 + epsilonHigh)
        let unclipped = w * a
        let clippedValue = wc * a
        // min(w·A, clip(w)·A): the unclipped branch wins ties (it carries the gradient).
        if unclipped <= clippedValue {
            return (-unclipped, -unclipped, false)
        }
        return (-clippedValue, 0, true)
    }
}

/// How per-token losses of a minibatch are averaged.
public enum LossAggregation: String, Codable, Sendable, Hashable, CaseIterable {
    /// Mean over all valid tokens of the minibatch (DAPO / Dr. GRPO style).
    case tokenMean = "token_mean"
    /// Mean over sequences of each sequence's token mean (original GRPO).
    case sequenceMean = "sequence_mean"
}
