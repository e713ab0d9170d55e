import Foundation
import Logging
import Rein
import ReinKL
import ReinTasks
import ReinTracker
import Testing

@testable import ReinReport

#if canImport(FoundationXML)
    import FoundationXML
#endif

let fixture = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.appendingPathComponent(
    "run-lag4"
).path

func temporaryDirectory() -> String {
    FileManager.default.temporaryDirectory.appendingPathComponent("rein-report-\(UUID().uuidString)").path
}

/// Collects parse errors of an XML document.
final class XMLCheck: NSObject, XMLParserDelegate {
    var error: (any Error)?
    var svgCount = 0
    var elements: [String: Int] = [:]
    func parser(_ parser: XMLParser, parseErrorOccurred parseError: any Error) { error = parseError }
    func parser(
        _ parser: XMLParser, didStartElement elementName: String, namespaceURI: String?,
        qualifiedName: String?,
        attributes: [String: String] = [:]
    ) {
        elements[elementName, default: 0] += 1
        if elementName == "svg" { svgCount += 1 }
    }
}

/// Parses a CSV without quoted commas (what these files hold for fixture runs).
func csvRows(_ text: String) -> [[String: String]] {
    let lines = text.split(separator: "\n").map {
        $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
    }
    return lines.dropFirst().map { Dictionary(uniqueKeysWithValues: zip(lines[0], $0)) }
}

@Suite("Reports")
struct ReportTests {
    let writer = ReportWriter(logger: Logger(label: "report-test"))

    @Test func readsTheFixtureRun() throws {
        let document = try writer.document(runs: [fixture])
        let run = try #require(document.runs.first)
        #expect(run.name == "run-lag4" && run.steps == 6 && run.tracker.observations == 6)
        #expect(run.settings["estimator"] == "k2" && run.settings["inject_lag"] == "4")
        #expect(run.lagHistogram.map(\.lag) == [0, 1, 2, 3, 4])
        #expect(run.tracker.overheadFraction > 0 && run.greedyStart != nil && run.greedyEnd != nil)
        // Corrected forms: no bias at any lag; naive k2 biased once stale.
        for p in run.bias where ["k2_loss_sgw_token", "k3_loss_w_token"].contains(p.implementation) {
            #expect(p.relativeError < 1e-6, "\(p.implementation) lag \(p.lag)")
        }
        let naive = try #require(run.bias.first { $0.implementation == "k2_loss" && $0.lag == 4 })
        #expect(naive.relativeError > 1e-3)
        // The fixture agrees with every prediction it can test.
        // (Lag 0 occurs only at step 1, where θ = π_ref: no on-policy check is possible.)
        #expect(run.theory.count == 4)
        for check in run.theory { #expect(check.agrees, "\(check.claim): \(check.measured)") }
    }

    @Test func versionSpansAreSummedAndShownWhenSequencesSpanVersions() throws {
        let document = try writer.document(runs: [fixture])
        var run = try #require(document.runs.first)
        // The fixture predates spans: none recorded, nothing shown.
        #expect(run.versionSpans == nil && !HTML.lagSection([run]).contains("version span"))
        func record(_ spans: [SpanCount]) -> TrackerRecord {
            var r = TrackerRecord(
                step: 1, version: 0, positions: 0, sequences: 0, lagHistogram: [], buckets: [],
                maxBehaviourLogProbError: 0, seconds: 0)
            r.versionSpans = spans
            return r
        }
        let spans = RunReport.aggregateSpans([
            record([SpanCount(span: 0, sequences: 5)]),
            record([SpanCount(span: 0, sequences: 3), SpanCount(span: 1, sequences: 2)]),
        ])
        #expect(spans == [SpanCount(span: 0, sequences: 8), SpanCount(span: 1, sequences: 2)])
        run.versionSpans = spans
        #expect(HTML.lagSection([run]).contains("span 0: 8, span 1: 2"))
        #expect(
            SpanCount.histogram([[3, 3], [3, 4, 5], [], [2]]) == [
                SpanCount(span: 0, sequences: 3), SpanCount(span: 2, sequences: 1),
            ])
    }

    @Test func writesWellFormedSelfContainedHTML() throws {
        let out = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: out) }
        // Two runs compared (the same folder twice gets distinct names).
        try writer.write(try writer.document(runs: [fixture, fixture]), to: out)
        for name in ReportWriter.files {
            #expect(FileManager.default.fileExists(atPath: out + "/" + name), "\(name)")
        }
        let html = try Data(contentsOf: URL(fileURLWithPath: out + "/report.html"))
        let parser = XMLParser(data: html)
        let check = XMLCheck()
        parser.delegate = check
        #expect(parser.parse(), "report.html is not well-formed XML: \(String(describing: check.error))")
        // Bias (pooled + 2 runs), 7 curves, 2 histograms, lag over time, ESS, Figure 1 (2 charts).
        #expect(check.svgCount == 16)
        #expect(String(decoding: html, as: UTF8.self).contains("all 2 runs pooled"))
        #expect((check.elements["polyline"] ?? 0) > 20 && (check.elements["table"] ?? 0) >= 4)
        let text = String(decoding: html, as: UTF8.self)
        #expect(!text.contains("http://") || !text.contains("src="), "no external resources")
        #expect(!text.contains("<script") && !text.contains("<link") && !text.contains("<img"))
        #expect(text.contains("run-lag4-2") || text.contains("Fixtures/run-lag4"))
    }

    @Test func runsDifferingOnlyInSeedAreAveraged() throws {
        let root = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        for seed in [1, 2] {
            try FileManager.default.copyItem(atPath: fixture, toPath: root + "/k2_loss-lag4-seed\(seed)")
        }
        let document = try writer.document(runs: [root + "/k2_loss-lag4-seed1", root + "/k2_loss-lag4-seed2"])
        let groups = HTML.seedGroups(document.runs)
        #expect(groups.map(\.name) == ["k2_loss-lag4"] && groups[0].runs.count == 2)
        let html = HTML.page(document, title: "seeds")
        #expect(html.contains("Runs that differ only in their seed"))
        // Identical copies: the spread over seeds is exactly zero.
        #expect(html.contains("± 0.0%"))
        #expect(HTML.meanSD([1, 3, nil]) { String($0) } == "2.0 ± 1.4142135623730951")
        #expect(HTML.meanSD([nil]) { String($0) } == "–")
    }

    @Test func jsonHasTheSchemaAndCSVAgreesWithIt() throws {
        let out = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: out) }
        try writer.write(try writer.document(runs: [fixture]), to: out)
        let data = try Data(contentsOf: URL(fileURLWithPath: out + "/report.json"))
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(object["schema_version"] as? Int == ReportDocument.currentSchemaVersion)
        let runs = try #require(object["runs"] as? [[String: Any]])
        let run = try #require(runs.first)
        for key in [
            "name", "path", "settings", "steps", "greedy_start", "greedy_end", "curves", "bias", "importance",
            "lag_histogram", "tracker", "parameter_bias", "theory",
        ] {
            #expect(run[key] != nil, "report.json runs[0] lacks \(key)")
        }
        let bias0 = try #require((run["bias"] as? [[String: Any]])?.first)
        for key in [
            "implementation", "lag", "positions", "relative_error", "cosine", "forward_relative_error",
        ] {
            #expect(bias0[key] != nil, "bias lacks \(key)")
        }
        let document = try ReportWriter.decode(data)
        let report = document.runs[0]
        // bias.csv row for row.
        let bias = csvRows(try String(contentsOfFile: out + "/bias.csv", encoding: .utf8))
        #expect(bias.count == report.bias.count)
        for (row, point) in zip(bias, report.bias) {
            #expect(row["implementation"] == point.implementation && row["lag"] == "\(point.lag)")
            #expect(Double(row["relative_error"]!) == point.relativeError)
            #expect(Double(row["cosine"]!) == point.cosine)
        }
        let curves = csvRows(try String(contentsOfFile: out + "/curves.csv", encoding: .utf8))
        #expect(curves.map { Int($0["step"]!)! } == report.curves.map(\.step))
        #expect(curves.map { Double($0["exact_kl"]!)! } == report.curves.map(\.exactKL))
        #expect(curves.map { Double($0["ppo_clip_fraction"]!)! } == report.curves.map(\.ppoClipFraction))
        let lags = csvRows(try String(contentsOfFile: out + "/lag_histogram.csv", encoding: .utf8))
        #expect(lags.map { Int($0["tokens"]!)! } == report.lagHistogram.map(\.tokens))
        let importance = csvRows(try String(contentsOfFile: out + "/importance.csv", encoding: .utf8))
        #expect(importance.map { Double($0["ess_fraction"]!)! } == report.importance.map(\.essFraction))
    }

    @Test func rejectsAFolderThatIsNotARun() throws {
        let empty = temporaryDirectory()
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: empty) }
        #expect(throws: ReportError.notARun(empty)) { try writer.document(runs: [empty]) }
    }

    @Test func svgTicksAndEscaping() {
        #expect(SVG.ticks(0, 1) == [0, 0.2, 0.4, 0.6000000000000001, 0.8, 1] || SVG.ticks(0, 1).count == 6)
        #expect(HTML.escape("a<b & \"c\"") == "a&lt;b &amp; &quot;c&quot;")
    }
}

/// Run folders written by main before the run folder had one schema (December 2026): the single
/// process wrote snake_case keys, the distributed runtime camelCase ones and no eval-start.json.
@Suite("Run folders of older builds")
struct LegacyRunFolderTests {
    func fixture(_ name: String) -> String {
        Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.appendingPathComponent(name).path
    }

    @Test(arguments: ["main-single", "main-distributed"])
    func bothModesLoadWithEveryCurve(_ name: String) throws {
        let folder = try RunFolder.existing(fixture(name))
        let steps = try folder.metrics()
        #expect(steps.map(\.step) == [1, 2, 3, 4, 5, 6])
        #expect(steps.allSatisfy { $0.learner?.kl?.anyClampFraction.isFinite == true })
        let config = try #require(try folder.config())
        #expect(config.model.dModel == 16 && config.train.steps == 6 && config.train.injectLag == 1)
        #expect(try StalenessTracker.readRecords(in: folder).count == 2)
        let end = try #require(try folder.evaluation())
        #expect(end.greedy.n == 8)
        #expect((try folder.evaluation(start: true) != nil) == (name == "main-single"))
        #expect((end.sampled != nil) == (name == "main-single"))
        let run = try RunReport.load(path: fixture(name), name: name)
        let curves = run.curves
        #expect(curves.count == 6 && run.settings["inject_lag"] == "1")
        for point in curves {
            let values = [
                point.exactKL, point.logProbGap, point.lagMean, point.ppoClipFraction, point.klClampFraction,
            ]
            #expect(values.allSatisfy { $0.isFinite }, "\(name) step \(point.step)")
        }
    }

    @Test func theDistributedLedgerAndCheckpointStateReadWithTheirCamelCaseKeys() throws {
        struct Ledger: Codable, Sendable {
            var produced: Int
            var trained: Int
            var inFlight: Int
            enum CodingKeys: String, CodingKey {
                case produced, trained
                case inFlight = "in_flight"
            }
        }
        let folder = try RunFolder.existing(fixture("main-distributed"))
        let ledger = try #require(try folder.ledger(Ledger.self))
        #expect(ledger.produced == 48 && ledger.trained == 48 && ledger.inFlight == 0)
        let stored = try #require(
            try CheckpointStore(folder: folder).load(
                kind: "distributed learner", logger: Logger(label: "test")))
        struct State: Codable {
            var consumed: Int
            var ledger: Ledger
        }
        let state = try RunCoding.decoder().decode(State.self, from: try stored.data("state.json"))
        #expect(state.consumed == 6 && state.ledger.inFlight == 0)
    }

    @Test func aFileOfANewerSchemaFailsTheReportInOneLine() throws {
        let copy = temporaryDirectory()
        try FileManager.default.copyItem(atPath: fixture("main-single"), toPath: copy)
        try Data(#"{"schema_version":3,"greedy":{}}"#.utf8).write(
            to: URL(fileURLWithPath: copy + "/eval.json"))
        let error = try #require(throws: ReportError.self) { _ = try RunReport.load(path: copy, name: "x") }
        #expect(
            error.description.hasPrefix("\(copy)/eval.json: schema version 3, but this rein reads"),
            "\(error)")
        #expect(!error.description.contains("\n"))
    }
}
