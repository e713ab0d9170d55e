import ArgumentParser
import Foundation
import Logging
import Rein
import ReinModel
import ReinReport

/// `rein experiment outcome [--quick]`: does the bias of stale, uncorrected KL gradients change
/// the trained policy? Every form × lag × seed, one record per run, then a report with intervals.
struct OutcomeExperimentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "outcome",
        abstract:
            "Train every KL form × lag × seed and report whether the gradient bias changes the outcome.",
        discussion: """
            Forms: \(OutcomeExperiment.forms.map(\.id).joined(separator: ", ")). Every run starts from \
            train.reference with the base configuration (--config / --set), the staleness tracker and its \
            parameter-space comparison on; it writes OUT/runs/<form>-lag<L>-seed<S> and, once finished, \
            OUT/results/<form>-lag<L>-seed<S>.json (atomically). Re-running skips runs whose record exists, \
            so an interrupted experiment resumes. The report (OUT/report) gives each outcome as mean with a \
            95% bootstrap interval over seeds, naive − corrected paired by seed with the minimal detectable \
            effect, and tracker bias against outcome gap. Defaults: lags 0,1,4,16 (1: about the lag \
            min-lag pacing trains at), seeds 1-5, 80 steps at β 0.1 (chosen by a pilot: see the \
            ReinReport article); --quick: lags 0,16, seeds 1,2, 10 steps, two tracker observations per run.
            """
    )

    @OptionGroup var options: ConfigOptions
    @Option(name: .long, help: "Output folder.") var out = "runs/outcome"
    @Flag(name: .long, help: "A short version: lags 0 and 16, seeds 1 and 2, 10 steps (minutes).") var quick =
        false
    @Option(name: .long, help: "Steps per run (default 80; 10 with --quick).") var steps: Int?
    @Option(name: .long, help: "Comma-separated injected lags (default 0,1,4,16; 0,16 with --quick).")
    var lags: String?
    @Option(name: .long, help: "Comma-separated seeds (default 1,2,3,4,5; 1,2 with --quick).") var seeds:
        String?
    @Option(name: .long, help: "Comma-separated form ids (default: all eight).") var forms: String?
    @Option(name: .long, help: "β of every form but no KL (default 0.1).") var beta = 0.1

    func run() async throws {
        let logger = Logger(label: "rein.experiment")
        var base = try options.load()
        base.train.beta = beta
        var plan = try OutcomeExperiment.Plan(
            forms: chosenForms(), lags: integers(lags ?? (quick ? "0,16" : "0,1,4,16"), "lags"),
            seeds: integers(seeds ?? (quick ? "1,2" : "1,2,3,4,5"), "seeds"),
            steps: steps ?? (quick ? 10 : 80),
            out: out)
        plan.trackerObservations = quick ? 2 : 5
        guard plan.steps >= 1 else { throw CLIError("--steps must be at least 1") }
        guard FileManager.default.fileExists(atPath: base.train.reference) else {
            throw CLIError("no reference checkpoint at \(base.train.reference); run `rein pretrain` first")
        }
        let (reference, metadata) = try Checkpoint.load(from: base.train.reference)
        try checkReferenceTask(metadata: metadata, path: base.train.reference, task: base.task)
        do {
            _ = try OutcomeExperiment(plan: plan, base: base, logger: logger).run(reference: reference) {
                emit(Self.line($0))
            }
        } catch let error as CLIError {
            throw error
        } catch {
            throw CLIError("\(error)")
        }
        try writeExperimentReport(
            runs: plan.runs.map {
                plan.runFolder(OutcomeExperiment.Plan.name(form: $0.form.id, lag: $0.lag, seed: $0.seed))
            }, out: out, title: "Rein: does the bias matter? KL forms × lags × seeds", logger: logger)
    }

    /// One progress line.
    static func line(_ p: OutcomeExperiment.Progress) -> String {
        let r = p.record
        var text =
            "[\(p.index)/\(p.total)] \(r.form) lag \(r.lag) seed \(r.seed): final KL "
            + String(format: "%.4g", r.finalKL) + ", greedy " + (r.greedyAccuracy.map(percent) ?? "–")
            + (r.trackerBias.map { String(format: ", tracker bias %.3g", $0) } ?? "")
        text += p.skipped ? " (done before, skipped)" : String(format: " (%.0f s", p.seconds)
        if !p.skipped {
            text += p.remainingSeconds.map { String(format: "; about %.0f min left)", $0 / 60) } ?? ")"
        }
        return text
    }

    private func integers(_ text: String, _ name: String) throws -> [Int] {
        try text.split(separator: ",").map {
            guard let v = Int($0.trimmingCharacters(in: .whitespaces)), v >= 0 else {
                throw CLIError("--\(name): '\($0)' is not an integer ≥ 0")
            }
            return v
        }
    }

    /// The forms `--forms` names (default: all), in its order.
    private func chosenForms() throws -> [OutcomeExperiment.Form] {
        let known = OutcomeExperiment.forms
        return try (forms?.split(separator: ",").map(String.init) ?? known.map(\.id)).map { id in
            guard let form = known.first(where: { $0.id == id }) else {
                throw CLIError(
                    "--forms: unknown form '\(id)' (known: \(known.map(\.id).joined(separator: ", ")))")
            }
            return form
        }
    }
}
