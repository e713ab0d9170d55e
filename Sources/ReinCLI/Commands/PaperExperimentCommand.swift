import ArgumentParser
import Foundation
import Logging
import Rein
import ReinKL
import ReinModel
import ReinReport
import ReinTasks
import ReinTracker

/// `rein experiment paper [--quick]`: the seed paper's comparison at Rein's scale, then a report.
struct PaperExperimentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "paper",
        abstract:
            "Run the seed paper's KL comparison (every form × injected lag × seed) and write one report.",
        discussion: """
            Forms: no KL, k1 / k2 / k3 as loss, k1 in reward, sg(w)·k2 and w·k3 (ids no_kl, k1_loss, k2_loss, \
            k3_loss, k1_reward, k2_loss_sgw_token, k3_loss_w_token). Each run starts from train.reference with the \
            base configuration (--config / --set) and gets its own folder OUT/<form>-lag<L>-seed<S> with the \
            staleness tracker on; the report goes to OUT/report. The full run (7 forms × lags 0, 1, 2, 4, 8 × \
            seeds 1, 2, 100 steps each: 70 runs) needs about 14 minutes of CPU time: 10–25 minutes on 2 cores, \
            depending on what else runs; --quick about one minute.
            """
    )

    /// The forms of the comparison (the outcome experiment's but the sequence ratio): nil is
    /// "no KL" (β = 0).
    static let forms: [(id: String, implementation: String?)] = OutcomeExperiment.forms
        .filter { $0.id != "k1_reward_sgW" }.map { ($0.id, $0.implementation) }

    @OptionGroup var options: ConfigOptions
    @Option(name: .long, help: "Output folder.") var out = "runs/paper"
    @Flag(name: .long, help: "A few steps, lags 0 and 4, one seed (minutes).") var quick = false
    @Option(name: .long, help: "Steps per run (default 100; 10 with --quick).") var steps: Int?
    @Option(name: .long, help: "Comma-separated injected lags (default 0,1,2,4,8; 0,4 with --quick).")
    var lags: String?
    @Option(name: .long, help: "Comma-separated seeds (default 1,2; 1 with --quick).") var seeds: String?
    @Option(name: .long, help: "Comma-separated form ids (default: all seven).") var forms: String?

    func run() async throws {
        let logger = Logger(label: "rein.experiment")
        let base = try options.load()
        let lagList = try Self.integers(lags ?? (quick ? "0,4" : "0,1,2,4,8"), "lags")
        let seedList = try Self.integers(seeds ?? (quick ? "1" : "1,2"), "seeds")
        let stepCount = steps ?? (quick ? 10 : 100)
        guard stepCount >= 1 else { throw CLIError("--steps must be at least 1") }
        let chosen = try chosenForms()
        guard FileManager.default.fileExists(atPath: base.train.reference) else {
            throw CLIError("no reference checkpoint at \(base.train.reference); run `rein pretrain` first")
        }
        let (reference, metadata) = try Checkpoint.load(from: base.train.reference)
        try checkReferenceTask(metadata: metadata, path: base.train.reference, task: base.task)
        var folders: [String] = []
        let total = chosen.count * lagList.count * seedList.count
        for form in chosen {
            for lag in lagList {
                for seed in seedList {
                    let config = try runConfig(base, form: form, lag: lag, seed: seed, steps: stepCount)
                    let started = ContinuousClock.now
                    let accuracy = try runOne(config, reference: reference, logger: logger)
                    folders.append(config.runDir)
                    emit(
                        "[\(folders.count)/\(total)] \(form.id) lag \(lag) seed \(seed): held-out greedy accuracy "
                            + "\(percent(accuracy)) (\(String(format: "%.0f", seconds(ContinuousClock.now - started))) s)"
                    )
                }
            }
        }
        try writeExperimentReport(
            runs: folders, out: out, title: "Rein: the seed paper's KL comparison under injected staleness",
            logger: logger)
    }

    private static func integers(_ text: String, _ name: String) throws -> [Int] {
        try text.split(separator: ",").map {
            guard let v = Int($0.trimmingCharacters(in: .whitespaces)), v >= 0 else {
                throw CLIError("--\(name): '\($0)' is not an integer ≥ 0")
            }
            return v
        }
    }

    /// The forms `--forms` names (default: all), in its order.
    private func chosenForms() throws -> [(id: String, implementation: String?)] {
        try (forms?.split(separator: ",").map(String.init) ?? Self.forms.map(\.id)).map { id in
            guard let form = Self.forms.first(where: { $0.id == id }) else {
                throw CLIError(
                    "--forms: unknown form '\(id)' (known: \(Self.forms.map(\.id).joined(separator: ", ")))")
            }
            return form
        }
    }

    /// One run's configuration: the base with the form, the injected lag, the seed and the tracker on.
    private func runConfig(
        _ base: RunConfig, form: (id: String, implementation: String?), lag: Int, seed: Int,
        steps stepCount: Int
    ) throws -> RunConfig {
        var config = base
        config.seed = UInt64(seed)
        config.train.steps = stepCount
        config.train.injectLag = lag * config.train.epochs * config.train.minibatches
        config.train.maxStaleness = max(config.train.maxStaleness, config.train.injectLag)
        config.train.evalEvery = 0
        config.train.checkpointEvery = 0
        config.train.trackerEvery = max(1, min(config.train.trackerEvery, stepCount / 5))
        if let id = form.implementation {
            do {
                config.train.kl = try KLImplementation.named(id).configuration
            } catch {
                throw CLIError("\(error)")
            }
        } else {
            config.train.beta = 0
        }
        config.runDir = (out as NSString).appendingPathComponent(
            "\(form.id)-lag\(lag)-seed\(seed)")
        try config.validate()
        return config
    }

    /// One training run with the tracker; returns the final held-out greedy accuracy.
    func runOne(_ config: RunConfig, reference: GPTParameters, logger: Logger) throws -> Double {
        try OutcomeExperiment.trainTracked(
            config, reference: reference, evaluateAtStart: true, logger: logger)
    }
}
