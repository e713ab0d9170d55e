/// Summary statistics of a set of importance ratios.
public struct KLRatioStatistics: Sendable, Hashable, Codable {
    /// How many ratios were summarised.
    public var count: Int
    /// Their mean (1 when `count` is 0).
    public var mean: Double
    /// Their maximum (1 when `count` is 0).
    public var max: Double
    /// Their minimum (1 when `count` is 0).
    public var min: Double
    /// Kish effective sample size divided by the count, (Σρ)² / (N·Σρ²), in (0, 1].
    public var effectiveSampleSizeFraction: Double

    /// Statistics with no ratios: all ones.
    public static let empty = KLRatioStatistics(
        count: 0, mean: 1, max: 1, min: 1, effectiveSampleSizeFraction: 1)

    enum CodingKeys: String, CodingKey {
        case count, mean, max, min
        case effectiveSampleSizeFraction = "effective_sample_size_fraction"
    }
}

/// Diagnostics of one evaluation of ``KLObjective``. Fractions are in [0, 1]; their
/// denominators are named in each property's documentation.
public struct KLDiagnostics: Sendable, Hashable, Codable {
    /// Valid (unmasked) tokens.
    public var tokenCount: Int
    /// Sequences with at least one valid token.
    public var sequenceCount: Int
    /// Mean over valid tokens of k1(ℓ_t) = ℓ_t (a per-token reverse-KL estimate under μ).
    public var k1Mean: Double
    /// Mean over valid tokens of k2(ℓ_t).
    public var k2Mean: Double
    /// Mean over valid tokens of k3(ℓ_t).
    public var k3Mean: Double
    /// Largest |ℓ_t| = |log π_θ − log π_ref| over valid tokens.
    public var maxAbsLogRatio: Double
    /// Largest |log w_t| = |log π_θ − log μ| over valid tokens.
    public var maxAbsLogWeight: Double
    /// The token ratios w_t over valid tokens, whatever ratio the configuration applies.
    public var tokenRatio: KLRatioStatistics
    /// The ratios the configuration actually applied, one per term, after truncation
    /// (``KLRatioStatistics/empty`` for ratio none).
    public var appliedRatio: KLRatioStatistics
    /// Fraction of clipped terms (coefficient correction with clip) whose clipped branch was
    /// taken (ties take the unclipped branch); denominator: terms.
    public var clipFraction: Double
    /// Fraction of terms capped by the dual clip; denominator: terms.
    public var dualClipFraction: Double
    /// Fraction of applied ratios truncated at `ratio_cap`; denominator: applied ratios.
    public var ratioCapFraction: Double
    /// Applied ratios whose logarithm exceeded ``KLObjective/logRatioCeiling`` and was held there.
    public var ratioOverflowCount: Int
    /// Fraction of estimator evaluations whose value was clamped by `value_clamp` (their
    /// gradient is exactly zero); denominator: estimator evaluations.
    public var valueClampFraction: Double
    /// Fraction of estimator evaluations with a coefficient saturated by `coef_bound`.
    public var coefficientBoundFraction: Double
    /// Fraction of estimator evaluations or ratios touched by any clamp, clip or cap.
    public var anyClampFraction: Double
    /// Valid tokens with log π_θ == log μ bit for bit (expected for all of them on the first
    /// minibatch after sampling, when the learner recomputes exactly what the worker computed).
    public var exactOnPolicyTokens: Int
    /// Valid tokens with log π_θ == log π_ref bit for bit (all of them at initialisation).
    public var exactReferenceTokens: Int
    /// Gradient entries that exceeded the output precision and were saturated to its largest
    /// finite value (only possible for Float output with astronomically large ratios).
    public var saturatedGradientCount: Int

    /// True when every valid token has log π_θ == log μ exactly: then every token ratio is 1 in
    /// value and token-ratio forms equal their on-policy counterparts in value.
    public var isExactlyOnPolicy: Bool { exactOnPolicyTokens == tokenCount }
    /// True when every valid token has log π_θ == log π_ref exactly: then k2-as-loss and
    /// k1-in-reward produce exactly zero gradient.
    public var isExactlyReference: Bool { exactReferenceTokens == tokenCount }

    /// snake_case keys, as in a run folder's `metrics.jsonl`.
    enum CodingKeys: String, CodingKey {
        case tokenCount = "token_count"
        case sequenceCount = "sequence_count"
        case k1Mean = "k1_mean"
        case k2Mean = "k2_mean"
        case k3Mean = "k3_mean"
        case maxAbsLogRatio = "max_abs_log_ratio"
        case maxAbsLogWeight = "max_abs_log_weight"
        case tokenRatio = "token_ratio"
        case appliedRatio = "applied_ratio"
        case clipFraction = "clip_fraction"
        case dualClipFraction = "dual_clip_fraction"
        case ratioCapFraction = "ratio_cap_fraction"
        case ratioOverflowCount = "ratio_overflow_count"
        case valueClampFraction = "value_clamp_fraction"
        case coefficientBoundFraction = "coefficient_bound_fraction"
        case anyClampFraction = "any_clamp_fraction"
        case exactOnPolicyTokens = "exact_on_policy_tokens"
        case exactReferenceTokens = "exact_reference_tokens"
        case saturatedGradientCount = "saturated_gradient_count"
    }
}

/// Running counters of the kernel, turned into ``KLDiagnostics`` at the end of a batch.
struct KLCounters {
    var estimates = 0
    var valueClamps = 0
    var bounds = 0
    var clipTerms = 0
    var clips = 0
    var dualClips = 0
    var caps = 0
    var overflows = 0
    var applied = RatioAccumulator()
}

/// Accumulates ratio statistics.
struct RatioAccumulator {
    var count = 0
    var sum = 0.0
    var sumOfSquares = 0.0
    var maximum = -Double.infinity
    var minimum = Double.infinity

    mutating func add(_ ratio: Double) {
        count += 1
        sum += ratio
        sumOfSquares += ratio * ratio
        maximum = Swift.max(maximum, ratio)
        minimum = Swift.min(minimum, ratio)
    }

    var statistics: KLRatioStatistics {
        guard count > 0 else { return .empty }
        let ess = sumOfSquares > 0 ? (sum * sum) / (Double(count) * sumOfSquares) : 1
        return KLRatioStatistics(
            count: count, mean: sum / Double(count), max: maximum, min: minimum,
            effectiveSampleSizeFraction: ess)
    }
}
