/// Where the KL term enters the objective (<doc:KLGradients> §1).
public enum KLPlacement: String, Sendable, Codable, Hashable, CaseIterable {
    /// "k as loss": the estimator value is added to the loss and differentiated through
    /// log π_θ (and through the ratio if it is differentiable).
    case loss
    /// "k in reward": the estimator value is detached and used as a (negative) reward; its
    /// gradient is the score function times the aggregated KL reward.
    case reward
}

/// The importance ratio that multiplies each term (w_t = π_θ(y_t|s_t) / μ(y_t|s_t)).
public enum KLRatio: String, Sendable, Codable, Hashable, CaseIterable {
    /// No ratio: samples from μ are treated as if drawn from π_θ.
    case none
    /// The token ratio w_t.
    case token
    /// The prefix ratio Π_{u≤t} w_u (corrects the prefix distribution as well).
    case prefix
    /// The whole-sequence ratio W = Π_t w_t on every term.
    case sequence
}

/// Whether the importance ratio carries gradient.
public enum KLRatioGradient: String, Sendable, Codable, Hashable, CaseIterable {
    /// sg(w): the ratio only reweights.
    case detached
    /// w is differentiated too: ∇w = w·∇ log π_θ on every token the ratio spans.
    case differentiable
}

/// Token-level Σ_t k(ℓ_t) or sequence-level k(Σ_t ℓ_t).
public enum KLLevel: String, Sendable, Codable, Hashable, CaseIterable {
    /// One estimator term per token: Σ_t k(ℓ_t).
    case token
    /// One estimator term per sequence, of the summed log-ratio: k(Σ_t ℓ_t).
    case sequence
}

/// How per-token KL rewards are aggregated into the coefficient of each token's score
/// (in-reward placement, token level).
public enum KLRewardAggregation: String, Sendable, Codable, Hashable, CaseIterable {
    /// Reward-to-go G_t = Σ_{u≥t} k(ℓ_u) (PPO/REINFORCE++ with γ = λ = 1): the sequence RKL
    /// gradient for k1.
    case toGo = "to_go"
    /// The whole-sequence sum Σ_u k(ℓ_u) broadcast to every token (outcome-reward style).
    case sum
    /// Only the token's own k(ℓ_t): a partial gradient (misses the future-KL credit).
    case own
}

/// Which log-probabilities the in-reward KL value is computed from.
public enum KLRewardSource: String, Sendable, Codable, Hashable, CaseIterable {
    /// ℓ = log π_θ − log π_ref, recomputed by the learner.
    case policy
    /// ℓ_old = log μ − log π_ref, computed at rollout (REINFORCE++/verl/OpenRLHF reward shaping);
    /// biased by −∇KL(π_θ‖μ) once θ moves (<doc:KLGradients> §4.3).
    case behaviour
}

/// How per-sequence sums are combined over a batch. Each choice changes the *target*: only
/// ``sum`` is the batch estimate of E[Σ_t …] that the exact expectations in this module compute;
/// ``tokenMean`` and ``sequenceMean`` weight tokens by quantities that depend on sequence length.
public enum KLNormalization: String, Sendable, Codable, Hashable, CaseIterable {
    /// Σ over the tokens of each sequence, averaged over sequences: (1/N_seq) Σ_i Σ_t.
    case sum
    /// Σ over all tokens of the batch divided by the number of valid tokens (DAPO/OpenRLHF).
    case tokenMean = "token_mean"
    /// Each sequence's sum divided by its own length, averaged over sequences (GRPO's 1/|y|).
    case sequenceMean = "sequence_mean"
}

/// The off-policy correction applied on top of the ratio.
public enum KLCorrection: String, Sendable, Codable, Hashable, CaseIterable {
    /// The ratio (if any) multiplies the estimator as configured.
    case none
    /// The paper's coefficient-level correction: the detached coefficient c = k′(ℓ) (or the
    /// aggregated KL reward for in-reward placement) times the ratio, which always carries the
    /// gradient, optionally PPO-clipped: max(ρ·sg(c), clip(ρ, 1−ε_low, 1+ε_high)·sg(c)).
    case coefficient
}

/// A PPO clip range [1 − low, 1 + high]. Encoded as the two-element array `[low, high]`.
public struct KLClipRange: Sendable, Hashable, Codable {
    /// ε_low: the ratio is clipped below at 1 − low.
    public var low: Double
    /// ε_high: the ratio is clipped above at 1 + high.
    public var high: Double

    /// A clip range [1 − low, 1 + high].
    public init(low: Double, high: Double) {
        self.low = low
        self.high = high
    }

    /// Decodes `[low, high]`.
    public init(from decoder: any Decoder) throws {
        var container = try decoder.unkeyedContainer()
        low = try container.decode(Double.self)
        high = try container.decode(Double.self)
        if !container.isAtEnd {
            throw DecodingError.dataCorruptedError(
                in: container, debugDescription: "clip must be [low, high]")
        }
    }

    /// Encodes `[low, high]`.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.unkeyedContainer()
        try container.encode(low)
        try container.encode(high)
    }
}

/// A complete description of one KL implementation: estimator, placement, ratio, level,
/// normalisation, correction and bounding. Decodes from the training configuration's
/// `kl:` block, e.g. `{estimator: k2, placement: loss, ratio: token, ratio_grad: detached}`;
/// every key except `estimator` is optional.
public struct KLConfiguration: Sendable, Hashable, Codable {
    /// k1, k2 or k3.
    public var estimator: KLEstimator
    /// In reward or as loss.
    public var placement: KLPlacement
    /// Importance ratio level.
    public var ratio: KLRatio
    /// Whether the ratio is differentiated (ignored with ``KLCorrection/coefficient``, where the
    /// ratio always carries the gradient, and must be detached for in-reward placement).
    public var ratioGradient: KLRatioGradient
    /// Token-level or sequence-level estimator.
    public var level: KLLevel
    /// Aggregation of per-token KL rewards (in-reward placement, token level).
    public var reward: KLRewardAggregation
    /// Log-probabilities the in-reward value is computed from.
    public var rewardSource: KLRewardSource
    /// Batch normalisation.
    public var normalization: KLNormalization
    /// Off-policy correction.
    public var correction: KLCorrection
    /// PPO clip of the ratio (coefficient correction only).
    public var clip: KLClipRange?
    /// Dual clip bound c > 1: for a positive coefficient (a penalty) the loss term is capped at
    /// c·coefficient, so very large ratios carry no gradient (RPG/dual-clip PPO).
    public var dualClip: Double?
    /// Truncation cap: ρ ← min(ρ, cap); a truncated ratio carries no gradient.
    public var ratioCap: Double?
    /// Bound on the detached coefficients: every factor that multiplies a score is clamped to
    /// [−bound, bound], so the gradient saturates instead of vanishing. The loss value is not
    /// changed.
    public var coefficientBound: Double?
    /// Clamp of the estimator *value* to [−clamp, clamp] (OpenRLHF/verl style): beyond it the
    /// value is constant and the gradient through it is exactly zero.
    public var valueClamp: Double?

    /// A configuration; every argument but the estimator has the plain default.
    public init(
        estimator: KLEstimator,
        placement: KLPlacement = .loss,
        ratio: KLRatio = .none,
        ratioGradient: KLRatioGradient = .detached,
        level: KLLevel = .token,
        reward: KLRewardAggregation = .toGo,
        rewardSource: KLRewardSource = .policy,
        normalization: KLNormalization = .sum,
        correction: KLCorrection = .none,
        clip: KLClipRange? = nil,
        dualClip: Double? = nil,
        ratioCap: Double? = nil,
        coefficientBound: Double? = nil,
        valueClamp: Double? = nil
    ) {
        self.estimator = estimator
        self.placement = placement
        self.ratio = ratio
        self.ratioGradient = ratioGradient
        self.level = level
        self.reward = reward
        self.rewardSource = rewardSource
        self.normalization = normalization
        self.correction = correction
        self.clip = clip
        self.dualClip = dualClip
        self.ratioCap = ratioCap
        self.coefficientBound = coefficientBound
        self.valueClamp = valueClamp
    }

    enum CodingKeys: String, CodingKey {
        case estimator, placement, ratio
        case ratioGradient = "ratio_grad"
        case level, reward
        case rewardSource = "reward_source"
        case normalization, correction, clip
        case dualClip = "dual_clip"
        case ratioCap = "ratio_cap"
        case coefficientBound = "coef_bound"
        case valueClamp = "value_clamp"
    }

    /// Decodes the `kl:` block; missing keys take the defaults of ``init(estimator:placement:ratio:ratioGradient:level:reward:rewardSource:normalization:correction:clip:dualClip:ratioCap:coefficientBound:valueClamp:)``.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            estimator: try c.decode(KLEstimator.self, forKey: .estimator),
            placement: try c.decodeIfPresent(KLPlacement.self, forKey: .placement) ?? .loss,
            ratio: try c.decodeIfPresent(KLRatio.self, forKey: .ratio) ?? .none,
            ratioGradient: try c.decodeIfPresent(KLRatioGradient.self, forKey: .ratioGradient)
                ?? .detached,
            level: try c.decodeIfPresent(KLLevel.self, forKey: .level) ?? .token,
            reward: try c.decodeIfPresent(KLRewardAggregation.self, forKey: .reward) ?? .toGo,
            rewardSource: try c.decodeIfPresent(KLRewardSource.self, forKey: .rewardSource) ?? .policy,
            normalization: try c.decodeIfPresent(KLNormalization.self, forKey: .normalization) ?? .sum,
            correction: try c.decodeIfPresent(KLCorrection.self, forKey: .correction) ?? .none,
            clip: try c.decodeIfPresent(KLClipRange.self, forKey: .clip),
            dualClip: try c.decodeIfPresent(Double.self, forKey: .dualClip),
            ratioCap: try c.decodeIfPresent(Double.self, forKey: .ratioCap),
            coefficientBound: try c.decodeIfPresent(Double.self, forKey: .coefficientBound),
            valueClamp: try c.decodeIfPresent(Double.self, forKey: .valueClamp)
        )
    }

    /// Checks that the combination is meaningful; every evaluation entry point calls it.
    public func validate() throws(KLConfigurationError) {
        if level == .sequence && (ratio == .token || ratio == .prefix) {
            throw .invalid("a sequence-level estimator takes ratio none or sequence, not \(ratio.rawValue)")
        }
        if placement == .reward && correction == .none && ratioGradient == .differentiable {
            throw .invalid("in-reward placement detaches the whole coefficient; use ratio_grad: detached")
        }
        if placement == .loss && rewardSource == .behaviour {
            throw .invalid("reward_source: behaviour only applies to placement: reward")
        }
        if correction == .coefficient && ratio == .none {
            throw .invalid("correction: coefficient needs a ratio (token, prefix or sequence)")
        }
        if let clip {
            if correction != .coefficient {
                throw .invalid("clip applies to correction: coefficient only")
            }
            guard clip.low.isFinite, clip.high.isFinite, clip.low >= 0, clip.low < 1, clip.high >= 0
            else {
                throw .invalid("clip [\(clip.low), \(clip.high)] must satisfy 0 ≤ low < 1 and high ≥ 0")
            }
        }
        if let dualClip {
            guard clip != nil else { throw .invalid("dual_clip needs clip") }
            guard dualClip.isFinite, dualClip > 1 else {
                throw .invalid("dual_clip must be a finite number > 1, got \(dualClip)")
            }
        }
        if let ratioCap, !(ratioCap.isFinite && ratioCap > 0) {
            throw .invalid("ratio_cap must be a finite number > 0, got \(ratioCap)")
        }
        if let coefficientBound, !(coefficientBound.isFinite && coefficientBound > 0) {
            throw .invalid("coef_bound must be a finite number > 0, got \(coefficientBound)")
        }
        if let valueClamp, !(valueClamp.isFinite && valueClamp > 0) {
            throw .invalid("value_clamp must be a finite number > 0, got \(valueClamp)")
        }
    }
}

/// A configuration that cannot be evaluated.
public enum KLConfigurationError: Error, Sendable, Hashable, CustomStringConvertible {
    /// An inconsistent or out-of-range combination, with the reason.
    case invalid(String)
    /// An implementation id that is not in ``KLImplementation/catalog``.
    case unknownImplementation(String)

    /// One line naming the problem.
    public var description: String {
        switch self {
        case .invalid(let reason): return "invalid KL configuration: \(reason)"
        case .unknownImplementation(let id): return "unknown KL implementation id '\(id)'"
        }
    }
}
