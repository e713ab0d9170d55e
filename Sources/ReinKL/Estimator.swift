import RealModule

/// One of Schulman's three estimators of the reverse KL, written as functions of the log-ratio
/// ℓ = log π_θ − log π_ref (see `kl-gradients.md` §1).
///
/// | | value k(ℓ) | derivative k′(ℓ) = ∂k/∂ log π_θ |
/// |---|---|---|
/// | k1 | ℓ | 1 |
/// | k2 | ½ℓ² | ℓ |
/// | k3 | e^{−ℓ} − 1 + ℓ | 1 − e^{−ℓ} |
///
/// k3 and its derivative are computed with `expm1` so that they stay accurate near ℓ = 0 and
/// finite for |ℓ| up to several hundred.
public enum KLEstimator: String, Sendable, Codable, Hashable, CaseIterable {
    /// k1 = ℓ: unbiased value of the reverse KL, can be negative.
    case k1
    /// k2 = ½ℓ²: non-negative, biased value; its gradient coefficient is ℓ.
    case k2
    /// k3 = e^{−ℓ} − 1 + ℓ: non-negative, unbiased value; its gradient coefficient is 1 − e^{−ℓ}.
    case k3

    /// The estimator value k(ℓ).
    @inlinable
    public func value(_ logRatio: Double) -> Double {
        switch self {
        case .k1: return logRatio
        case .k2: return 0.5 * logRatio * logRatio
        case .k3: return Double.expMinusOne(-logRatio) + logRatio
        }
    }

    /// The derivative k′(ℓ) = ∂k/∂ log π_θ (π_ref fixed): the coefficient that "k as loss"
    /// puts on the score ∇ log π_θ.
    @inlinable
    public func derivative(_ logRatio: Double) -> Double {
        switch self {
        case .k1: return 1
        case .k2: return logRatio
        case .k3: return -Double.expMinusOne(-logRatio)
        }
    }
}
