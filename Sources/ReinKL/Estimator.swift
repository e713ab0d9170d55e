import RealModule

/// One of Schulman's three estimators of the reverse KL, written as functions of the log-ratio
/// ℓ = log π_θ − log π_ref (see <doc:KLGradients> §1).
///
/// | | value k(ℓ) | derivative k′(ℓ) = ∂k/∂ log π_θ |
/// |---|---|---|
/// | k1 | ℓ | 1 |
/// | k2 | ½ℓ² | ℓ |
/// | k3 | e^{−ℓ} − 1 + ℓ | 1 − e^{−ℓ} |
///
/// k3 and its derivative are computed with `expm1` (and k3 near 0 with its Taylor series) so
/// that they stay accurate near ℓ = 0 and finite for |ℓ| up to several hundred.
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
        case .k3: return Self.k3(logRatio)
        }
    }

    /// k3(ℓ) = e^{−ℓ} − 1 + ℓ: `expm1(−ℓ) + ℓ`, and for |ℓ| < 0.1, where that sum cancels to
    /// a relative error of about 2ε/|ℓ|, the Taylor series ℓ²/2 − ℓ³/6 + … (to ℓ¹⁰, relative
    /// error below 1e-16).
    @usableFromInline
    static func k3(_ l: Double) -> Double {
        guard abs(l) < 0.1 else { return Double.expMinusOne(-l) + l }
        var series = 1.0 / 3_628_800
        for factorial in [362_880.0, 40_320, 5_040, 720, 120, 24, 6, 2] {
            series = 1 / factorial - l * series
        }
        return l * l * series
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
