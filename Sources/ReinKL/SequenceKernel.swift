import RealModule

/// The per-sequence computation shared by the batch API, the exact per-position helpers and
/// the tabular enumeration, so that all three evaluate literally the same formulas.
///
/// Inputs: `policy`, `behaviour`, `reference` hold log π_θ, log μ, log π_ref of the `n` valid
/// tokens of one sequence (indices `0..<n`). Outputs: the unnormalised loss of the sequence
/// (return value), `gradient[t]` = ∂loss/∂ log π_θ(y_t|s_t) and `reward[t]` = the detached
/// per-token KL value (in-reward placement: the value entering the return).
struct SequenceKernel {
    let configuration: KLConfiguration
    /// log(ratio_cap), if a cap is set.
    let logCap: Double?

    var policy: [Double] = []
    var behaviour: [Double] = []
    var reference: [Double] = []
    var gradient: [Double] = []
    var reward: [Double] = []
    private var logRatio: [Double] = []
    private var logWeight: [Double] = []
    /// Per-term gradient amounts that spread over a prefix (prefix ratios), or the aggregated
    /// KL reward (in-reward placement).
    private var spread: [Double] = []
    private var aggregate: [Double] = []
    var counters = KLCounters()

    init(configuration: KLConfiguration) {
        self.configuration = configuration
        self.logCap = configuration.ratioCap.map { Double.log($0) }
    }

    /// Makes room for a sequence of `n` valid tokens.
    mutating func reserve(_ n: Int) {
        guard policy.count < n else { return }
        let extra = n - policy.count
        let zeros = [Double](repeating: 0, count: extra)
        policy += zeros
        behaviour += zeros
        reference += zeros
        gradient += zeros
        reward += zeros
        logRatio += zeros
        logWeight += zeros
        spread += zeros
        aggregate += zeros
    }

    /// One estimator evaluation with value clamp and coefficient bound applied.
    private struct Estimate {
        /// k(ℓ), value-clamped (enters the loss value).
        var value: Double
        /// k(ℓ) as a detached coefficient (value-clamped, then bounded).
        var coefficientValue: Double
        /// k′(ℓ) as a coefficient (zero if the value was clamped, then bounded).
        var coefficientDerivative: Double
    }

    private mutating func estimate(_ l: Double, usesValue: Bool, usesDerivative: Bool) -> Estimate {
        let estimator = configuration.estimator
        var value = estimator.value(l)
        var derivative = estimator.derivative(l)
        counters.estimates += 1
        if let clamp = configuration.valueClamp, abs(value) > clamp {
            value = value > 0 ? clamp : -clamp
            derivative = 0
            counters.valueClamps += 1
        }
        var result = Estimate(value: value, coefficientValue: value, coefficientDerivative: derivative)
        if let bound = configuration.coefficientBound {
            var active = false
            if usesValue, abs(value) > bound {
                result.coefficientValue = value > 0 ? bound : -bound
                active = true
            }
            if usesDerivative, abs(derivative) > bound {
                result.coefficientDerivative = derivative > 0 ? bound : -bound
                active = true
            }
            if active { counters.bounds += 1 }
        }
        return result
    }

    /// The applied ratio exp(logρ) after the overflow ceiling and the truncation cap; `live` is
    /// false when either held it constant (then it carries no gradient).
    private mutating func ratio(logRatio x: Double) -> (value: Double, live: Bool) {
        var x = x
        var live = true
        if x > KLObjective.logRatioCeiling {
            x = KLObjective.logRatioCeiling
            live = false
            counters.overflows += 1
        }
        if let logCap, x > logCap {
            x = logCap
            live = false
            counters.caps += 1
        }
        let value = Double.exp(x)
        counters.applied.add(value)
        return (value, live)
    }

    /// PPO-clipped coefficient term max(ρc, clip(ρ)c), capped at dual·c for c > 0. Ties take the
    /// unclipped branch. Returns the value and whether the ratio's gradient flows.
    private mutating func clippedTerm(ratio rho: Double, coefficient c: Double) -> (Double, Bool) {
        var value = rho * c
        var carries = true
        if let clip = configuration.clip {
            counters.clipTerms += 1
            let clipped = Swift.min(Swift.max(rho, 1 - clip.low), 1 + clip.high) * c
            if value < clipped {
                value = clipped
                carries = false
                counters.clips += 1
            }
            if let dual = configuration.dualClip, c > 0, value > dual * c {
                value = dual * c
                carries = false
                counters.dualClips += 1
            }
        }
        return (value, carries)
    }

    /// Runs the configured form on the first `n` entries; returns the unnormalised loss.
    mutating func run(count n: Int) -> Double {
        for t in 0..<n {
            gradient[t] = 0
            reward[t] = 0
            spread[t] = 0
            logRatio[t] = policy[t] - reference[t]
            logWeight[t] = policy[t] - behaviour[t]
        }
        guard n > 0 else { return 0 }
        switch configuration.level {
        case .token: return runTokenLevel(n)
        case .sequence: return runSequenceLevel(n)
        }
    }

    /// The per-token KL reward source ℓ_t (policy) or ℓ_old,t (behaviour).
    private func rewardLogRatio(_ t: Int) -> Double {
        switch configuration.rewardSource {
        case .policy: return logRatio[t]
        case .behaviour: return behaviour[t] - reference[t]
        }
    }

    private mutating func runTokenLevel(_ n: Int) -> Double {
        let config = configuration
        let differentiable =
            config.correction == .coefficient
            || (config.ratioGradient == .differentiable && config.ratio != .none)
        var total = 0.0
        for t in 0..<n { total += logWeight[t] }

        // In-reward placement: per-token rewards q_t and their aggregation R_t.
        if config.placement == .reward {
            for t in 0..<n {
                let e = estimate(rewardLogRatio(t), usesValue: true, usesDerivative: false)
                reward[t] = e.coefficientValue
            }
            switch config.reward {
            case .toGo:
                var running = 0.0
                for t in stride(from: n - 1, through: 0, by: -1) {
                    running += reward[t]
                    aggregate[t] = running
                }
            case .sum:
                var sum = 0.0
                for t in 0..<n { sum += reward[t] }
                for t in 0..<n { aggregate[t] = sum }
            case .own:
                for t in 0..<n { aggregate[t] = reward[t] }
            }
        }

        var loss = 0.0
        var prefix = 0.0
        var broadcast = 0.0
        for t in 0..<n {
            prefix += logWeight[t]
            var rho = 1.0
            var live = false
            switch config.ratio {
            case .none: break
            case .token: (rho, live) = ratio(logRatio: logWeight[t])
            case .prefix: (rho, live) = ratio(logRatio: prefix)
            case .sequence: (rho, live) = ratio(logRatio: total)
            }
            // Gradient amount that the ratio's own derivative spreads over its tokens.
            var ratioAmount = 0.0
            switch (config.placement, config.correction) {
            case (.loss, .none):
                let e = estimate(
                    logRatio[t], usesValue: differentiable, usesDerivative: true)
                reward[t] = e.value
                loss += rho * e.value
                gradient[t] += rho * e.coefficientDerivative
                if differentiable && live { ratioAmount = rho * e.coefficientValue }
            case (.reward, .none):
                let c = rho * aggregate[t]
                gradient[t] += c
                loss += c * policy[t]
            case (_, .coefficient):
                let c: Double
                if config.placement == .loss {
                    let e = estimate(logRatio[t], usesValue: false, usesDerivative: true)
                    reward[t] = e.value
                    c = e.coefficientDerivative
                } else {
                    c = aggregate[t]
                }
                let (value, carries) = clippedTerm(ratio: rho, coefficient: c)
                loss += value
                if carries && live { ratioAmount = rho * c }
            }
            if ratioAmount != 0 {
                switch config.ratio {
                case .none: break
                case .token: gradient[t] += ratioAmount
                case .prefix: spread[t] += ratioAmount
                case .sequence: broadcast += ratioAmount
                }
            }
        }
        if config.ratio == .prefix && differentiable {
            // ∂ρ_t/∂ log π_u = ρ_t for u ≤ t: suffix sums of the per-term amounts.
            var running = 0.0
            for u in stride(from: n - 1, through: 0, by: -1) {
                running += spread[u]
                gradient[u] += running
            }
        }
        if broadcast != 0 {
            for u in 0..<n { gradient[u] += broadcast }
        }
        return loss
    }

    private mutating func runSequenceLevel(_ n: Int) -> Double {
        let config = configuration
        var sumLogRatio = 0.0
        var sumRewardLogRatio = 0.0
        var total = 0.0
        for t in 0..<n {
            sumLogRatio += logRatio[t]
            sumRewardLogRatio += rewardLogRatio(t)
            total += logWeight[t]
        }
        var rho = 1.0
        var live = false
        if config.ratio == .sequence { (rho, live) = ratio(logRatio: total) }
        let differentiable =
            config.correction == .coefficient
            || (config.ratioGradient == .differentiable && config.ratio != .none)

        var loss = 0.0
        var amount = 0.0
        switch (config.placement, config.correction) {
        case (.loss, .none):
            let e = estimate(sumLogRatio, usesValue: differentiable, usesDerivative: true)
            reward[n - 1] = e.value
            loss = rho * e.value
            amount = rho * e.coefficientDerivative
            if differentiable && live { amount += rho * e.coefficientValue }
        case (.reward, .none):
            let e = estimate(sumRewardLogRatio, usesValue: true, usesDerivative: false)
            reward[n - 1] = e.coefficientValue
            amount = rho * e.coefficientValue
            for t in 0..<n { loss += amount * policy[t] }
        case (_, .coefficient):
            let c: Double
            if config.placement == .loss {
                let e = estimate(sumLogRatio, usesValue: false, usesDerivative: true)
                reward[n - 1] = e.value
                c = e.coefficientDerivative
            } else {
                let e = estimate(sumRewardLogRatio, usesValue: true, usesDerivative: false)
                reward[n - 1] = e.coefficientValue
                c = e.coefficientValue
            }
            let (value, carries) = clippedTerm(ratio: rho, coefficient: c)
            loss = value
            if carries && live { amount = rho * c }
        }
        for t in 0..<n { gradient[t] = amount }
        return loss
    }
}
