import Foundation
import ReinKL
import Testing

/// §7 items 22–23: value-level Monte Carlo and group centring.
@Suite("kl-gradients §7: values and group centring")
struct ValuePropertyTests {
    /// Sample standard deviations of k1 and k3 for KL(q‖p), p = N(0, 1), x ~ q = N(m, s²).
    func standardDeviations(mean m: Double, sd s: Double, seed: UInt64, count: Int) -> (
        k1: Double, k3: Double
    ) {
        var rng = SeededGenerator(seed: seed)
        var sums = [0.0, 0.0, 0.0, 0.0]
        for _ in 0..<count {
            let x = m + s * rng.nextGaussian()
            let logQ = -0.5 * ((x - m) / s) * ((x - m) / s) - log(s)
            let logP = -0.5 * x * x
            let l = logQ - logP
            let k1 = KLEstimator.k1.value(l)
            let k3 = KLEstimator.k3.value(l)
            sums[0] += k1
            sums[1] += k1 * k1
            sums[2] += k3
            sums[3] += k3 * k3
        }
        let n = Double(count)
        return (
            (sums[1] / n - (sums[0] / n) * (sums[0] / n)).squareRoot(),
            (sums[3] / n - (sums[2] / n) * (sums[2] / n)).squareRoot()
        )
    }

    @Test(
        "22. p = N(0,1), q = N(0.1, 0.2²): k3's sample std is unstable and far above k1's (≈ 0.68); Var(k3) finite iff σ_q² > σ_p²/2"
    )
    func property22() {
        let heavy = (1...4).map { standardDeviations(mean: 0.1, sd: 0.2, seed: UInt64($0), count: 100_000) }
        for run in heavy {
            #expect(abs(run.k1 - 0.68) < 0.02)
            #expect(run.k3 > 4 * run.k1)
        }
        let k3s = heavy.map(\.k3)
        #expect(k3s.max()! / k3s.min()! > 1.5, "unstable across seeds: \(k3s)")
        // σ_q = 1.2: finite variance (and fourth moment), stable across seeds.
        let light = (1...4).map { standardDeviations(mean: 0.1, sd: 1.2, seed: UInt64($0), count: 100_000) }
            .map(\.k3)
        #expect(light.max()! / light.min()! < 1.1, "stable: \(light)")
        // The condition itself: E_q[(p/q)²] = ∫p²/q is finite iff σ_q² > σ_p²/2 — its integrand
        // decays iff 1/σ_p² − 1/(2σ_q²) > 0; check the integral over growing ranges.
        func integral(_ s: Double, _ range: Double) -> Double {
            var total = 0.0
            let h = 0.01
            var x = -range
            while x <= range {
                let logP = -0.5 * x * x - 0.5 * log(2 * Double.pi)
                let logQ = -0.5 * ((x - 0.1) / s) * ((x - 0.1) / s) - log(s) - 0.5 * log(2 * Double.pi)
                total += exp(2 * logP - logQ) * h
                x += h
            }
            return total
        }
        #expect(integral(0.2, 8) > 1e3 * integral(0.2, 4))
        #expect(abs(integral(0.9, 12) - integral(0.9, 8)) < 1e-9)
        #expect(abs(integral(0.72, 60) - integral(0.72, 40)) < 1e-9)  // σ² = 0.518 > 0.5
        #expect(integral(0.70, 16) > 1.5 * integral(0.70, 8))  // σ² = 0.49 < 0.5
    }

    @Test("23. Group centring with n = 3: mean centring gives (1 − 1/n)·∇RKL, leave-one-out gives ∇RKL")
    func property23() throws {
        for seed in 0..<4 {
            let p = try onPolicy(vocab: 4, length: 1, seed: seed)
            let rkl = Truth(p).reverseKL[0]
            let lp = oracleLogSoftmax(p.theta[0])
            let lr = oracleLogSoftmax(p.reference[0])
            let probabilities = lp.map { exp($0) }
            let n = 3
            for mode in [KLGroupCentering.mean, .leaveOneOut] {
                var g = [Double](repeating: 0, count: 4)
                for a in 0..<4 {
                    for b in 0..<4 {
                        for c in 0..<4 {
                            let ys = [a, b, c]
                            let weight = ys.reduce(1) { $0 * probabilities[$1] }
                            let kl = ys.map { lp[$0] - lr[$0] }  // k1 in reward
                            let centred = try mode.centre(kl, groupSize: n)
                            for i in 0..<n {
                                for v in 0..<4 {
                                    let score = (v == ys[i] ? 1 : 0) - probabilities[v]
                                    g[v] += weight * centred[i] * score / Double(n)
                                }
                            }
                        }
                    }
                }
                let factor = mode == .mean ? 1 - 1 / Double(n) : 1
                expectClose(g, rkl.map { factor * $0 }, tolerance: fdTolerance, "\(mode)")
            }
        }
    }
}
