import ArgumentParser
import Foundation
import Logging
import Rein
import ReinModel
import ReinTasks

/// Options shared by the commands that read a run configuration.
struct ConfigOptions: ParsableArguments {
    @Option(name: .long, help: "Run configuration (YAML). Keys not given take their defaults.")
    var config: String?

    @Option(
        name: .long,
        help: """
            Task preset (\(ArithmeticTaskConfig.presetNames.joined(separator: ", "))): replaces the task \
            block; any preset but default also gets its own reference and run folder \
            (runs/reference-NAME.safetensors, runs/NAME). --set overrides apply after it.
            """)
    var task: String?

    @Option(name: .customLong("set"), help: "Override one key, e.g. --set train.beta=0.1 (repeatable).")
    var overrides: [String] = []

    /// Loads the configuration and selects its matrix-product backend for this process.
    func load() throws -> RunConfig {
        let all = try (task.map(Self.taskOverrides) ?? []) + overrides
        let run =
            try config.map { try ConfigLoader.load(RunConfig.self, file: $0, overrides: all) }
            ?? ConfigLoader.load(RunConfig.self, yaml: "{}", overrides: all)
        try GemmBackend.configure(run.gemm, logger: Logger(label: "rein.gemm"))
        return run
    }

    /// The `--set` overrides that `--task name` stands for: the preset as the task block and, for
    /// any preset but default, its own reference checkpoint and run folder.
    static func taskOverrides(_ name: String) throws -> [String] {
        let preset: ArithmeticTaskConfig
        do {
            preset = try ArithmeticTaskConfig.preset(named: name)
        } catch {
            throw CLIError("--task: \(error)")
        }
        let json = String(decoding: try JSONEncoder().encode(preset), as: UTF8.self)
        guard name != "default" else { return ["task=\(json)"] }
        let reference = "runs/reference-\(name).safetensors"
        return [
            "task=\(json)", "pretrain.output=\(reference)", "train.reference=\(reference)",
            "run_dir=runs/\(name)",
        ]
    }
}

/// `rein pretrain`: supervised training of the reference policy π_ref.
struct PretrainCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pretrain",
        abstract: "Train the reference policy on task examples (supervised) and write its checkpoint.",
        discussion:
            "Writes pretrain.output (default runs/reference.safetensors) and prints held-out accuracy."
    )

    @OptionGroup var options: ConfigOptions

    func run() async throws {
        let logger = Logger(label: "rein.pretrain")
        let config = try options.load()
        let task = try ArithmeticTask(config: config.task)
        let p = config.pretrain
        logger.info(
            "pretraining \(config.gptConfig(vocab: task.tokenizer.vocabSize)) for \(p.steps) steps, batch \(p.batchSize)"
        )
        let trainer = try Pretrainer(config: config, task: task)
        var progress = ProgressLine(total: p.steps, label: "pretrain")
        var recent: [Double] = []
        var validation = ""
        let outcome = try trainer.run { step in
            recent.append(step.loss)
            if recent.count > 50 { recent.removeFirst() }
            if let accuracy = step.validationAccuracy {
                validation = "  validation acc " + percent(accuracy)
            }
            let mean = recent.reduce(0, +) / Double(recent.count)
            progress.update(
                step.step, String(format: "loss %.4f", mean) + validation,
                force: step.validationAccuracy != nil)
        }
        progress.finish()
        logStopReason(outcome, p, logger)
        let greedy = try trainer.evaluate(count: p.evalSize)
        let sampled = try trainer.evaluateSampled(count: p.evalSize, seed: config.seed)
        try trainer.save(to: p.output)
        emit(
            String(
                format:
                    "reference written to %@ after %d steps: held-out accuracy %.1f%% greedy, %.1f%% sampled (%d problems)",
                p.output, outcome.steps, 100 * greedy.accuracy, 100 * sampled.accuracy, greedy.n))
    }

    /// Whether pretraining stopped at pretrain.target_accuracy or ran all its steps short of it.
    private func logStopReason(_ outcome: PretrainOutcome, _ p: PretrainConfig, _ logger: Logger) {
        if outcome.reachedTarget {
            logger.info(
                "validation accuracy \(percent(outcome.validationAccuracy ?? 0)) reached pretrain.target_accuracy \(percent(p.targetAccuracy)) at step \(outcome.steps)"
            )
        } else if p.targetAccuracy > 0 {
            logger.warning(
                "validation accuracy \(percent(outcome.validationAccuracy ?? 0)) after all \(outcome.steps) steps (pretrain.steps + pretrain.extra_steps), short of pretrain.target_accuracy \(percent(p.targetAccuracy))"
            )
        }
    }
}
