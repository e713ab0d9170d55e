import ArgumentParser
import Foundation
import Rein
import ReinTasks
import Testing

@testable import ReinCLI

/// Runs `rein ARGS…` in-process; returns its output, or throws the error the user would see.
func runRein(_ arguments: [String]) async throws -> String {
    let capture = Console.Capture()
    try await Console.$capture.withValue(capture) {
        var command = try Rein.parseAsRoot(arguments)
        if var asyncCommand = command as? any AsyncParsableCommand {
            try await asyncCommand.run()
        } else {
            try command.run()
        }
    }
    return capture.text
}

/// The one line `rein` prints for an error.
func userMessage(_ arguments: [String]) async -> String? {
    do {
        _ = try await runRein(arguments)
        return nil
    } catch {
        return Rein.message(for: error)
    }
}

func temporaryFile(_ contents: String, name: String = "file.json") throws -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("rein-cli-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    let url = dir.appendingPathComponent(name)
    try contents.write(to: url, atomically: true, encoding: .utf8)
    return url.path
}

@Suite("rein command line")
struct CLITests {
    @Test func versionNamesLibzmq() {
        #expect(Rein.configuration.version.contains("libzmq 4."))
    }

    @Test func klExactPrintsEveryRequiredIdAsJSON() async throws {
        let policy = """
            {"vocab": 2, "length": 1, "theta": [[0.1, -0.2]], "behaviour": [[0.0, 0.0]], "reference": [[0.3, 0.1]]}
            """
        let output = try await runRein(["kl", "exact", "--policy", try temporaryFile(policy), "--json"])
        struct Output: Decodable {
            var gradients: [String: [[Double]]]
            var targets: [String: [[Double]]]
        }
        let decoded = try JSONDecoder().decode(Output.self, from: Data(output.utf8))
        #expect(decoded.gradients.count >= 10)
        #expect(decoded.gradients["k2_loss_sgw_token"]?.count == 1)
        #expect(Set(decoded.targets.keys) == ["rkl_seq", "fkl_seq", "k2_token_onpolicy"])
        // On a single action, the corrected k2 form equals the reverse-KL gradient.
        let a = try #require(decoded.gradients["k2_loss_sgw_token"]?[0])
        let b = try #require(decoded.targets["rkl_seq"]?[0])
        for (x, y) in zip(a, b) { #expect(abs(x - y) < 1e-12) }
    }

    @Test func klExactRejectsABadFileInOneLine() async throws {
        let wrongWidth = """
            {"vocab": 3, "length": 1, "theta": [[0.1, -0.2]], "behaviour": [[0, 0, 0]], "reference": [[0, 0, 0]]}
            """
        let message = try #require(
            await userMessage(["kl", "exact", "--policy", try temporaryFile(wrongWidth)]))
        #expect(!message.contains("\n"))
        #expect(message.contains("theta"))
        let missing = try #require(
            await userMessage(["kl", "exact", "--policy", "/nonexistent/policy.json"]))
        #expect(message != missing)
        #expect(!missing.contains("\n"))
    }

    @Test func transportBenchValidatesItsOptions() async throws {
        let message = try #require(await userMessage(["bench", "transport", "--transports", "udp"]))
        #expect(message == "unknown transport 'udp' in --transports (allowed: tcp, ipc)")
        let sizes = try #require(await userMessage(["bench", "transport", "--sizes", "12,abc"]))
        #expect(sizes.contains("bad size 'abc'"))
    }

    @Test func e2eBenchValidatesItsOptions() async throws {
        let modes = try #require(await userMessage(["bench", "e2e", "--modes", "single,batch"]))
        #expect(modes.contains("unknown mode 'batch'"))
        let rounds = try #require(await userMessage(["bench", "e2e", "--rounds", "0"]))
        #expect(rounds.contains("--rounds"))
    }
}

@Suite("Run configurations")
struct RunConfigTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    @Test func everyCheckedInConfigLoadsAndDefaultYamlEqualsTheBuiltInDefaults() throws {
        let dir = Self.repository.appendingPathComponent("configs")
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter {
            $0.hasSuffix(".yaml")
        }
        #expect(files.count >= 8)
        for file in files {
            let config = try ConfigLoader.load(RunConfig.self, file: dir.appendingPathComponent(file).path)
            #expect(config.runDir == "runs/\(file.dropLast(5))")
        }
        var fromFile = try ConfigLoader.load(
            RunConfig.self, file: dir.appendingPathComponent("default.yaml").path)
        fromFile.runDir = RunConfig().runDir
        #expect(fromFile == RunConfig())
    }

    /// configs/multiply.yaml is the `multiply` preset with its own recipe: the same task, and the
    /// reference and run folder that `--task multiply` names.
    @Test func multiplyConfigIsTheMultiplyPresetWithItsOwnReference() throws {
        let file = Self.repository.appendingPathComponent("configs/multiply.yaml").path
        let config = try ConfigLoader.load(RunConfig.self, file: file)
        let viaPreset = try ConfigLoader.load(
            RunConfig.self, yaml: "{}", overrides: try ConfigOptions.taskOverrides("multiply"))
        #expect(config.task == ArithmeticTaskConfig.multiply)
        #expect(config.pretrain.output == viaPreset.pretrain.output)
        #expect(config.train.reference == viaPreset.train.reference)
        #expect(config.runDir == viaPreset.runDir)
        #expect(config.pretrain.steps > RunConfig().pretrain.steps)
    }

    @Test(arguments: [
        ("train: {bta: 0.1}", "config: train.bta: unknown key (allowed here:"),
        ("train: {beta: high}", "config: train.beta: expected a number"),
        ("train: {beta: -1}", "config: train.beta: must be ≥ 0"),
        ("train: {kl: {estimator: k4}}", "config: train.kl.estimator:"),
        (
            "train: {inject_lag: 5, max_staleness: 2}",
            "config: train.inject_lag: must be in 0...train.max_staleness (2), got 5"
        ),
        (
            "model: {d_model: 130}",
            "config: model.d_model: must be a positive multiple of model.heads (4), got 130"
        ),
        ("task: {max_digits: 0}", "config: task:"),
        ("model: {context: 8}", "config: model.context: 8 is shorter than the task's longest sequence"),
    ])
    func badValuesNameTheKeyPath(_ yaml: String, _ expected: String) throws {
        let error = #expect(throws: ConfigError.self) { try ConfigLoader.load(RunConfig.self, yaml: yaml) }
        let text = try #require(error).description
        #expect(text.hasPrefix(expected), "got: \(text)")
        #expect(!text.contains("\n"))
    }

    @Test func setOverridesAreValidatedToo() async throws {
        let message = try #require(await userMessage(["train", "--set", "train.group_size=1"]))
        #expect(message == "config: train.group_size: must be at least 2, got 1")
        let missing = try #require(
            await userMessage(["train", "--set", "train.reference=/nonexistent/ref.safetensors"]))
        #expect(missing.hasPrefix("no reference checkpoint at /nonexistent/ref.safetensors"))
    }
}

@Suite("rein summarize")
struct SummarizeTests {
    @Test func summarizesARunFolder() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent(
            "rein-run-\(UUID().uuidString)")
        let folder = try RunFolder(path: dir.path)
        func evaluation(_ accuracy: Double) throws -> EvaluationResult {
            let json = #"{"n":4,"correct":0,"wrong_answer":0,"malformed":0,"no_eos":0,"accuracy":"#
            return try RunCoding.decoder().decode(
                EvaluationResult.self,
                from: Data((json + #"\#(accuracy),"mean_reward":0,"total_reward":0}"#).utf8))
        }
        try folder.writeEvaluation(
            HeldOutEvaluation(greedy: try evaluation(0.5), sampled: try evaluation(0.25)), start: true)
        try folder.writeEvaluation(
            HeldOutEvaluation(greedy: try evaluation(0.75), sampled: try evaluation(0.5)))
        for i in 0..<10 {
            var step = StepMetrics(step: i + 1, version: i + 1)
            step.lagMean = 2
            step.dropped = 1
            step.learner = try RunCoding.decoder().decode(
                LearnerStepMetrics.self,
                from: Data(
                    #"""
                    {"exact_kl":\#(i),"log_prob_gap":0.5,"entropy":1,"version_before":0,"optimizer_steps":1,\#
                    "pg_loss":0,"kl_loss":0,"grad_norm":0,"learning_rate":0,"clip_fraction":0,"ratio_mean":1,\#
                    "ratio_max":1,"seconds":0}
                    """#.utf8))
            try folder.appendMetrics(step)
        }
        let output = try await runRein(["summarize", dir.path, "--json"])
        struct Row: Decodable {
            var steps: Int
            var greedy_end: Double
            var exact_kl: Double
            var dropped: Int
        }
        let rows = try JSONDecoder().decode([Row].self, from: Data(output.utf8))
        #expect(rows.count == 1)
        #expect(rows[0].steps == 10 && rows[0].greedy_end == 0.75 && rows[0].dropped == 10)
        #expect(rows[0].exact_kl == 9)  // mean over the last 10% of steps: the last line
        try folder.write(Data("not json\n".utf8), to: "metrics.jsonl")
        let message = try #require(await userMessage(["summarize", dir.path]))
        #expect(message.contains("metrics.jsonl line 1 is not a valid record"), "\(message)")
    }

    @Test func summarizesFoldersWrittenByTheMainOfDecember2026InBothModes() async throws {
        let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("ReinReportTests/Fixtures")
        let output = try await runRein([
            "summarize", fixtures.appendingPathComponent("main-single").path,
            fixtures.appendingPathComponent("main-distributed").path,
        ])
        let lines = output.split(separator: "\n")
        #expect(lines.count == 4, "\(output)")
        #expect(lines[2].hasPrefix("| main-single | 6 | 0.0% → 0.0% | 0.0% → 0.0% | 0.0000 |"), "\(lines[2])")
        // The distributed mode wrote no eval-start.json and no sampled evaluation then.
        #expect(lines[3].hasPrefix("| main-distributed | 6 | – → 0.0% | – → – | 0.0000 |"), "\(lines[3])")
    }
}
