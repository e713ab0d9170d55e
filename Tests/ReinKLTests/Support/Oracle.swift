import Foundation
import ReinKL

// An implementation of the quantities under test that shares no code with ReinKL's gradient
// paths: values only (KL divergences, literal surrogate losses with sg(·) written as "evaluate at
// the frozen parameters"), and gradients by central finite differences.

/// Log-softmax written out independently of ReinKL.
func oracleLogSoftmax(_ z: [Double]) -> [Double] {
    let m = z.max()!
    let s = z.reduce(0) { $0 + exp($1 - m) }
    return z.map { $0 - m - log(s) }
}

/// Central finite-difference gradient of `f` over a table of logits.
func finiteDifference(
    _ x: [[Double]], step h: Double = 1e-5, _ f: ([[Double]]) -> Double
) -> [[Double]] {
    var g = x.map { $0.map { _ in 0.0 } }
    var y = x
    for r in x.indices {
        for c in x[r].indices {
            y[r][c] = x[r][c] + h
            let plus = f(y)
            y[r][c] = x[r][c] - h
            let minus = f(y)
            y[r][c] = x[r][c]
            g[r][c] = (plus - minus) / (2 * h)
        }
    }
    return g
}

/// Central finite-difference gradient of `f` over a vector.
func finiteDifference(_ x: [Double], step h: Double = 1e-6, _ f: ([Double]) -> Double) -> [Double] {
    finiteDifference([x], step: h) { f($0[0]) }[0]
}

/// A tabular policy enumerated by recursion (not by ReinKL's odometer).
struct OracleTabular {
    var vocab: Int
    var length: Int
    var behaviourLogits: [[Double]]
    var referenceLogits: [[Double]]

    init(_ p: TabularPolicy) {
        vocab = p.vocab
        length = p.length
        behaviourLogits = p.behaviour
        referenceLogits = p.reference
    }

    /// Row of a prefix, written independently: rows of shorter prefixes come first.
    func row(_ prefix: [Int]) -> Int {
        var offset = 0
        for k in 0..<prefix.count { offset += Int(pow(Double(vocab), Double(k))) }
        return offset + prefix.reduce(0) { $0 * vocab + $1 }
    }

    /// All sequences.
    var sequences: [[Int]] {
        var result: [[Int]] = [[]]
        for _ in 0..<length {
            result = result.flatMap { s in (0..<vocab).map { s + [$0] } }
        }
        return result
    }

    /// All prefixes of length < T with their row.
    var prefixes: [[Int]] {
        var result: [[Int]] = []
        var level: [[Int]] = [[]]
        for _ in 0..<length {
            result += level
            level = level.flatMap { s in (0..<vocab).map { s + [$0] } }
        }
        return result
    }

    /// Per-token log-probabilities of `y` under a logit table.
    func logProbs(_ table: [[Double]], _ y: [Int]) -> [Double] {
        (0..<y.count).map { t in oracleLogSoftmax(table[row(Array(y[..<t]))])[y[t]] }
    }

    /// Probability of every prefix under a logit table.
    func prefixProbability(_ table: [[Double]], _ prefix: [Int]) -> Double {
        exp(logProbs(table, prefix).reduce(0, +))
    }

    /// KL(π_θ‖π_ref) over sequences, as a function of θ.
    func reverseKL(_ theta: [[Double]]) -> Double {
        sequences.reduce(0) { acc, y in
            let lp = logProbs(theta, y).reduce(0, +)
            let lr = logProbs(referenceLogits, y).reduce(0, +)
            return acc + exp(lp) * (lp - lr)
        }
    }

    /// KL(π_ref‖π_θ) over sequences.
    func forwardKL(_ theta: [[Double]]) -> Double {
        sequences.reduce(0) { acc, y in
            let lp = logProbs(theta, y).reduce(0, +)
            let lr = logProbs(referenceLogits, y).reduce(0, +)
            return acc + exp(lr) * (lr - lp)
        }
    }

    /// KL(μ‖π_θ) over sequences.
    func behaviourToPolicyKL(_ theta: [[Double]]) -> Double {
        sequences.reduce(0) { acc, y in
            let lp = logProbs(theta, y).reduce(0, +)
            let lm = logProbs(behaviourLogits, y).reduce(0, +)
            return acc + exp(lm) * (lm - lp)
        }
    }

    /// KL(π_θ‖μ) over sequences.
    func policyToBehaviourKL(_ theta: [[Double]]) -> Double {
        sequences.reduce(0) { acc, y in
            let lp = logProbs(theta, y).reduce(0, +)
            let lm = logProbs(behaviourLogits, y).reduce(0, +)
            return acc + exp(lp) * (lp - lm)
        }
    }

    /// E_{π_θ}[Σ_t ½ℓ_t²] (the value of token-level k2 under its own policy).
    func expectedK2(_ theta: [[Double]]) -> Double {
        sequences.reduce(0) { acc, y in
            let lp = logProbs(theta, y)
            let lr = logProbs(referenceLogits, y)
            let k2 = zip(lp, lr).reduce(0) { $0 + 0.5 * ($1.0 - $1.1) * ($1.0 - $1.1) }
            return acc + exp(lp.reduce(0, +)) * k2
        }
    }

    /// Σ_s P₀(s)·D_s(θ) with the prefix weights frozen at θ₀: D = per-position KL(π_θ‖π_ref)
    /// (`reverse`) or KL(π_ref‖π_θ).
    func frozenPrefixKL(theta0: [[Double]], reverse: Bool) -> ([[Double]]) -> Double {
        let weights = prefixes.map { (row($0), prefixProbability(theta0, $0)) }
        return { theta in
            weights.reduce(0) { acc, item in
                let lp = oracleLogSoftmax(theta[item.0])
                let lr = oracleLogSoftmax(referenceLogits[item.0])
                var d = 0.0
                for v in 0..<vocab {
                    d += reverse ? exp(lp[v]) * (lp[v] - lr[v]) : exp(lr[v]) * (lr[v] - lp[v])
                }
                return acc + item.1 * d
            }
        }
    }

    /// E_{y~sampler}[∇_θ S(y)] where S is a surrogate of (live log π_θ(y_t), frozen log π_θ(y_t),
    /// log μ(y_t), log π_ref(y_t)); the sampling weights and frozen values are held at θ₀.
    func surrogateGradient(
        theta0: [[Double]], sampler: [[Double]]? = nil,
        _ surrogate: (_ live: [Double], _ frozen: [Double], _ mu: [Double], _ ref: [Double]) -> Double
    ) -> [[Double]] {
        let samplerTable = sampler ?? behaviourLogits
        let fixed = sequences.map { y in
            (
                y, exp(logProbs(samplerTable, y).reduce(0, +)), logProbs(theta0, y),
                logProbs(behaviourLogits, y), logProbs(referenceLogits, y)
            )
        }
        return finiteDifference(theta0) { theta in
            fixed.reduce(0) { acc, item in
                acc + item.1 * surrogate(logProbs(theta, item.0), item.2, item.3, item.4)
            }
        }
    }
}

/// Independent estimator formulas (k and dk/dℓ).
func oracleK(_ estimator: KLEstimator, _ l: Double) -> Double {
    switch estimator {
    case .k1: return l
    case .k2: return l * l / 2
    case .k3: return exp(-l) - 1 + l
    }
}

func oracleKPrime(_ estimator: KLEstimator, _ l: Double) -> Double {
    switch estimator {
    case .k1: return 1
    case .k2: return l
    case .k3: return 1 - exp(-l)
    }
}

/// The literal surrogate loss of one sequence for a configuration (unnormalised), with sg(x)
/// evaluated at the frozen log-probabilities. Coefficient bounding (a straight-through
/// construction) is written as the first-order surrogate whose value is the true value and whose
/// derivative is the bounded coefficient.
func oracleSurrogate(
    _ c: KLConfiguration, live: [Double], frozen: [Double], mu: [Double], ref: [Double]
) -> Double {
    let n = live.count
    func clampValue(_ v: Double) -> (Double, Bool) {
        guard let clamp = c.valueClamp, abs(v) > clamp else { return (v, false) }
        return (v > 0 ? clamp : -clamp, true)
    }
    func bounded(_ v: Double) -> Double {
        guard let bound = c.coefficientBound else { return v }
        return min(max(v, -bound), bound)
    }
    func capped(_ r: Double) -> Double { c.ratioCap.map { min(r, $0) } ?? r }
    // Ratios of term t from log-probabilities x.
    func ratio(_ x: [Double], _ t: Int) -> Double {
        let w = (0..<n).map { exp(x[$0] - mu[$0]) }
        switch c.ratio {
        case .none: return 1
        case .token: return capped(w[t])
        case .prefix: return capped(w[0...t].reduce(1, *))
        case .sequence: return capped(w.reduce(1, *))
        }
    }
    func ppo(_ rho: Double, _ coef: Double) -> Double {
        var value = rho * coef
        if let clip = c.clip {
            value = max(value, min(max(rho, 1 - clip.low), 1 + clip.high) * coef)
            if let dual = c.dualClip, coef > 0 { value = min(value, dual * coef) }
        }
        return value
    }
    let source: (Int) -> Double = { t in
        c.rewardSource == .policy ? frozen[t] - ref[t] : mu[t] - ref[t]
    }
    switch c.level {
    case .token:
        // Frozen per-token KL rewards and their aggregation.
        let q = (0..<n).map { bounded(clampValue(oracleK(c.estimator, source($0))).0) }
        let aggregated: [Double] = (0..<n).map { t in
            switch c.reward {
            case .toGo: return q[t...].reduce(0, +)
            case .sum: return q.reduce(0, +)
            case .own: return q[t]
            }
        }
        var loss = 0.0
        for t in 0..<n {
            switch (c.placement, c.correction) {
            case (.reward, .none):
                loss += ratio(frozen, t) * aggregated[t] * live[t]
            case (.loss, .none):
                let rhoLive = c.ratioGradient == .differentiable ? ratio(live, t) : ratio(frozen, t)
                if c.coefficientBound == nil {
                    loss += rhoLive * clampValue(oracleK(c.estimator, live[t] - ref[t])).0
                } else {
                    let l0 = frozen[t] - ref[t]
                    let (v0, clamped) = clampValue(oracleK(c.estimator, l0))
                    let d0 = clamped ? 0 : oracleKPrime(c.estimator, l0)
                    let rho0 = ratio(frozen, t)
                    loss +=
                        rho0 * v0 + (rhoLive - rho0) * bounded(v0) + rho0 * bounded(d0)
                        * (live[t] - frozen[t])
                }
            case (_, .coefficient):
                let coef: Double
                if c.placement == .loss {
                    let l0 = frozen[t] - ref[t]
                    let (_, clamped) = clampValue(oracleK(c.estimator, l0))
                    coef = bounded(clamped ? 0 : oracleKPrime(c.estimator, l0))
                } else {
                    coef = aggregated[t]
                }
                loss += ppo(ratio(live, t), coef)
            }
        }
        return loss
    case .sequence:
        let sumLive = (0..<n).reduce(0) { $0 + live[$1] - ref[$1] }
        let sumFrozen = (0..<n).reduce(0) { $0 + frozen[$1] - ref[$1] }
        let sumSource = (0..<n).reduce(0) { $0 + source($1) }
        let rho: (Double, Double) = c.ratio == .sequence ? (ratio(live, n - 1), ratio(frozen, n - 1)) : (1, 1)
        switch (c.placement, c.correction) {
        case (.reward, .none):
            let q = bounded(clampValue(oracleK(c.estimator, sumSource)).0)
            return rho.1 * q * live.reduce(0, +)
        case (.loss, .none):
            let rhoLive = c.ratioGradient == .differentiable ? rho.0 : rho.1
            if c.coefficientBound == nil {
                return rhoLive * clampValue(oracleK(c.estimator, sumLive)).0
            }
            let (v0, clamped) = clampValue(oracleK(c.estimator, sumFrozen))
            let d0 = clamped ? 0 : oracleKPrime(c.estimator, sumFrozen)
            return rho.1 * v0 + (rhoLive - rho.1) * bounded(v0) + rho.1 * bounded(d0) * (sumLive - sumFrozen)
        case (_, .coefficient):
            let coef: Double
            if c.placement == .loss {
                let (_, clamped) = clampValue(oracleK(c.estimator, sumFrozen))
                coef = bounded(clamped ? 0 : oracleKPrime(c.estimator, sumFrozen))
            } else {
                coef = bounded(clampValue(oracleK(c.estimator, sumSource)).0)
            }
            return ppo(rho.0, coef)
        }
    }
}

/// The oracle's expected gradient of a configuration under μ for a tabular policy.
func oracleExpectedGradient(_ c: KLConfiguration, _ p: TabularPolicy) -> [[Double]] {
    let scale: Double = c.normalization == .sum ? 1 : 1 / Double(p.length)
    return OracleTabular(p).surrogateGradient(theta0: p.theta) { live, frozen, mu, ref in
        scale * oracleSurrogate(c, live: live, frozen: frozen, mu: mu, ref: ref)
    }
}
