import Foundation
import Rein
import ReinModel
import ReinTasks
import Testing

@Suite("rein experiment paper")
struct PaperExperimentTests {
    @Test func runsEachFormAndLagAndWritesOneReport() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent(
            "rein-paper-\(UUID().uuidString)"
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
        let output = try await runRein(
            [
                "experiment", "paper", "--quick", "--steps", "2", "--forms", "no_kl,k2_loss_sgw_token",
                "--lags", "0,1",
                "--out", dir + "/out",
            ] + tiny.flatMap { ["--set", $0] })
        #expect(output.contains("[4/4] k2_loss_sgw_token lag 1 seed 1"))
        for run in [
            "no_kl-lag0-seed1", "no_kl-lag1-seed1", "k2_loss_sgw_token-lag0-seed1",
            "k2_loss_sgw_token-lag1-seed1",
        ] {
            let records = try String(contentsOfFile: "\(dir)/out/\(run)/tracker.jsonl", encoding: .utf8)
            #expect(records.split(separator: "\n").count == 2, "\(run)")
        }
        #expect(FileManager.default.fileExists(atPath: dir + "/out/report/report.html"))
        let config0 = try String(contentsOfFile: dir + "/out/no_kl-lag1-seed1/config.yaml", encoding: .utf8)
        #expect(config0.contains("beta: 0") && config0.contains("inject_lag: 1"))
    }
}
