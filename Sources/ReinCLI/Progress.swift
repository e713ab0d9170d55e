import Foundation
import Rein
import ReinRuntime
import Synchronization

/// A live progress line on stderr: rewritten in place on a terminal, one line every few percent
/// otherwise (CI logs, pipes).
struct ProgressLine {
    let total: Int
    let label: String
    private let interactive = isatty(STDERR_FILENO) != 0
    private let start = ContinuousClock.now
    private var lastPrinted = -1

    init(total: Int, label: String) {
        self.total = total
        self.label = label
    }

    /// Reports that `done` of `total` units are finished, with `detail` (e.g. "loss 0.42").
    mutating func update(_ done: Int, _ detail: String, force: Bool = false) {
        let every = max(1, total / 20)
        guard interactive || force || done == total || done / every != lastPrinted / every else { return }
        lastPrinted = done
        let elapsed = seconds(ContinuousClock.now - start)
        let eta = done > 0 ? elapsed / Double(done) * Double(total - done) : 0
        let line = "\(label) \(done)/\(total)  \(detail)  elapsed \(clock(elapsed))  ETA \(clock(eta))"
        if interactive {
            toStandardError("\r\u{1B}[K" + line + (done == total ? "\n" : ""))
        } else {
            toStandardError(line + "\n")
        }
    }

    /// Ends the in-place line (so later output starts on a new line).
    func finish() {
        if interactive && lastPrinted != total { toStandardError("\n") }
    }
}

/// Writes `text` to stderr, ignoring failures: a learner whose `rein launch` died has a broken
/// pipe there and must still drain and checkpoint (`FileHandle.write` would trap on EPIPE).
func toStandardError(_ text: String) {
    let bytes = Array(text.utf8)
    _ = bytes.withUnsafeBytes { write(STDERR_FILENO, $0.baseAddress, $0.count) }
}

func clock(_ s: Double) -> String {
    let t = Int(s.rounded())
    return t >= 3600
        ? String(format: "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60)
        : String(format: "%d:%02d", t / 60, t % 60)
}

/// The progress line of a training run, the same in every launch mode (`rein train`, its
/// `--workers` form, and `rein learner` under `rein launch`): fed each step's metrics as they are
/// recorded, from whichever task records them.
final class TrainingProgress: Sendable {
    private struct State {
        var line: ProgressLine
        var lastEval = "-"
    }
    private let state: Mutex<State>

    /// A progress line for a run of `total` steps.
    init(total: Int, label: String = "train") {
        state = Mutex(State(line: ProgressLine(total: total, label: label)))
    }

    /// Shows step `metrics` (forcing a line when it carries a held-out evaluation).
    func record(_ metrics: StepMetrics) {
        state.withLock { state in
            let evaluated = metrics.evalGreedy != nil
            if let greedy = metrics.evalGreedy { state.lastEval = percent(greedy) }
            state.line.update(
                metrics.step,
                String(
                    format: "v%d reward %.3f acc %@ eval %@ KL %.4f lag %d tok/s %.0f", metrics.version,
                    metrics.reward, percent(metrics.accuracy), state.lastEval, metrics.learner?.exactKL ?? 0,
                    metrics.lagMax, metrics.tokensPerSecond),
                force: evaluated)
        }
    }

    /// Ends the line.
    func finish() { state.withLock { $0.line.finish() } }
}

/// The end-of-run line every launch mode prints: the run folder, the final held-out evaluation,
/// the steps and the policy version.
func emitRunSummary(runDir: String, evaluation: HeldOutEvaluation?, steps: Int, version: Int) {
    emit(
        "run folder \(runDir): \(evaluation?.summary ?? "no held-out evaluation") after \(steps) steps "
            + "(policy version \(version))")
}

/// The end of a distributed run: ``emitRunSummary(runDir:evaluation:steps:version:)``, then the
/// ledger and how busy the learner was.
func emitRunSummary(runDir: String, result: DistributedRunResult) {
    emitRunSummary(
        runDir: runDir, evaluation: result.evaluation, steps: result.steps,
        version: result.weights.version)
    emit("ledger: \(result.ledger.summary)")
    emit(
        String(
            format: "learner busy %.0f%% of %.2f s; %.0f samples trained per second",
            100 * result.utilisation.busyFraction, result.utilisation.wallSeconds, result.trainedPerSecond))
}
