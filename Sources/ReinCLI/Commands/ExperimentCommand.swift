import ArgumentParser
import Foundation
import Logging
import ReinKL
import ReinReport
import ReinTracker

/// `rein experiment`: experiments on top of the tracker.
struct ExperimentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "experiment",
        abstract: "Experiments measuring how stale samples bias each KL implementation.",
        subcommands: [
            TabularExperimentCommand.self, PaperExperimentCommand.self, OutcomeExperimentCommand.self,
        ]
    )
}

/// Writes OUT/report (report.html, report.json, CSV) over the run folders `folders` of an
/// experiment and prints its path.
func writeExperimentReport(runs folders: [String], out: String, title: String, logger: Logger) throws {
    let writer = ReportWriter(logger: logger)
    let directory = (out as NSString).appendingPathComponent("report")
    do {
        try writer.write(try writer.document(runs: folders), to: directory, title: title)
    } catch {
        throw CLIError("\(error)")
    }
    emit("wrote \((directory as NSString).appendingPathComponent("report.html"))")
}

/// `rein experiment tabular`: the loop on an enumerable tabular policy, exact bias versus lag.
struct TabularExperimentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tabular",
        abstract:
            "Run the loop on a tabular policy small enough to enumerate: exact sequence-level bias versus lag.",
        discussion: """
            Per lag L, θ ascends a fixed random sequence reward minus β·(KL gradient); the behaviour at step s \
            is θ from L steps earlier. Every step, each implementation's exact expected gradient under the \
            behaviour is compared with the exact ∇KL(π_θ‖π_ref) over sequences (rkl_seq of `rein kl exact`). \
            --dump writes each lag's last-step policy as policy-lag<L>.json for `rein kl exact --policy`.
            """
    )

    @Option(name: .long, help: "Vocabulary size.") var vocab = 3
    @Option(name: .long, help: "Sequence length.") var length = 3
    @Option(name: .long, help: "Seed of θ_0, π_ref and the reward.") var seed: UInt64 = 1
    @Option(name: .long, help: "Steps per lag.") var steps = 30
    @Option(name: .long, help: "Step size on the logits.") var lr = 0.5
    @Option(name: .long, help: "KL weight β.") var beta = 1.0
    @Option(name: .long, help: "Comma-separated lags.") var lags = "0,1,2,4,8"
    @Option(name: .long, help: "Comma-separated implementation ids (default: the tracker's).") var ids:
        String?
    @Option(name: .long, help: "Train θ with this implementation's stale gradient (default: the exact one).")
    var trainWith: String?
    @Option(name: .long, help: "Write policy-lag<L>.json (last step of each lag) into this folder.") var dump:
        String?
    @Flag(name: .long, help: "Print JSON.") var json = false

    func run() async throws {
        let options = try experimentOptions()
        let results: [TabularExperiment.LagResult]
        do {
            results = try TabularExperiment(options: options).run()
        } catch {
            throw CLIError("\(error)")
        }
        if let dump { try write(results, into: dump) }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            emit(String(decoding: try encoder.encode(results), as: UTF8.self))
            return
        }
        emitTable(results, options.implementations)
    }

    /// The experiment's options from the flags.
    private func experimentOptions() throws -> TabularExperiment.Options {
        var options = TabularExperiment.Options()
        options.vocab = vocab
        options.length = length
        options.seed = seed
        options.steps = steps
        options.learningRate = lr
        options.beta = beta
        options.lags = try lags.split(separator: ",").map { text in
            guard let lag = Int(text.trimmingCharacters(in: .whitespaces)), lag >= 0 else {
                throw CLIError("--lags: '\(text)' is not a lag ≥ 0")
            }
            return lag
        }
        do {
            if let ids {
                options.implementations = try ids.split(separator: ",").map {
                    id throws(KLConfigurationError) in
                    try KLImplementation.named(String(id))
                }
            }
            if let trainWith { options.trainWith = try KLImplementation.named(trainWith) }
        } catch {
            throw CLIError("\(error)")
        }
        return options
    }

    /// `--dump`: each lag's last-step policy as policy-lag<L>.json.
    private func write(_ results: [TabularExperiment.LagResult], into dump: String) throws {
        try FileManager.default.createDirectory(atPath: dump, withIntermediateDirectories: true)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        for r in results {
            try encoder.encode(r.finalPolicy).write(
                to: URL(
                    fileURLWithPath: (dump as NSString).appendingPathComponent("policy-lag\(r.lag).json"))
            )
        }
    }

    private func emitTable(_ results: [TabularExperiment.LagResult], _ implementations: [KLImplementation]) {
        emit(
            "Tabular experiment: vocab \(vocab), length \(length), \(steps) steps per lag, lr \(lr), β \(beta), "
                + "trained with \(trainWith ?? "the exact ∇KL(π_θ‖π_ref)")")
        emit(
            "Each cell: mean over steps of relative L2 error / cosine to the exact sequence-level ∇KL(π_θ‖π_ref)."
        )
        emit("")
        emit("| id | " + results.map { "lag \($0.lag)" }.joined(separator: " | ") + " |")
        emit("|---|" + results.map { _ in "---|" }.joined())
        for (i, implementation) in implementations.enumerated() {
            let cells = results.map { r in
                String(format: "%.3g / %.4f", r.cells[i].meanRelativeError, r.cells[i].meanCosine)
            }
            emit("| `\(implementation.id)` | " + cells.joined(separator: " | ") + " |")
        }
        emit(
            "| sequence ESS/N | "
                + results.map { String(format: "%.3f", $0.meanSequenceESS) }.joined(separator: " | ") + " |")
        emit(
            "| final KL(π_θ‖π_ref) | "
                + results.map { String(format: "%.4g", $0.finalReverseKL) }.joined(separator: " | ") + " |")
        emit(
            "| final E[reward] | "
                + results.map { String(format: "%.4f", $0.finalReward) }.joined(separator: " | ") + " |")
    }
}
