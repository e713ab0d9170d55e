import Foundation
import ReinRandom
import Testing

@testable import ReinReport

@Suite("Statistics")
struct StatisticsTests {
    @Test func studentQuantilesMatchTables() {
        // Values from standard t tables (R: qt(p, df)).
        let cases: [(p: Double, df: Double, t: Double)] = [
            (0.975, 1, 12.706204736), (0.975, 4, 2.776445105), (0.975, 10, 2.228138852),
            (0.8, 4, 0.940964577), (0.95, 30, 1.697260887), (0.975, 1e7, 1.959963985), (0.5, 3, 0),
        ]
        for c in cases {
            #expect(abs(Statistics.studentQuantile(c.p, df: c.df) - c.t) < 1e-6, "\(c)")
            #expect(abs(Statistics.studentQuantile(1 - c.p, df: c.df) + c.t) < 1e-6, "\(c)")
        }
        #expect(abs(Statistics.studentCDF(2.776445105, df: 4) - 0.975) < 1e-9)
    }

    @Test func meanAndStandardDeviation() {
        #expect(Statistics.mean([1, 2, 3, 4]) == 2.5)
        #expect(abs(Statistics.standardDeviation([2, 4, 4, 4, 5, 5, 7, 9]) - 2.138089935) < 1e-9)
        #expect(Statistics.standardDeviation([1]).isNaN)
        #expect(Statistics.quantile(sorted: [1, 2, 3, 4, 5], 0.25) == 2)
        #expect(Statistics.quantile(sorted: [0, 10], 0.3) == 3)
    }

    @Test func bootstrapIsDeterministicAndBracketsTheMean() {
        let xs = [0.31, 0.52, 0.47, 0.18, 0.66, 0.40]
        let a = Statistics.bootstrapMean(xs, seed: 7)
        let b = Statistics.bootstrapMean(xs, seed: 7)
        #expect(a == b)
        #expect(a.low < a.estimate && a.estimate < a.high)
        #expect(a.low >= xs.min()! && a.high <= xs.max()!)
        #expect(abs(a.estimate - Statistics.mean(xs)) < 1e-15)
        // A constant sample has a zero-width interval; one value too.
        let constant = Statistics.bootstrapMean([2, 2, 2, 2])
        #expect(constant.low == 2 && constant.high == 2)
        let one = Statistics.bootstrapMean([5])
        #expect(one.low == 5 && one.high == 5 && one.count == 1)
        #expect(Statistics.bootstrapMean([]).estimate.isNaN)
    }

    /// The percentile bootstrap of the mean covers the true mean at about the nominal 95 %: 400
    /// seeded samples of 20 normal and 20 exponential draws. Everything is seeded, so the
    /// coverage is one fixed number per distribution; the band [0.90, 0.975] holds what theory
    /// gives the percentile bootstrap at n = 20 (slightly under 95 %) and would catch an interval
    /// of the wrong width (a 90 % or 99 % interval, or one from the standard deviation instead of
    /// the standard error).
    @Test func bootstrapCoversAKnownMeanAtTheNominalRate() {
        var rng = SplitMix64(seed: 2026)
        let trials = 400
        var normalHits = 0
        var exponentialHits = 0
        for trial in 0..<trials {
            let normal = (0..<20).map { _ in 3 + 2 * rng.nextGaussian() }
            let exponential = (0..<20).map { _ in -log(1 - rng.nextUnit()) }  // mean 1
            if Statistics.bootstrapMean(normal, resamples: 1000, seed: UInt64(trial)).contains(3) {
                normalHits += 1
            }
            if Statistics.bootstrapMean(exponential, resamples: 1000, seed: UInt64(trial)).contains(1) {
                exponentialHits += 1
            }
        }
        let normalCoverage = Double(normalHits) / Double(trials)
        let exponentialCoverage = Double(exponentialHits) / Double(trials)
        #expect(normalCoverage >= 0.90 && normalCoverage <= 0.975, "normal coverage \(normalCoverage)")
        #expect(
            exponentialCoverage >= 0.88 && exponentialCoverage <= 0.975,
            "exponential coverage \(exponentialCoverage)")
    }

    @Test func pairedDifferenceRemovesTheSharedSeedEffect() {
        // b = a + 1 exactly: the paired difference is −1 with no spread, although a varies a lot.
        let a = [10.0, 50, 30, 70, 20]
        let b = a.map { $0 + 1 }
        let d = Statistics.pairedDifference(a, b)
        #expect(d.estimate == -1 && d.low == -1 && d.high == -1)
        #expect(d.excludesZero)
        let e = Statistics.pairedDifference([1, 2, 3], [1.5, 1.5, 3])
        #expect(abs(e.estimate - 0) < 1e-15 && e.contains(0))
    }

    @Test func minimalDetectableEffectFollowsItsFormula() {
        // (t_{4,0.975} + t_{4,0.80}) · sd / √5 = (2.776445 + 0.940965) / 2.236068 · sd.
        let mde = Statistics.minimalDetectableEffect(n: 5, sd: 1)
        #expect(abs(mde - 1.66247615) < 1e-7)
        #expect(abs(Statistics.minimalDetectableEffect(n: 5, sd: 0.02) - 0.02 * 1.66247615) < 1e-9)
        // Many pairs: the normal-theory (1.96 + 0.8416)·sd/√n.
        #expect(abs(Statistics.minimalDetectableEffect(n: 10_000, sd: 1) - 2.8016 / 100) < 2e-5)
        #expect(Statistics.minimalDetectableEffect(n: 1, sd: 1).isNaN)
    }

    @Test func lineFitOnATextbookExample() throws {
        // x = 1…5, y = 2 4 5 4 5: slope 0.6, intercept 2.2, SSE 2.4, R² 0.6, SE(slope) = √0.08.
        let fit = try #require(Statistics.fitLine(x: [1, 2, 3, 4, 5], y: [2, 4, 5, 4, 5]))
        #expect(abs(fit.slope.estimate - 0.6) < 1e-12)
        #expect(abs(fit.intercept - 2.2) < 1e-12)
        #expect(abs(fit.rSquared - 0.6) < 1e-12)
        let half = 3.182446305 * 0.08.squareRoot()
        #expect(abs(fit.slope.low - (0.6 - half)) < 1e-6)
        #expect(abs(fit.slope.high - (0.6 + half)) < 1e-6)
        #expect(fit.slope.contains(0))
        // The band is narrowest at x̄ and symmetric about it.
        let mid = fit.band(at: 3)
        #expect(abs(mid.estimate - 4) < 1e-12)
        #expect(abs(mid.high - mid.low - 2 * 3.182446305 * (2.4 / 3 / 5).squareRoot()) < 1e-6)
        #expect(
            abs((fit.band(at: 1).high - fit.band(at: 1).low) - (fit.band(at: 5).high - fit.band(at: 5).low))
                < 1e-9)
    }

    @Test func cooksDistancesMatchTheHatMatrixFormula() throws {
        // Reference: numpy, D_i = r_i² / (2 s²) · h_ii / (1 − h_ii)² with H = X (XᵀX)⁻¹ Xᵀ.
        let d = try #require(
            Statistics.cooksDistances(x: [0.1, 0.4, 0.9, 1.2, 1.6], y: [0, 0.01, -0.005, 0.02, 4.0]))
        let expected = [0.42148894, 0.0028404, 0.06548006, 0.31874433, 2.22934844]
        #expect(zip(d, expected).allSatisfy { abs($0 - $1) < 1e-7 })
        #expect(Statistics.cooksDistances(x: [0, 1, 2, 3], y: [1, 3, 5, 7]) == nil)  // an exact line
    }

    @Test func lineFitOfAnExactLineHasAZeroWidthInterval() throws {
        let fit = try #require(Statistics.fitLine(x: [0, 1, 2, 3], y: [1, 3, 5, 7]))
        #expect(abs(fit.slope.estimate - 2) < 1e-12 && abs(fit.slope.high - fit.slope.low) < 1e-9)
        #expect(fit.slope.excludesZero)
        #expect(Statistics.fitLine(x: [1, 1, 1], y: [1, 2, 3]) == nil)
        #expect(Statistics.fitLine(x: [1, 2], y: [1, 2]) == nil)
    }
}

@Suite("Statistics: t-interval")
struct TIntervalTests {
    @Test func tIntervalIsMeanPlusMinusTTimesStandardError() {
        // 1…5: mean 3, SD √2.5, t_{4,0.975} = 2.776445.
        let i = Statistics.tInterval([1, 2, 3, 4, 5])
        let half = 2.776445105 * 2.5.squareRoot() / 5.0.squareRoot()
        #expect(abs(i.low - (3 - half)) < 1e-8 && abs(i.high - (3 + half)) < 1e-8)
        // Two values: far wider than their range (t_{1,0.975} = 12.7), unlike the bootstrap.
        let two = Statistics.tInterval([1, 2])
        #expect(two.low < 1 - 5 && two.high > 2 + 5)
        let boot = Statistics.bootstrapMean([1, 2])
        #expect(boot.low >= 1 && boot.high <= 2)
        #expect(Statistics.tInterval([1]).low.isNaN)
    }
}
