import ArgumentParser
import Foundation
import Logging
import ReinReport

/// `rein report RUN_DIR… [--out DIR]`: report.html (inline SVG), report.json and CSV files.
struct ReportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Write a self-contained HTML report (plus report.json and CSV) comparing run folders.",
        discussion: """
            Reads metrics.jsonl, tracker.jsonl (the staleness tracker's records), eval-start.json, \
            eval.json and config.yaml of each run. Plots bias versus lag per KL implementation, \
            training curves, lag histograms, ESS and the seed paper's Figure-1 coefficient curves.
            """
    )

    @Argument(help: "Run folders (each with metrics.jsonl and/or tracker.jsonl).")
    var runs: [String]

    @Option(name: .long, help: "Output folder (default: the first run folder's report/).")
    var out: String?

    @Option(name: .long, help: "Title of the report.")
    var title = "Rein report: staleness bias of KL implementations"

    func run() async throws {
        guard let first = runs.first else { throw CLIError("give at least one run folder") }
        let logger = Logger(label: "rein.report")
        let writer = ReportWriter(logger: logger)
        let directory = out ?? (first as NSString).appendingPathComponent("report")
        do {
            let document = try writer.document(runs: runs)
            try writer.write(document, to: directory, title: title)
            for r in document.runs {
                emit(
                    "\(r.name): \(r.steps) steps, \(r.tracker.observations) tracker observations, \(r.bias.count) bias points"
                )
            }
        } catch {
            throw CLIError("\(error)")
        }
        emit("wrote \((directory as NSString).appendingPathComponent("report.html"))")
    }
}
