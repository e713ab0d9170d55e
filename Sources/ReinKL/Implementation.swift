/// A named KL implementation: the ids of `rein kl exact` and of the staleness tracker.
///
/// Naming: `k{n}_{loss|reward}` then qualifiers — `seq` (sequence-level estimator),
/// `sgw`/`w` (detached / differentiable ratio) with `token`, `prefix` or `W` (sequence ratio),
/// `coef` / `coefclip` (the paper's coefficient-level correction, without / with the PPO clip
/// [0.8, 1.2]), `sum` / `own` (in-reward aggregation other than reward-to-go), `stale` (in-reward
/// value computed from the behaviour log-probabilities).
public struct KLImplementation: Sendable, Hashable, Codable {
    /// The id, e.g. `k2_loss_sgw_token`.
    public var id: String
    /// What it computes.
    public var configuration: KLConfiguration
    /// A one-line formula of its loss on one sampled sequence.
    public var formula: String

    /// A named implementation.
    public init(id: String, configuration: KLConfiguration, formula: String) {
        self.id = id
        self.configuration = configuration
        self.formula = formula
    }

    /// The implementation with this id from ``catalog``.
    public static func named(_ id: String) throws(KLConfigurationError) -> KLImplementation {
        guard let found = catalog.first(where: { $0.id == id }) else {
            throw .unknownImplementation(id)
        }
        return found
    }

    /// The PPO clip range of the `coefclip` ids, [0.8, 1.2].
    public static let standardClip = KLClipRange(low: 0.2, high: 0.2)

    /// The ten ids required by `rein kl exact`, in its order.
    public static let required: [KLImplementation] = Array(catalog.prefix(10))

    /// Every named implementation.
    public static let catalog: [KLImplementation] = {
        typealias C = KLConfiguration
        func make(_ id: String, _ formula: String, _ c: C) -> KLImplementation {
            KLImplementation(id: id, configuration: c, formula: formula)
        }
        let clip = standardClip
        return [
            // The ten ids of the `rein kl exact` interface.
            make("k1_loss", "Σ_t ℓ_t", C(estimator: .k1)),
            make("k2_loss", "Σ_t ½ℓ_t²", C(estimator: .k2)),
            make("k3_loss", "Σ_t k3(ℓ_t)", C(estimator: .k3)),
            make("k1_reward", "Σ_t sg(G_t)·log π_θ", C(estimator: .k1, placement: .reward)),
            make("k2_loss_sgw_token", "Σ_t sg(w_t)·½ℓ_t²", C(estimator: .k2, ratio: .token)),
            make(
                "k3_loss_w_token", "Σ_t w_t·k3(ℓ_t)",
                C(estimator: .k3, ratio: .token, ratioGradient: .differentiable)),
            make(
                "k2_loss_sgw_prefix", "Σ_t sg(Π_{u≤t} w_u)·½ℓ_t²", C(estimator: .k2, ratio: .prefix)),
            make(
                "k1_reward_sgW", "Σ_t sg(W·G_t)·log π_θ",
                C(estimator: .k1, placement: .reward, ratio: .sequence)),
            make(
                "k2_seq_loss_sgW", "sg(W)·½(Σ_t ℓ_t)²",
                C(estimator: .k2, ratio: .sequence, level: .sequence)),
            make(
                "k3_loss_coefclip_token", "Σ_t max(w_t·sg(k3′), clip(w_t, 0.8, 1.2)·sg(k3′))",
                C(estimator: .k3, ratio: .token, correction: .coefficient, clip: clip)),
            // More forms of the KLGradients article (ReinKL.docc).
            make("k2_reward", "Σ_t sg(Σ_{u≥t} ½ℓ_u²)·log π_θ", C(estimator: .k2, placement: .reward)),
            make("k3_reward", "Σ_t sg(Σ_{u≥t} k3(ℓ_u))·log π_θ", C(estimator: .k3, placement: .reward)),
            make(
                "k1_reward_sum", "Σ_t sg(Σ_u ℓ_u)·log π_θ",
                C(estimator: .k1, placement: .reward, reward: .sum)),
            make(
                "k1_reward_own", "Σ_t sg(ℓ_t)·log π_θ",
                C(estimator: .k1, placement: .reward, reward: .own)),
            make(
                "k1_reward_sgw_token", "Σ_t sg(w_t·G_t)·log π_θ",
                C(estimator: .k1, placement: .reward, ratio: .token)),
            make(
                "k1_reward_own_sgw_token", "Σ_t sg(w_t·ℓ_t)·log π_θ",
                C(estimator: .k1, placement: .reward, ratio: .token, reward: .own)),
            make(
                "k1_reward_own_stale_sgw_token", "Σ_t sg(w_t·ℓ_old,t)·log π_θ",
                C(estimator: .k1, placement: .reward, ratio: .token, reward: .own, rewardSource: .behaviour)),
            make(
                "k1_reward_stale", "Σ_t sg(Σ_{u≥t} ℓ_old,u)·log π_θ",
                C(estimator: .k1, placement: .reward, rewardSource: .behaviour)),
            make(
                "k1_loss_w_token", "Σ_t w_t·ℓ_t",
                C(estimator: .k1, ratio: .token, ratioGradient: .differentiable)),
            make("k1_loss_sgw_token", "Σ_t sg(w_t)·ℓ_t", C(estimator: .k1, ratio: .token)),
            make(
                "k2_loss_w_token", "Σ_t w_t·½ℓ_t²",
                C(estimator: .k2, ratio: .token, ratioGradient: .differentiable)),
            make("k3_loss_sgw_token", "Σ_t sg(w_t)·k3(ℓ_t)", C(estimator: .k3, ratio: .token)),
            make(
                "k3_loss_w_prefix", "Σ_t (Π_{u≤t} w_u)·k3(ℓ_t)",
                C(estimator: .k3, ratio: .prefix, ratioGradient: .differentiable)),
            make(
                "k1_loss_coef_token", "Σ_t w_t·sg(1)",
                C(estimator: .k1, ratio: .token, correction: .coefficient)),
            make(
                "k2_loss_coef_token", "Σ_t w_t·sg(ℓ_t)",
                C(estimator: .k2, ratio: .token, correction: .coefficient)),
            make(
                "k3_loss_coef_token", "Σ_t w_t·sg(1 − e^{−ℓ_t})",
                C(estimator: .k3, ratio: .token, correction: .coefficient)),
            make(
                "k1_loss_coefclip_token", "Σ_t max(w_t·1, clip(w_t)·1)",
                C(estimator: .k1, ratio: .token, correction: .coefficient, clip: clip)),
            make(
                "k2_loss_coefclip_token", "Σ_t max(w_t·sg(ℓ_t), clip(w_t)·sg(ℓ_t))",
                C(estimator: .k2, ratio: .token, correction: .coefficient, clip: clip)),
            make("k2_seq_loss", "½(Σ_t ℓ_t)²", C(estimator: .k2, level: .sequence)),
            make("k3_seq_loss", "k3(Σ_t ℓ_t)", C(estimator: .k3, level: .sequence)),
            make(
                "k3_seq_loss_W", "W·k3(Σ_t ℓ_t)",
                C(estimator: .k3, ratio: .sequence, ratioGradient: .differentiable, level: .sequence)),
            make(
                "k3_seq_loss_sgW", "sg(W)·k3(Σ_t ℓ_t)",
                C(estimator: .k3, ratio: .sequence, level: .sequence)),
        ]
    }()
}
