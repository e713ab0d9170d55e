import Foundation

/// One prediction of the theory (ReinKL's KLGradients article, `Sources/ReinKL/ReinKL.docc`)
/// checked against a run's tracker numbers.
public struct TheoryCheck: Sendable, Codable, Hashable {
    /// What theory says, in words.
    public var claim: String
    /// The measured numbers behind the verdict.
    public var measured: String
    /// Whether the measurement agrees.
    public var agrees: Bool

    /// The checks a run's bias points allow (those whose forms and lags were measured).
    /// Tolerance for "unbiased": relative error ≤ 1e-6 (rounding is ~1e-16).
    public static func checks(_ bias: [BiasPoint]) -> [TheoryCheck] {
        func at(_ id: String, _ lag: Int) -> BiasPoint? {
            bias.first { $0.implementation == id && $0.lag == lag }
        }
        func format(_ v: Double) -> String { String(format: "%.3g", v) }
        let lags = Set(bias.map(\.lag)).sorted()
        guard let low = lags.first, let high = lags.last else { return [] }
        var out: [TheoryCheck] = []
        if low == 0 {
            let onPolicy = ["k2_loss", "k1_reward"].compactMap { at($0, 0) }
            if !onPolicy.isEmpty {
                let worst = onPolicy.map(\.relativeError).max()!
                // Exactly 0 only when θ = π_ref at every lag-0 position (the first step of a run).
                let trivial = onPolicy.allSatisfy { $0.relativeError == 0 }
                out.append(
                    TheoryCheck(
                        claim:
                            "on-policy (lag 0), k2 as loss and k1 in reward are unbiased for ∇KL(π_θ‖π_ref)",
                        measured: onPolicy.map { "\($0.implementation) \(format($0.relativeError))" }
                            .joined(separator: ", ")
                            + (trivial ? " (trivially: θ = π_ref at every lag-0 position observed)" : ""),
                        agrees: worst <= 1e-6))
            }
            if let k3 = at("k3_loss", 0) {
                out.append(
                    TheoryCheck(
                        claim: "on-policy, k3 as loss follows the forward KL ∇KL(π_ref‖π_θ)",
                        measured:
                            "relative error to the forward-KL gradient \(format(k3.forwardRelativeError))",
                        agrees: k3.forwardRelativeError <= 1e-6))
            }
            if let k1 = at("k1_loss", 0) {
                out.append(
                    TheoryCheck(
                        claim: "on-policy, k1 as loss has zero expected gradient (pure noise)",
                        measured:
                            "relative error \(format(k1.relativeError)) (1 means zero expected gradient)",
                        agrees: abs(k1.relativeError - 1) <= 1e-6 || k1.relativeError <= 1e-6))
            }
        }
        let corrected = ["k2_loss_sgw_token", "k3_loss_w_token"].flatMap { id in
            bias.filter { $0.implementation == id }
        }
        if !corrected.isEmpty {
            let worst = corrected.map(\.relativeError).max()!
            out.append(
                TheoryCheck(
                    claim: "sg(w)·k2 and w·k3 are unbiased at the token level at every lag",
                    measured:
                        "largest relative error over lags \(lags.map(String.init).joined(separator: ", ")): \(format(worst))",
                    agrees: worst <= 1e-6))
        }
        if high > 0 {
            for id in ["k2_loss", "k1_reward", "k3_loss"] {
                guard let stale = at(id, high) else { continue }
                let fresh = at(id, low)
                out.append(
                    TheoryCheck(
                        claim: "off-policy, naive \(id) is biased once samples are stale",
                        measured: (fresh.map { "lag \(low): \(format($0.relativeError)), " } ?? "")
                            + "lag \(high): \(format(stale.relativeError)) (cosine \(String(format: "%.4f", stale.cosine)))",
                        agrees: stale.relativeError > 1e-6))
            }
        }
        return out
    }
}
