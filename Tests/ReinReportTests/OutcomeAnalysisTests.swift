import Foundation
import Testing

@testable import ReinReport

#if canImport(FoundationXML)
    import FoundationXML
#endif

@Suite("Outcome analysis")
struct OutcomeAnalysisTests {
    /// A record with the given outcome (everything else fixed).
    func record(
        _ form: String, lag: Int, seed: Int, kl: Double, accuracy: Double = 0.8, bias: Double? = nil,
        rewardSD: Double = 0.1
    ) -> OutcomeRecord {
        var r = try! OutcomeRecord.decode(
            Data(
                """
                {"schema_version":1,"form":"x","lag":0,"seed":0,"steps":10,"beta":0.1,"final_kl":0,
                 "kl_trajectory":[[5,0.01],[10,0.02]],"final_entropy":0.5,"reward_sd":0.1,"seconds":0}
                """.utf8))
        r.form = form
        r.lag = lag
        r.seed = seed
        r.finalKL = kl
        r.greedyAccuracy = accuracy
        r.trackerBias = form == "no_kl" ? nil : bias
        r.rewardSD = rewardSD
        return r
    }

    /// A design where the seed shifts every form's KL by the same amount (so only paired
    /// differences see the form effects), naive k2 drifts 0.01 above sg(w)·k2 at lag 4 only,
    /// and no KL ends far above every regularised form.
    func design() -> [OutcomeRecord] {
        let seedShift: [Int: Double] = [1: 0.00, 2: 0.05, 3: -0.03, 4: 0.02, 5: 0.04]
        var out: [OutcomeRecord] = []
        for seed in 1...5 {
            let s = seedShift[seed]!
            let jitter = 0.001 * Double(seed % 3)
            for lag in [0, 4] {
                out.append(record("no_kl", lag: lag, seed: seed, kl: 0.5 + s))
                out.append(record("k1_loss", lag: lag, seed: seed, kl: 0.5 + s + jitter - 0.001, bias: 1))
                out.append(
                    record(
                        "k2_loss", lag: lag, seed: seed, kl: 0.1 + s + (lag == 4 ? 0.01 + jitter : 0),
                        bias: lag == 4 ? 0.3 : 0))
                out.append(record("k2_loss_sgw_token", lag: lag, seed: seed, kl: 0.1 + s, bias: 0))
                out.append(
                    record(
                        "k3_loss", lag: lag, seed: seed, kl: 0.2 + s + jitter, bias: 0.5,
                        rewardSD: 0.1 + jitter))
            }
        }
        return out
    }

    @Test func pairedComparisonsSeeTheEffectThroughTheSeedSpread() throws {
        let a = try #require(OutcomeAnalysis(records: design(), resamples: 2000))
        let lag4 = try #require(
            a.comparisons.first { $0.naive == "k2_loss" && $0.lag == 4 && $0.metric == .finalKL })
        #expect(lag4.detected && lag4.difference.low > 0.009 && lag4.difference.high < 0.013)
        #expect(abs(lag4.difference.estimate - 0.0112) < 1e-12)
        let lag0 = try #require(
            a.comparisons.first { $0.naive == "k2_loss" && $0.lag == 0 && $0.metric == .finalKL })
        #expect(!lag0.detected && lag0.difference.estimate == 0 && lag0.differenceSD == 0)
        // The unpaired cell intervals overlap (the seed spread is 0.08), the paired one does not.
        let naive = try #require(a.cells.first { $0.form == "k2_loss" && $0.lag == 4 }?.outcomes["final_kl"])
        let corrected = try #require(
            a.cells.first { $0.form == "k2_loss_sgw_token" && $0.lag == 4 }?.outcomes["final_kl"])
        #expect(naive.low < corrected.high)
        // MDE of the paired design: (t_{4,.975} + t_{4,.80})/√5 × SD of the differences.
        let sd = Statistics.standardDeviation([1, 2, 3, 4, 5].map { 0.01 + 0.001 * Double($0 % 3) })
        #expect(abs(lag4.minimalDetectableEffect - 1.66247615 * sd) < 1e-8)
        // No comparison where a form is missing (k3_loss_w_token, k1_reward).
        #expect(a.comparisons.allSatisfy { $0.naive == "k2_loss" })
    }

    @Test func claimsGetVerdictsFromTheIntervals() throws {
        let a = try #require(OutcomeAnalysis(records: design(), resamples: 2000))
        func verdict(_ prefix: String) -> OutcomeAnalysis.Claim.Verdict? {
            a.claims.first { $0.claim.hasPrefix(prefix) }?.verdict
        }
        // k1_loss − no_kl is −0.001, 0 or +0.001 (interval holds 0) while no_kl − k2_loss is 0.4.
        #expect(verdict("k1 as loss") == .agreed)
        #expect(verdict("k2 and k3 as loss both constrain") == .agreed)
        #expect(verdict("k2 as loss keeps") == .agreed)
        // Reward SD: k3 − k2 is the jitter (0 to 0.002), never below 0.
        #expect(verdict("k2 as loss gives a lower reward variance") != .refuted)
        // Reversed: k3 closer than k2 refutes the claim.
        let flipped = design().map { r -> OutcomeRecord in
            var r = r
            if r.form == "k3_loss" { r.finalKL -= 0.2 }
            return r
        }
        let b = try #require(OutcomeAnalysis(records: flipped, resamples: 2000))
        #expect(b.claims.first { $0.claim.hasPrefix("k2 as loss keeps") }?.verdict == .refuted)
    }

    @Test func trackerBiasPredictsTheGapWhenTheyMoveTogether() throws {
        let a = try #require(OutcomeAnalysis(records: design(), resamples: 500))
        let kl = try #require(a.predictions.first { $0.metric == .finalKL })
        // The baseline (sg(w)·k2 at the same lag) and no KL are left out: 6 cells.
        #expect(kl.points.count == 6 && kl.baseline == "k2_loss_sgw_token at the same lag")
        #expect(!kl.points.contains { $0.form == "no_kl" || $0.form == "k2_loss_sgw_token" })
        let naive = try #require(kl.points.first { $0.form == "k2_loss" && $0.lag == 4 })
        #expect(abs(naive.bias - 0.3) < 1e-12 && abs(naive.gap - 0.0112) < 1e-12)
        let k1 = try #require(kl.points.first { $0.form == "k1_loss" && $0.lag == 0 })
        #expect(abs(k1.bias - 1) < 1e-12 && abs(k1.gap - 0.4002) < 1e-12)
        let fit = try #require(kl.fit)
        #expect(fit.slope.excludesZero && fit.slope.estimate > 0)
    }

    /// Eight cells with no relation and one far out (like k1 as loss at lag 16): the full line's
    /// slope excludes 0, but the relation is that one cell's, and the analysis says so.
    @Test func aRelationThatOneCellCarriesIsNotAPrediction() throws {
        let cells: [(form: String, lag: Int, bias: Double, gap: Double)] = [
            ("k2_loss", 0, 0.1, 0.01), ("k2_loss", 4, 0.2, -0.01), ("k2_loss", 16, 0.3, 0.01),
            ("k3_loss", 0, 0.4, -0.01), ("k3_loss", 4, 0.5, 0.01), ("k3_loss", 16, 0.6, -0.01),
            ("k1_loss", 0, 0.7, 0.01), ("k1_loss", 4, 0.8, -0.01), ("k1_loss", 16, 3.0, 1.0),
        ]
        var records: [OutcomeRecord] = []
        for seed in 1...2 {
            for lag in [0, 4, 16] {
                records.append(record("k2_loss_sgw_token", lag: lag, seed: seed, kl: 0.1, bias: 0))
            }
            for c in cells {
                records.append(record(c.form, lag: c.lag, seed: seed, kl: 0.1 + c.gap, bias: c.bias))
            }
        }
        let a = try #require(OutcomeAnalysis(records: records, resamples: 200))
        let kl = try #require(a.predictions.first { $0.metric == .finalKL })
        let fit = try #require(kl.fit)
        #expect(fit.slope.excludesZero && fit.slope.estimate > 0)
        let influence = try #require(kl.mostInfluential)
        #expect(influence.point.form == "k1_loss" && influence.point.lag == 16)
        #expect(try #require(influence.fitWithout).slope.contains(0))
        #expect(!kl.predicts)
        // The design of the test above, where every cell moves with the bias, still predicts.
        let together = try #require(OutcomeAnalysis(records: design(), resamples: 500))
        #expect(together.predictions.first { $0.metric == .finalKL }?.predicts == true)
    }

    @Test func noAnalysisWithoutReplicatedCells() {
        #expect(OutcomeAnalysis(records: [record("k2_loss", lag: 0, seed: 1, kl: 0.1)]) == nil)
        #expect(OutcomeAnalysis(records: []) == nil)
        // The same run twice is one seed, not two.
        let twice = [
            record("k2_loss", lag: 0, seed: 1, kl: 0.1), record("k2_loss", lag: 0, seed: 1, kl: 0.1),
        ]
        #expect(OutcomeAnalysis(records: twice) == nil)
    }

    @Test func aDesignWithoutTheClaimsFormsSaysWhyTheTableIsEmpty() throws {
        let corrected = design().filter { $0.form == "k2_loss_sgw_token" }
        let a = try #require(OutcomeAnalysis(records: corrected, resamples: 100))
        #expect(a.claims.isEmpty)
        let html = HTML.outcomeSection(a)
        #expect(html.contains("No claim can be judged"))
        #expect(!HTML.outcomeSection(OutcomeAnalysis(records: design(), resamples: 100)).contains("No claim"))
    }

    @Test func trajectoriesAverageTheSeeds() throws {
        let a = try #require(OutcomeAnalysis(records: design(), resamples: 100))
        let t = try #require(a.trajectories.first { $0.form == "no_kl" && $0.lag == 0 })
        #expect(t.points.map { $0[0] } == [5, 10])
        #expect(abs(t.points[0][1] - 0.01) < 1e-15 && abs(t.points[1][1] - 0.02) < 1e-15)
    }

    @Test func theSectionIsWellFormedXHTML() throws {
        var document = ReportDocument(runs: [])
        document.outcome = OutcomeAnalysis(records: design(), resamples: 200)
        let html = HTML.page(document, title: "outcome")
        #expect(html.contains("<h2>Does the bias matter?</h2>"))
        #expect(html.contains("no detectable effect at this power") && html.contains("detected"))
        #expect(html.contains("Coefficient curves (the seed paper"))
        let parser = XMLParser(data: Data(html.utf8))
        let check = XMLCheck()
        parser.delegate = check
        #expect(parser.parse(), "\(String(describing: check.error))")
        #expect(check.elements["polygon", default: 0] >= 1, "a confidence band")
    }
}

@Suite("Chart axes")
struct ChartAxisTests {
    @Test func aLogAxisOnlyWhenPositiveValuesSpanDecades() {
        #expect(SVG.spansDecades([0.03, 0.05, 4.2]))
        #expect(!SVG.spansDecades([0.03, 0.05, 0.09]))
        #expect(!SVG.spansDecades([0, 0.05, 4.2]), "0 has no place on a log axis")
        #expect(!SVG.spansDecades([]))
    }

    @Test func aLogIntervalChartLabelsDecadesAndKeepsEveryMarker() {
        let i = { (v: Double) in Statistics.Interval(estimate: v, low: v * 0.9, high: v * 1.1, count: 5) }
        let svg = SVG.intervalChart(
            title: "t", yLabel: "y", categories: ["a", "b"],
            series: [(name: "s", values: [i(0.03), i(4.2)])],
            logY: true)
        #expect(svg.contains(">0.1</text>") && svg.contains(">1</text>"))
        #expect(svg.components(separatedBy: "<circle").count - 1 == 2 + 1, "two markers and a legend dot")
    }
}
