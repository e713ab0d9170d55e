import Foundation
import Rein
import ReinKL
import ReinModel
import ReinTasks

/// Shared fixtures for Rein's test targets (not used by the product).
public enum TestKit {
    /// The configuration of a tiny run: a 1-layer GPT with d_model 16, 4 prompts × group 4,
    /// k2 with token ratios, one thread. Validated.
    public static func tinyConfig(
        steps: Int = 4, maxStaleness: Int = 0, injectLag: Int = 0, promptsPerStep: Int = 4, evalSize: Int = 20
    ) throws -> RunConfig {
        var config = RunConfig()
        config.threads = 1
        config.model.context = 16
        config.model.dModel = 16
        config.model.layers = 1
        config.model.heads = 2
        config.task.trainSize = 200
        config.task.heldOutSize = 50
        config.train.steps = steps
        config.train.promptsPerStep = promptsPerStep
        config.train.groupSize = 4
        config.train.evalSize = evalSize
        config.train.lr = 3e-3
        config.train.maxStaleness = maxStaleness
        config.train.injectLag = injectLag
        config.train.kl = KLConfiguration(estimator: .k2, ratio: .token)
        try config.validate()
        return config
    }

    /// The random tiny reference policy the tiny runs start from (seed 2).
    public static func tinyReference(for config: RunConfig) throws -> GPTParameters {
        try GPTParameters(config: config.gptConfig(vocab: Tokenizer.standard.vocabSize), seed: 2)
    }

    /// A fresh run folder under the temporary directory.
    public static func temporaryRunFolder(prefix: String = "rein-test") throws -> RunFolder {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent(
            "\(prefix)-\(UUID().uuidString)")
        return try RunFolder(path: dir.path)
    }

    /// A tiny run: its configuration, the random tiny reference and a fresh run folder.
    public static func tinyRun(steps: Int = 4, maxStaleness: Int = 0, injectLag: Int = 0) throws -> (
        RunConfig, GPTParameters, RunFolder
    ) {
        let config = try tinyConfig(steps: steps, maxStaleness: maxStaleness, injectLag: injectLag)
        return (config, try tinyReference(for: config), try temporaryRunFolder())
    }
}
