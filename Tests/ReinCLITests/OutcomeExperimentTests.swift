import Foundation
import Rein
import ReinModel
import ReinReport
import ReinTasks
import Testing

@Suite("rein experiment outcome")
struct OutcomeExperimentTests {
    /// `--quick` on a tiny fixture: every run writes its record and the report holds the paired
    /// comparison; a second invocation skips the finished runs and redoes the one whose record
    /// was removed.
    @Test func quickRunsWriteRecordsAndResume() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent(
            "rein-outcome-\(UUID().uuidString)"
        ).path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let tiny = [
            "threads=1", "model.context=16", "model.d_model=16", "model.layers=1", "model.heads=2",
            "task.train_size=200", "task.held_out_size=50", "train.prompts_per_step=2", "train.group_size=4",
            "train.eval_size=10", "train.reference=\(dir)/ref.safetensors",
        ]
        var config = RunConfig()
        config.model.context = 16
        config.model.dModel = 16
        config.model.layers = 1
        config.model.heads = 2
        try Checkpoint.save(
            try GPTParameters(config: config.gptConfig(vocab: Tokenizer.standard.vocabSize), seed: 2),
            to: dir + "/ref.safetensors")
        let arguments =
            [
                "experiment", "outcome", "--quick", "--steps", "2", "--forms", "k2_loss,k2_loss_sgw_token",
                "--lags", "0,1", "--out", dir + "/out",
            ] + tiny.flatMap { ["--set", $0] }
        let first = try await runRein(arguments)
        #expect(first.contains("[8/8] k2_loss_sgw_token lag 1 seed 2: final KL"))
        #expect(!first.contains("skipped"))
        let names = ["k2_loss", "k2_loss_sgw_token"].flatMap { form in
            [0, 1].flatMap { lag in [1, 2].map { "\(form)-lag\(lag)-seed\($0)" } }
        }
        var records: [String: OutcomeRecord] = [:]
        for name in names {
            let data = try #require(FileManager.default.contents(atPath: "\(dir)/out/results/\(name).json"))
            let record = try OutcomeRecord.decode(data)
            #expect(record.steps == 2 && record.beta == 0.1 && record.parameterBias != nil, "\(name)")
            #expect(record.trackerBias != nil && record.greedyAccuracy != nil, "\(name)")
            records[name] = record
        }
        // On-policy, sg(w)·k2 has exactly k2's gradient: the tracker sees the same (zero) bias.
        #expect(records["k2_loss_sgw_token-lag0-seed1"]!.trackerBias! < 1e-6)
        let report = try ReportWriter.decode(
            try Data(contentsOf: URL(fileURLWithPath: dir + "/out/report/report.json")))
        let outcome = try #require(report.outcome)
        #expect(outcome.cells.count == 4 && outcome.cells.allSatisfy { $0.seeds == [1, 2] })
        #expect(
            Set(outcome.comparisons.filter { $0.metric == .finalKL }.map(\.lag)) == [0, 1]
                && outcome.comparisons.allSatisfy {
                    $0.naive == "k2_loss" && $0.corrected == "k2_loss_sgw_token"
                })
        let html = try String(contentsOfFile: dir + "/out/report/report.html", encoding: .utf8)
        #expect(html.contains("Does the bias matter?"))

        try FileManager.default.removeItem(atPath: "\(dir)/out/results/k2_loss-lag1-seed2.json")
        let second = try await runRein(arguments)
        #expect(second.components(separatedBy: "(done before, skipped)").count - 1 == 7)
        #expect(second.contains("[4/8] k2_loss lag 1 seed 2: final KL") && second.contains("s; about"))
        let redone = try OutcomeRecord.decode(
            try #require(FileManager.default.contents(atPath: "\(dir)/out/results/k2_loss-lag1-seed2.json")))
        var expected = records["k2_loss-lag1-seed2"]!
        expected.seconds = redone.seconds
        #expect(redone == expected, "a rerun of the same seed reproduces the record")

        // A record of another design (here: other steps) is not reused.
        let other = try await runRein(
            [
                "experiment", "outcome", "--steps", "1", "--forms", "k2_loss", "--lags", "0", "--seeds", "1",
                "--out", dir + "/out",
            ] + tiny.flatMap { ["--set", $0] })
        #expect(other.contains("[1/1] k2_loss lag 0 seed 1") && !other.contains("skipped"))
    }
}
