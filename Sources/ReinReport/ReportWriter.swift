import Foundation
import Logging
import Rein
import ReinTracker

/// Builds a report from run folders and writes `report.html`, `report.json` and CSV files.
public struct ReportWriter: Sendable {
    let logger: Logger

    /// A writer logging to `logger`.
    public init(logger: Logger) { self.logger = logger }

    /// The files a report consists of, in writing order.
    public static let files = [
        "report.html", "report.json", "runs.csv", "curves.csv", "bias.csv", "importance.csv",
        "lag_histogram.csv", "parameter_bias.csv",
    ]

    /// Reads every run folder (names deduplicated by their last path component).
    public func document(runs paths: [String]) throws(ReportError) -> ReportDocument {
        var names: Set<String> = []
        var runs: [RunReport] = []
        for path in paths {
            let base = (path as NSString).standardizingPath
            var name = (base as NSString).lastPathComponent
            if names.contains(name) {
                let parent = ((base as NSString).deletingLastPathComponent as NSString).lastPathComponent
                name = parent.isEmpty ? name : "\(parent)/\(name)"
            }
            var unique = name
            var k = 2
            while names.contains(unique) {
                unique = "\(name)-\(k)"
                k += 1
            }
            names.insert(unique)
            runs.append(try RunReport.load(path: path, name: unique))
            logger.debug("report: read \(path) as \(unique)")
        }
        return ReportDocument(runs: runs)
    }

    /// Writes every file of ``files`` for `document` into `directory` (created if needed).
    public func write(_ document: ReportDocument, to directory: String, title: String = "Rein report")
        throws(ReportError)
    {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw .unwritable(path: directory, reason: "\(error)")
        }
        let contents: [(String, String)] = [
            ("report.html", HTML.page(document, title: title)),
            ("report.json", try Self.json(document)),
            ("runs.csv", CSV.runs(document)), ("curves.csv", CSV.curves(document)),
            ("bias.csv", CSV.bias(document)), ("importance.csv", CSV.importance(document)),
            ("lag_histogram.csv", CSV.lagHistogram(document)),
            ("parameter_bias.csv", CSV.parameterBias(document)),
        ]
        for (name, text) in contents {
            let path = (directory as NSString).appendingPathComponent(name)
            do {
                try Data(text.utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
            } catch {
                throw .unwritable(path: path, reason: "\(error)")
            }
        }
        logger.info("report: wrote \(contents.count) files to \(directory)")
    }

    /// `report.json`: pretty, sorted keys, non-finite numbers as the strings "nan", "inf", "-inf".
    public static func json(_ document: ReportDocument) throws(ReportError) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        do {
            return String(decoding: try encoder.encode(document), as: UTF8.self) + "\n"
        } catch {
            throw .unwritable(path: "report.json", reason: "\(error)")
        }
    }

    /// Decodes a `report.json`.
    public static func decode(_ data: Data) throws -> ReportDocument {
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(
            positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return try decoder.decode(ReportDocument.self, from: data)
    }
}

/// The CSV files: a header line, then one line per row; numbers in full precision.
enum CSV {
    static func field(_ s: String) -> String {
        s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" })
            ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
    }

    static func n(_ v: Double?) -> String {
        guard let v else { return "" }
        return v.isFinite ? "\(v)" : (v.isNaN ? "nan" : (v > 0 ? "inf" : "-inf"))
    }

    static func lines(_ header: [String], _ rows: [[String]]) -> String {
        ([header] + rows).map { $0.map(field).joined(separator: ",") }.joined(separator: "\n") + "\n"
    }

    static func runs(_ d: ReportDocument) -> String {
        lines(
            [
                "run", "path", "steps", "greedy_start", "greedy_end", "sampled_start", "sampled_end",
                "tracker_observations", "tracker_seconds", "learner_seconds", "tracker_overhead_fraction",
            ],
            d.runs.map { r in
                [
                    r.name, r.path, "\(r.steps)", n(r.greedyStart), n(r.greedyEnd), n(r.sampledStart),
                    n(r.sampledEnd),
                    "\(r.tracker.observations)", n(r.tracker.seconds), n(r.tracker.learnerSeconds),
                    n(r.tracker.overheadFraction),
                ]
            })
    }

    static func curves(_ d: ReportDocument) -> String {
        lines(
            [
                "run", "step", "reward", "accuracy", "exact_kl", "log_prob_gap", "entropy", "lag_mean",
                "learner_seconds", "ppo_clip_fraction", "kl_clamp_fraction",
            ],
            d.runs.flatMap { r in
                r.curves.map { c in
                    [
                        r.name, "\(c.step)", n(c.reward), n(c.accuracy), n(c.exactKL), n(c.logProbGap),
                        n(c.entropy),
                        n(c.lagMean), n(c.learnerSeconds), n(c.ppoClipFraction), n(c.klClampFraction),
                    ]
                }
            })
    }

    static func bias(_ d: ReportDocument) -> String {
        lines(
            [
                "run", "implementation", "lag", "positions", "relative_error", "cosine",
                "forward_relative_error",
            ],
            d.runs.flatMap { r in
                r.bias.map {
                    [
                        r.name, $0.implementation, "\($0.lag)", "\($0.positions)", n($0.relativeError),
                        n($0.cosine),
                        n($0.forwardRelativeError),
                    ]
                }
            })
    }

    static func importance(_ d: ReportDocument) -> String {
        lines(
            [
                "run", "lag", "positions", "ratio_mean", "ratio_max", "ess_fraction", "sequence_ess_fraction",
                "behaviour_kl", "prefix_ess_fraction", "prefix_shift",
            ],
            d.runs.flatMap { r in
                r.importance.map {
                    [
                        r.name, "\($0.lag)", "\($0.positions)", n($0.ratioMean), n($0.ratioMax),
                        n($0.essFraction),
                        n($0.sequenceESSFraction), n($0.behaviourKL),
                        n($0.prefixESSFraction), n($0.prefixShift),
                    ]
                }
            })
    }

    static func parameterBias(_ d: ReportDocument) -> String {
        lines(
            ["run", "implementation", "observations", "relative_error", "cosine"],
            d.runs.flatMap { r in
                r.parameterBias.map {
                    [r.name, $0.implementation, "\($0.observations)", n($0.relativeError), n($0.cosine)]
                }
            })
    }

    static func lagHistogram(_ d: ReportDocument) -> String {
        lines(
            ["run", "lag", "sequences", "tokens"],
            d.runs.flatMap { r in
                r.lagHistogram.map { [r.name, "\($0.lag)", "\($0.sequences)", "\($0.tokens)"] }
            })
    }
}
