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

    @Option(name: .customLong("set"), help: "Override one key, e.g. --set train.beta=0.1 (repeatable).")
    var overrides: [String] = []

    /// Loads the configuration and selects its matrix-product backend for this process.
    func load() throws -> RunConfig {
        let run =
            try config.map { try ConfigLoader.load(RunConfig.self, file: $0, overrides: overrides) }
            ?? ConfigLoader.load(RunConfig.self, yaml: "{}", overrides: overrides)
        try GemmBackend.configure(run.gemm, logger: Logger(label: "rein.gemm"))
        return run
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
        var accuracy: Double?
        for step in 1...p.steps {
            let loss = try trainer.step()
            recent.append(loss)
            if recent.count > 50 { recent.removeFirst() }
            var forced = false
            if p.evalEvery > 0 && step % p.evalEvery == 0 && step < p.steps {
                accuracy = try trainer.evaluate(count: p.evalSize).accuracy
                forced = true
            }
            let mean = recent.reduce(0, +) / Double(recent.count)
            let acc = accuracy.map { String(format: "  held-out acc %.1f%%", 100 * $0) } ?? ""
            progress.update(step, String(format: "loss %.4f", mean) + acc, force: forced)
        }
        progress.finish()
        let greedy = try trainer.evaluate(count: p.evalSize)
        let sampled = try trainer.evaluateSampled(count: p.evalSize, seed: config.seed)
        try trainer.save(to: p.output)
        emit(
            String(
                format:
                    "reference written to %@: held-out accuracy %.1f%% greedy, %.1f%% sampled (%d problems)",
                p.output, 100 * greedy.accuracy, 100 * sampled.accuracy, greedy.n))
    }
}
