import Foundation
import ReinRandom

/// The statistics of the outcome experiment (float64, pure, deterministic): percentile-bootstrap
/// confidence intervals of a mean and of a paired difference, the minimal detectable effect of a
/// paired design, and an ordinary least-squares line with the confidence interval of its slope.
/// The ReinReport article's "Does the bias matter?" section states every formula.
public enum Statistics {
    /// A point estimate with a two-sided confidence interval.
    public struct Interval: Sendable, Codable, Hashable {
        /// The estimate (a mean, a mean difference, a slope).
        public var estimate: Double
        /// Lower end of the interval.
        public var low: Double
        /// Upper end of the interval.
        public var high: Double
        /// Observations behind it.
        public var count: Int

        /// An interval.
        public init(estimate: Double, low: Double, high: Double, count: Int) {
            self.estimate = estimate
            self.low = low
            self.high = high
            self.count = count
        }

        /// Whether `value` lies inside [low, high].
        public func contains(_ value: Double) -> Bool { low <= value && value <= high }

        /// Whether the interval lies entirely on one side of zero.
        public var excludesZero: Bool { !contains(0) }
    }

    /// The number of bootstrap resamples used unless told otherwise.
    public static let defaultResamples = 10_000

    /// The arithmetic mean (NaN for no values).
    public static func mean(_ xs: [Double]) -> Double {
        xs.isEmpty ? .nan : xs.reduce(0, +) / Double(xs.count)
    }

    /// The sample standard deviation (n − 1 in the denominator; NaN below two values).
    public static func standardDeviation(_ xs: [Double]) -> Double {
        guard xs.count >= 2 else { return .nan }
        let m = mean(xs)
        return (xs.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(xs.count - 1)).squareRoot()
    }

    /// The `q`-quantile of sorted values, linear interpolation between order statistics (R's type 7).
    public static func quantile(sorted xs: [Double], _ q: Double) -> Double {
        guard !xs.isEmpty else { return .nan }
        let h = Double(xs.count - 1) * min(max(q, 0), 1)
        let i = Int(h.rounded(.down))
        guard i + 1 < xs.count else { return xs[xs.count - 1] }
        return xs[i] + (h - Double(i)) * (xs[i + 1] - xs[i])
    }

    /// The percentile-bootstrap confidence interval of the mean: `resamples` resamples of `xs`
    /// with replacement drawn from SplitMix64(`seed`), the interval between the (1 − level)/2 and
    /// (1 + level)/2 quantiles of their means. The same inputs always give the same interval.
    /// One value gives a zero-width interval; none gives NaN.
    public static func bootstrapMean(
        _ xs: [Double], level: Double = 0.95, resamples: Int = defaultResamples, seed: UInt64 = 1
    ) -> Interval {
        let m = mean(xs)
        guard xs.count >= 2 else { return Interval(estimate: m, low: m, high: m, count: xs.count) }
        var rng = SplitMix64(seed: seed)
        let n = xs.count
        var means = [Double](repeating: 0, count: max(resamples, 1))
        for b in means.indices {
            var sum = 0.0
            for _ in 0..<n { sum += xs[Int(rng.next() % UInt64(n))] }
            means[b] = sum / Double(n)
        }
        means.sort()
        let tail = (1 - level) / 2
        return Interval(
            estimate: m, low: quantile(sorted: means, tail), high: quantile(sorted: means, 1 - tail),
            count: n)
    }

    /// The mean of the paired differences a[i] − b[i] with its percentile-bootstrap interval
    /// (pairs resampled together). `a` and `b` must have the same length.
    public static func pairedDifference(
        _ a: [Double], _ b: [Double], level: Double = 0.95, resamples: Int = defaultResamples,
        seed: UInt64 = 1
    ) -> Interval {
        precondition(a.count == b.count, "paired samples of different sizes")
        return bootstrapMean(zip(a, b).map { $0 - $1 }, level: level, resamples: resamples, seed: seed)
    }

    /// The Student-t interval of the mean: mean ± t_{n−1, (1+level)/2} · SD/√n. With few values
    /// it is wider than the percentile bootstrap (which for n = 2 is the range of the two values),
    /// so the outcome analysis calls an effect detected only when both exclude zero.
    /// One value or none gives NaN ends.
    public static func tInterval(_ xs: [Double], level: Double = 0.95) -> Interval {
        let m = mean(xs)
        guard xs.count >= 2 else { return Interval(estimate: m, low: .nan, high: .nan, count: xs.count) }
        let half =
            studentQuantile(1 - (1 - level) / 2, df: Double(xs.count - 1)) * standardDeviation(xs)
            / Double(xs.count).squareRoot()
        return Interval(estimate: m, low: m - half, high: m + half, count: xs.count)
    }

    /// The smallest true mean difference a paired design of `n` pairs detects with probability
    /// `power` in a two-sided test at level 1 − `level`, when the differences have standard
    /// deviation `sd`: MDE = (t_{n−1, 1−α/2} + t_{n−1, power}) · sd / √n, with α = 1 − level
    /// (the t-test's power approximation; 3.72·sd/√5 = 1.66·sd for 5 seeds at 95 % / 80 %).
    /// NaN below two pairs.
    public static func minimalDetectableEffect(n: Int, sd: Double, level: Double = 0.95, power: Double = 0.8)
        -> Double
    {
        guard n >= 2, sd.isFinite else { return .nan }
        let df = Double(n - 1)
        return (studentQuantile(1 - (1 - level) / 2, df: df) + studentQuantile(power, df: df)) * sd
            / Double(n).squareRoot()
    }

    /// An ordinary least-squares line y = intercept + slope·x.
    public struct LineFit: Sendable, Codable, Hashable {
        /// The slope with its t-interval (estimate ± t_{n−2} · SE).
        public var slope: Interval
        /// The intercept.
        public var intercept: Double
        /// Residual standard deviation s = √(Σ residual² / (n − 2)).
        public var residualSD: Double
        /// The coefficient of determination R².
        public var rSquared: Double
        /// Mean of x.
        public var meanX: Double
        /// Σ (x − x̄)².
        public var sxx: Double
        /// The t quantile of the intervals.
        public var t: Double

        enum CodingKeys: String, CodingKey {
            case slope, intercept
            case residualSD = "residual_sd"
            case rSquared = "r_squared"
            case meanX = "mean_x"
            case sxx, t
        }

        /// The fitted value at `x` with its confidence interval for the mean response:
        /// ŷ ± t · s · √(1/n + (x − x̄)²/Sxx).
        public func band(at x: Double) -> Interval {
            let y = intercept + slope.estimate * x
            let n = Double(slope.count)
            let half = t * residualSD * (1 / n + (x - meanX) * (x - meanX) / sxx).squareRoot()
            return Interval(estimate: y, low: y - half, high: y + half, count: slope.count)
        }
    }

    /// The least-squares line through (x, y) with the `level` confidence interval of its slope
    /// (Student t with n − 2 degrees of freedom). Nil with fewer than three points or when every
    /// x is the same.
    public static func fitLine(x: [Double], y: [Double], level: Double = 0.95) -> LineFit? {
        precondition(x.count == y.count, "x and y of different sizes")
        let n = x.count
        guard n >= 3 else { return nil }
        let mx = mean(x)
        let my = mean(y)
        var sxx = 0.0
        var sxy = 0.0
        var syy = 0.0
        for i in 0..<n {
            sxx += (x[i] - mx) * (x[i] - mx)
            sxy += (x[i] - mx) * (y[i] - my)
            syy += (y[i] - my) * (y[i] - my)
        }
        guard sxx > 0 else { return nil }
        let slope = sxy / sxx
        let intercept = my - slope * mx
        var sse = 0.0
        for i in 0..<n {
            let r = y[i] - intercept - slope * x[i]
            sse += r * r
        }
        let s = (sse / Double(n - 2)).squareRoot()
        let t = studentQuantile(1 - (1 - level) / 2, df: Double(n - 2))
        let half = t * s / sxx.squareRoot()
        return LineFit(
            slope: Interval(estimate: slope, low: slope - half, high: slope + half, count: n),
            intercept: intercept, residualSD: s, rSquared: syy > 0 ? 1 - sse / syy : 1, meanX: mx, sxx: sxx,
            t: t)
    }

    /// Cook's distance of each point of the least-squares line through (x, y): how far the fitted
    /// line moves when the point is left out, D_i = r_i² / (2 s²) · h_i / (1 − h_i)², with r_i the
    /// residual, s² = Σ r² / (n − 2) and the leverage h_i = 1/n + (x_i − x̄)² / Sxx. Nil when
    /// ``fitLine(x:y:level:)`` is, or when the line fits every point exactly.
    public static func cooksDistances(x: [Double], y: [Double]) -> [Double]? {
        guard let fit = fitLine(x: x, y: y), fit.residualSD > 0 else { return nil }
        let n = Double(x.count)
        let s2 = fit.residualSD * fit.residualSD
        return zip(x, y).map { xi, yi in
            let r = yi - fit.intercept - fit.slope.estimate * xi
            let h = 1 / n + (xi - fit.meanX) * (xi - fit.meanX) / fit.sxx
            return r * r / (2 * s2) * h / ((1 - h) * (1 - h))
        }
    }

    // MARK: Distributions

    /// The Student t distribution function P(T ≤ t) with `df` degrees of freedom.
    public static func studentCDF(_ t: Double, df: Double) -> Double {
        let x = df / (df + t * t)
        let tail = 0.5 * regularizedBeta(x, a: df / 2, b: 0.5)
        return t >= 0 ? 1 - tail : tail
    }

    /// The `p`-quantile of Student's t with `df` degrees of freedom (bisection on ``studentCDF``
    /// to 1e-12).
    public static func studentQuantile(_ p: Double, df: Double) -> Double {
        guard p > 0, p < 1 else { return p <= 0 ? -.infinity : .infinity }
        var lo = -1.0
        var hi = 1.0
        while studentCDF(lo, df: df) > p { lo *= 2 }
        while studentCDF(hi, df: df) < p { hi *= 2 }
        for _ in 0..<200 where hi - lo > 1e-12 {
            let mid = (lo + hi) / 2
            if studentCDF(mid, df: df) < p { lo = mid } else { hi = mid }
        }
        return (lo + hi) / 2
    }

    /// The regularised incomplete beta function I_x(a, b) (continued fraction, Lentz's method).
    static func regularizedBeta(_ x: Double, a: Double, b: Double) -> Double {
        guard x > 0 else { return 0 }
        guard x < 1 else { return 1 }
        let logGammas: Double = lgamma(a + b) - lgamma(a) - lgamma(b)
        let logPowers: Double = a * log(x) + b * log(1 - x)
        let logFront = logGammas + logPowers
        // The continued fraction converges fast for x < (a + 1)/(a + b + 2); use symmetry otherwise.
        if x > (a + 1) / (a + b + 2) { return 1 - regularizedBeta(1 - x, a: b, b: a) }
        let tiny = 1e-300
        var c = 1.0
        var d = 1 - (a + b) * x / (a + 1)
        if abs(d) < tiny { d = tiny }
        d = 1 / d
        var h = d
        for m in 1...500 {
            let mm = Double(m)
            let evenDenominator: Double = (a + 2 * mm - 1) * (a + 2 * mm)
            let even: Double = mm * (b - mm) * x / evenDenominator
            d = 1 + even * d
            if abs(d) < tiny { d = tiny }
            c = 1 + even / c
            if abs(c) < tiny { c = tiny }
            d = 1 / d
            h *= d * c
            let oddDenominator: Double = (a + 2 * mm) * (a + 2 * mm + 1)
            let odd: Double = -(a + mm) * (a + b + mm) * x / oddDenominator
            d = 1 + odd * d
            if abs(d) < tiny { d = tiny }
            c = 1 + odd / c
            if abs(c) < tiny { c = tiny }
            d = 1 / d
            let delta = d * c
            h *= delta
            if abs(delta - 1) < 1e-15 { break }
        }
        return exp(logFront) * h / a
    }
}
