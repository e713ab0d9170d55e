import ArgumentParser
import Foundation
import Rein

/// `rein summarize RUN_DIR…`: one line per run — held-out accuracy before/after, KL to the
/// reference, log-prob gap, entropy — for comparing KL forms side by side.
struct SummarizeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "summarize",
        abstract:
            "Compare finished runs: accuracy before/after, exact KL to the reference, log-prob gap, entropy.",
        discussion: "KL, gap and entropy are means over the last 10% of steps of metrics.jsonl."
    )

    @Argument(help: "Run folders (each with eval-start.json, eval.json and metrics.jsonl).")
    var runs: [String]

    @Flag(name: .long, help: "Print JSON.")
    var json = false

    struct Row: Codable {
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

    struct Eval: Decodable {
        struct Result: Decodable { var accuracy: Double }
        var greedy: Result
        var sampled: Result
    }

    struct Line: Decodable {
        struct LearnerPart: Decodable {
            var exact_kl: Double
            var log_prob_gap: Double
            var entropy: Double
        }
        var lag_mean: Double
        var dropped: Int
        var learner: LearnerPart?
    }

    func run() async throws {
        var rows: [Row] = []
        for run in runs {
            func read(_ name: String) throws -> Data {
                let path = (run as NSString).appendingPathComponent(name)
                guard let data = FileManager.default.contents(atPath: path) else {
                    throw CLIError("\(run): missing \(name) (is it a finished `rein train` run folder?)")
                }
                return data
            }
            let decoder = JSONDecoder()
            let start = try decoder.decode(Eval.self, from: try read("eval-start.json"))
            let end = try decoder.decode(Eval.self, from: try read("eval.json"))
            let lines = try String(decoding: try read("metrics.jsonl"), as: UTF8.self)
                .split(separator: "\n").enumerated().map { i, text in
                    do {
                        return try decoder.decode(Line.self, from: Data(text.utf8))
                    } catch {
                        throw CLIError("\(run)/metrics.jsonl line \(i + 1) is not a metrics record")
                    }
                }
            let tail = lines.suffix(max(1, lines.count / 10)).compactMap(\.learner)
            func mean(_ f: (Line.LearnerPart) -> Double) -> Double {
                tail.isEmpty ? 0 : tail.map(f).reduce(0, +) / Double(tail.count)
            }
            rows.append(
                Row(
                    run: (run as NSString).lastPathComponent, steps: lines.count,
                    greedyStart: start.greedy.accuracy, greedyEnd: end.greedy.accuracy,
                    sampledStart: start.sampled.accuracy, sampledEnd: end.sampled.accuracy,
                    exactKL: mean(\.exact_kl), logProbGap: mean(\.log_prob_gap), entropy: mean(\.entropy),
                    lagMean: lines.map(\.lag_mean).reduce(0, +) / Double(max(1, lines.count)),
                    dropped: lines.map(\.dropped).reduce(0, +)))
        }
        if json {
            let encoder = JSONEncoder()
            encoder.keyEncodingStrategy = .convertToSnakeCase
            encoder.outputFormatting = [.sortedKeys]
            emit(String(decoding: try encoder.encode(rows), as: UTF8.self))
            return
        }
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
