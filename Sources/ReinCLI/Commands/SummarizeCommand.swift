import ArgumentParser
import Foundation
import Rein
import ReinReport
import ReinTasks

/// `rein summarize RUN_DIR…`: one line per run — held-out accuracy before/after, KL to the
/// reference, log-prob gap, entropy — for comparing KL forms side by side.
struct SummarizeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "summarize",
        abstract:
            "Compare finished runs: accuracy before/after, exact KL to the reference, log-prob gap, entropy.",
        discussion: "KL, gap and entropy are means over the last 10% of steps of metrics.jsonl."
    )

    @Argument(help: "Run folders (each with eval.json and metrics.jsonl; eval-start.json if it has one).")
    var runs: [String]

    @Flag(name: .long, help: "Print JSON.")
    var json = false

    @Flag(
        name: .long,
        help: """
            A few lines per run instead of the table: accuracy before → after, the lag trained, the \
            run's KL bias against its importance-corrected form (staleness tracker), the ledger.
            """)
    var brief = false

    struct Row: Codable {
        enum CodingKeys: String, CodingKey {
            case run, steps
            case greedyStart = "greedy_start"
            case greedyEnd = "greedy_end"
            case sampledStart = "sampled_start"
            case sampledEnd = "sampled_end"
            case exactKL = "exact_kl"
            case logProbGap = "log_prob_gap"
            case entropy
            case lagMean = "lag_mean"
            case dropped
        }
        var run: String
        var steps: Int
        var greedyStart: Double
        var greedyEnd: Double
        var sampledStart: Double
        var sampledEnd: Double
        var exactKL: Double
        var logProbGap: Double
        var entropy: Double
        var lagMean: Double
        var dropped: Int
    }

    func run() async throws {
        if brief {
            try emitBriefs()
            return
        }
        let rows = try runs.map(row)
        if json {
            emit(String(decoding: try RunCoding.encoder().encode(rows), as: UTF8.self))
            return
        }
        emitTable(rows)
    }

    /// `--brief`: a few lines (or one JSON object) per run.
    private func emitBriefs() throws {
        for run in runs {
            let summary = try RunBrief(folder: try RunFolder.existing(run))
            if json {
                emit(String(decoding: try RunCoding.encoder().encode(summary), as: UTF8.self))
            } else {
                emit("\(run):")
                for line in summary.lines { emit("  " + line) }
            }
        }
    }

    /// One finished run folder's row of the table.
    private func row(_ run: String) throws -> Row {
        let folder = try RunFolder.existing(run)
        guard folder.has(.metrics) else {
            throw CLIError("\(run): missing metrics.jsonl (is it a `rein train` run folder?)")
        }
        let start = try folder.evaluation(start: true)
        guard let end = try folder.evaluation() else {
            throw CLIError("\(run): missing eval.json (is it a finished `rein train` run folder?)")
        }
        let steps = try folder.metrics()
        let tail = steps.suffix(max(1, steps.count / 10)).compactMap(\.learner)
        func mean(_ f: (LearnerStepMetrics) -> Double) -> Double {
            tail.isEmpty ? 0 : tail.map(f).reduce(0, +) / Double(tail.count)
        }
        return Row(
            run: (run as NSString).lastPathComponent, steps: steps.count,
            greedyStart: start?.greedy.accuracy ?? .nan, greedyEnd: end.greedy.accuracy,
            sampledStart: start?.sampled?.accuracy ?? .nan, sampledEnd: end.sampled?.accuracy ?? .nan,
            exactKL: mean(\.exactKL), logProbGap: mean(\.logProbGap), entropy: mean(\.entropy),
            lagMean: steps.map(\.lagMean).reduce(0, +) / Double(max(1, steps.count)),
            dropped: steps.map(\.dropped).reduce(0, +))
    }

    private func emitTable(_ rows: [Row]) {
        emit(
            "| run | steps | greedy acc start → end | sampled acc start → end | KL(π‖ref)/token | log-prob gap | entropy | lag | dropped |"
        )
        emit("|---|---|---|---|---|---|---|---|---|")
        for r in rows {
            emit(
                "| \(r.run) | \(r.steps) | \(percent(r.greedyStart)) → \(percent(r.greedyEnd)) | "
                    + "\(percent(r.sampledStart)) → \(percent(r.sampledEnd)) | "
                    + String(
                        format: "%.4f | %.4f | %.3f | %.1f | %d |", r.exactKL, r.logProbGap, r.entropy,
                        r.lagMean, r.dropped))
        }
    }
}
