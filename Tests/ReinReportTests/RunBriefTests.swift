import Foundation
import Rein
import ReinReport
import Testing

@Suite("Run brief (the demo's summary)")
struct RunBriefTests {
    func fixture(_ name: String) -> RunFolder {
        let path = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.appendingPathComponent(
            name
        ).path
        return try! RunFolder.existing(path)
    }

    /// run-lag4: k2-as-loss at an injected lag of 4 (lags 0, 1, 2, 3, 4, 4 over six steps), six
    /// tracker records with one lag bucket each.
    @Test func aStaleRunShowsItsFormsBiasBesideTheCorrectedForm() throws {
        let brief = try RunBrief(folder: fixture("run-lag4"))
        #expect(brief.steps == 6 && brief.lagMax == 4)
        #expect(abs(brief.lagMean - 14.0 / 6) < 1e-12)
        let bias = try #require(brief.bias)
        #expect(bias.form == "k2_loss" && bias.corrected == "k2_loss_sgw_token")
        // Position-weighted over the five buckets with lag > 0 (418 + 415 + 400 + 415 + 409
        // positions), computed independently from the fixture's tracker.jsonl.
        #expect(bias.positions == 2057 && bias.lags == 1...4)
        #expect(abs(bias.formError - 0.16858941688799342) < 1e-9)
        #expect(bias.correctedError < 1e-6)
        let lines = brief.lines
        // eval-start.json: 70% greedy, 55% sampled; eval.json: 70% greedy, 60% sampled.
        #expect(
            lines.first == "held-out accuracy (greedy): 70.0% → 70.0% (+0.0 points); sampled 55.0% → 60.0%")
        #expect(
            lines.contains {
                $0.hasPrefix("KL gradient bias at lags 1–4 (tracker, 2057 positions): k2_loss 16.9%")
            })
    }

    @Test func aFolderWrittenBeforeTheRunFolderHadOneSchemaStillBriefs() throws {
        let brief = try RunBrief(folder: fixture("main-single"))
        #expect(brief.ledger == SampleLedger(produced: 48, trained: 48))
        #expect(brief.lines.contains("ledger: \(brief.ledger!.summary)"))
        #expect(brief.steps == 6)
    }

    @Test func theCorrectedCounterpartIsTheSameEstimatorsCorrection() {
        #expect(RunBrief.correctedCounterpart(of: "k3_loss") == "k3_loss_w_token")
        #expect(RunBrief.correctedCounterpart(of: "k1_reward") == "k1_reward_sgW")
        #expect(RunBrief.correctedCounterpart(of: "k2_loss") == "k2_loss_sgw_token")
    }
}
