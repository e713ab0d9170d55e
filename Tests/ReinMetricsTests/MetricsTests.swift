import Foundation
import Logging
import NIOHTTP1
import Rein
import ReinMetrics
import ReinTasks
import ReinTestKit
import ReinTracker
import ServiceLifecycle
import Testing

@testable import ReinMetricsServer
@testable import ReinRuntime

let quiet = Logger(label: "rein.metrics.test") { _ in SwiftLogNoOpLogHandler() }

@Suite("Metric definitions and the exposition")
struct MetricDefinitionTests {
    @Test func everyMetricIsNamedTypedAndDocumented() {
        for metric in ReinMetric.allCases {
            #expect(metric.name.hasPrefix("rein_"))
            #expect(metric.name.hasSuffix("_total") == (metric.kind == .counter), "\(metric.name)")
            #expect(!metric.help.isEmpty && !metric.help.contains("\n") && !metric.help.contains("\\"))
            #expect(metric.buckets.isEmpty == (metric.kind != .histogram), "\(metric.name)")
            #expect(metric.buckets == metric.buckets.sorted())
            #expect(ReinMetric(name: metric.name) == metric)
        }
        #expect(Set(ReinMetric.allCases.map(\.name)).count == ReinMetric.allCases.count)
    }

    @Test func helpLinesPrecedeTheTypeLinesOfReinMetricsOnly() {
        let text = """
            # TYPE rein_samples_trained_total counter
            rein_samples_trained_total 16
            # TYPE other_metric gauge
            other_metric 1
            """
        let lines = MetricsExposition.withHelp(text).split(separator: "\n").map(String.init)
        #expect(
            lines == [
                "# HELP rein_samples_trained_total \(ReinMetric.samplesTrained.help)",
                "# TYPE rein_samples_trained_total counter", "rein_samples_trained_total 16",
                "# TYPE other_metric gauge", "other_metric 1",
            ])
        #expect(MetricsExposition.withHelp("") == "")
    }

    @Test func theEndpointAnswersMetricsOnlyOnGetMetrics() {
        var scraped = 0
        let exposition = {
            scraped += 1
            return "x 1\n"
        }
        let ok = MetricsReply(method: .GET, uri: "/metrics?x=1", exposition: exposition)
        #expect(ok.status == .ok && ok.body == "x 1\n" && ok.contentType.contains("version=0.0.4"))
        #expect(MetricsReply(method: .GET, uri: "/", exposition: exposition).status == .notFound)
        #expect(MetricsReply(method: .GET, uri: "/metrics/x", exposition: exposition).status == .notFound)
        #expect(
            MetricsReply(method: .POST, uri: "/metrics", exposition: exposition).status == .methodNotAllowed)
        #expect(scraped == 1)
    }

    @Test func metricsBindParsesAndRejects() throws {
        #expect(try MetricsBind(parsing: "none") == .none)
        #expect(try MetricsBind(parsing: "127.0.0.1:9464") == .address(host: "127.0.0.1", port: 9464))
        #expect(try MetricsBind(parsing: "[::1]:0") == .address(host: "::1", port: 0))
        #expect(MetricsBind.address(host: "::1", port: 5).description == "[::1]:5")
        #expect(MetricsBind.address(host: "h", port: 9000).offset(by: 2) == .address(host: "h", port: 9002))
        #expect(MetricsBind.address(host: "h", port: 0).offset(by: 2) == .address(host: "h", port: 0))
        for bad in ["", "9464", ":9464", "host:", "host:70000", "host:-1", "a b:1", "tcp://h:1"] {
            #expect(throws: ConfigError.self, "\(bad)") { try MetricsBind(parsing: bad) }
        }
    }

    @Test func ledgerIncrementsFollowTheLedgerByReason() {
        let old = SampleLedger(produced: 16, trained: 8, inFlight: 8)
        let new = SampleLedger(
            produced: 48, trained: 24, dropped: [.stale: 8], inFlight: 8, lost: 8, leasesExpired: 1,
            refused: [.leaseExpired: 8])
        let increments = LedgerIncrements(from: old, to: new).increments
        let byMetric = Dictionary(grouping: increments, by: \.metric)
        #expect(byMetric[.samplesProduced]?.map(\.amount) == [32])
        #expect(byMetric[.samplesTrained]?.map(\.amount) == [16])
        #expect(byMetric[.samplesLost]?.map(\.amount) == [8])
        #expect(byMetric[.leasesExpired]?.map(\.amount) == [1])
        #expect(byMetric[.samplesDropped]?.map(\.labels) == [["stale"]])
        #expect(byMetric[.samplesRefused]?.map(\.labels) == [["lease expired"]])
        // Nothing moved, or a count went down: no increment.
        #expect(LedgerIncrements(from: new, to: new).increments.isEmpty)
        #expect(LedgerIncrements(from: new, to: old).increments.isEmpty)
    }

    @Test func tokenLagsWeighEveryToken() {
        func rollout(_ versions: [Int]) -> Rollout {
            Rollout(
                id: 0, group: 0, prompt: [1], completion: versions.map { _ in 1 },
                behaviourLogProbs: versions.map { _ in 0 }, versions: versions, reward: 0, outcome: .malformed
            )
        }
        let batch = RolloutBatch(rollouts: [rollout([3, 3, 4]), rollout([5])], groupSize: 2)
        let lags = tokenLags(batch, at: 5)
        #expect(lags.map(\.lag) == [0, 1, 2] && lags.map(\.tokens) == [1, 1, 2])
    }

    @Test func ratioSummaryHasBothTails() {
        let summary = RatioSummary((1...200).map { Double($0) })
        #expect(summary.p1 == 2 && summary.p99 == 198)
        #expect(RatioSummary([]).p1 == 1)
    }
}

/// A Python interpreter with `prometheus_client` (Debian's python3-prometheus-client), if any.
let prometheusPython: String? = {
    for python in ["/usr/bin/python3", "/usr/local/bin/python3", "/bin/python3"]
    where FileManager.default.isExecutableFile(atPath: python) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = ["-c", "import prometheus_client.parser"]
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { continue }
        process.waitUntilExit()
        if process.terminationStatus == 0 { return python }
    }
    return nil
}()

/// Scrapes `url` (and a path that is not served) with Python and parses the text with
/// prometheus_client's exposition parser; prints the families as JSON.
let scraper = #"""
    import json, sys, urllib.request, urllib.error
    from prometheus_client.parser import text_string_to_metric_families
    url = sys.argv[1]
    with urllib.request.urlopen(url) as reply:
        content_type = reply.headers["Content-Type"]
        text = reply.read().decode()
    try:
        urllib.request.urlopen(url.replace("/metrics", "/other"))
        other = 200
    except urllib.error.HTTPError as error:
        other = error.code
    families = {}
    for family in text_string_to_metric_families(text):
        families[family.name] = {
            "type": family.type, "help": family.documentation,
            "samples": [[s.name, s.labels, s.value] for s in family.samples]}
    print(json.dumps({"content_type": content_type, "other": other, "families": families}))
    """#

struct Scrape: Decodable {
    struct Family: Decodable {
        var type: String
        var help: String
        var samples: [Sample]
    }
    struct Sample: Decodable {
        var name: String
        var labels: [String: String]
        var value: Double

        init(from decoder: any Decoder) throws {
            var c = try decoder.unkeyedContainer()
            name = try c.decode(String.self)
            labels = try c.decode([String: String].self)
            value = try c.decode(Double.self)
        }
    }
    var content_type: String
    var other: Int
    var families: [String: Family]

    /// The family of `metric` (prometheus_client names a counter family without `_total`).
    func family(_ metric: ReinMetric) -> Family? {
        families[metric.kind == .counter ? String(metric.name.dropLast("_total".count)) : metric.name]
    }

    /// The value of `metric`'s sample named `name` (default: the metric's) with `labels`.
    func value(_ metric: ReinMetric, _ name: String? = nil, labels: [String: String] = [:]) -> Double? {
        family(metric)?.samples.first { $0.name == (name ?? metric.name) && $0.labels == labels }?.value
    }
}

func scrape(_ url: String, with python: String) throws -> Scrape {
    // Output through files, not pipes: reading a pipe may fail with EINTR while children exit.
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent(
        "rein-scrape-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let (out, err) = (dir.appendingPathComponent("out"), dir.appendingPathComponent("err"))
    _ = FileManager.default.createFile(atPath: out.path, contents: nil)
    _ = FileManager.default.createFile(atPath: err.path, contents: nil)
    let process = Process()
    process.executableURL = URL(fileURLWithPath: python)
    process.arguments = ["-c", scraper, url]
    process.standardOutput = try FileHandle(forWritingTo: out)
    process.standardError = try FileHandle(forWritingTo: err)
    try process.run()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        let problem = (try? String(contentsOf: err, encoding: .utf8)) ?? ""
        throw RuntimeError("the scraper failed (\(process.terminationStatus)): \(problem)")
    }
    return try JSONDecoder().decode(Scrape.self, from: Data(contentsOf: out))
}

@Suite("Metrics scrape of a live learner and worker")
struct MetricsScrapeTests {
    @Test(
        .enabled(
            if: prometheusPython != nil,
            "needs python3 with prometheus_client (apt-get install python3-prometheus-client)"))
    func aScrapeParsesAndShowsTheRunMoving() async throws {
        let python = try #require(prometheusPython)
        let registry = MetricsExposition.registry  // bootstraps swift-metrics for this process
        let endpoint = try await MetricsEndpoint.bind(
            host: "127.0.0.1", port: 0, registry: registry, logger: quiet)
        let group = ServiceGroup(services: [endpoint], logger: quiet)
        let serving = Task { try await group.run() }

        var (config, reference, folder) = try TestKit.tinyRun(steps: 4, maxStaleness: 2, injectLag: 1)
        config.train.trackerEvery = 1
        config.train.weightDecay = 0.5  // θ moves, so lagged ratios differ from 1
        let result = try await DistributedTrainer(
            config: config, reference: reference, folder: folder, workers: 1, transport: .inproc,
            logger: quiet
        ).run()
        #expect(try result.metrics().count == 4)

        let scraped = try scrape(endpoint.url, with: python)
        #expect(scraped.content_type.contains("version=0.0.4"))
        #expect(scraped.other == 404)
        // Every Rein family has its help text and the kind the catalog gives it.
        for (name, family) in scraped.families where name.hasPrefix("rein_") {
            let metric = try #require(ReinMetric(name: name) ?? ReinMetric(name: name + "_total"), "\(name)")
            #expect(family.type == metric.kind.rawValue, "\(name)")
            #expect(family.help == metric.help, "\(name)")
        }
        // Counters moved (other tests of this process may add to them: at least this run's).
        let batch = Double(config.train.promptsPerStep * config.train.groupSize)
        #expect((scraped.value(.samplesTrained) ?? 0) >= 4 * batch)
        #expect((scraped.value(.samplesProduced) ?? 0) >= 4 * batch)
        #expect((scraped.value(.batchesConsumed) ?? 0) >= 4)
        // Every drop and refusal reason has its series from the start.
        for reason in DropReason.allCases {
            #expect(scraped.value(.samplesDropped, labels: ["reason": reason.rawValue]) != nil, "\(reason)")
        }
        for reason in RefusalReason.allCases {
            #expect(scraped.value(.samplesRefused, labels: ["reason": reason.rawValue]) != nil, "\(reason)")
        }
        #expect(scraped.value(.workersConnected) != nil)
        // Every weight path has its series; this run (2 workers: auto broadcasts) published.
        for path in WeightDeliveryPath.allCases {
            #expect(scraped.value(.weightDeliveries, labels: ["path": path.rawValue]) != nil, "\(path)")
        }
        #expect((scraped.value(.weightDeliveries, labels: ["path": "broadcast"]) ?? 0) >= 4)
        #expect((scraped.value(.workerBatches) ?? 0) >= 4)
        #expect((scraped.value(.workerSamples) ?? 0) >= 4 * batch)
        // Token lag as a histogram: lag 1 injected, so no token at lag 0 only.
        let tokens = Double(try result.metrics().reduce(0) { $0 + $1.responseLength } * batch)
        #expect((scraped.value(.tokenLag, "rein_token_lag_count") ?? 0) >= tokens.rounded() - 1)
        #expect(scraped.family(.tokenLag)?.type == "histogram")
        #expect((scraped.value(.learnerStepSeconds, "rein_learner_step_seconds_count") ?? 0) >= 4)
        #expect((scraped.value(.broadcastSeconds, "rein_weight_broadcast_seconds_count") ?? 0) >= 4)
        for metric in [ReinMetric.learnerBusyFraction, .tokensPerSecond, .tokenRatioESSFraction] {
            let value = try #require(scraped.value(metric), "\(metric.name)")
            #expect(value > 0, "\(metric.name)")
        }
        // The tracker's latest observation at lag 1: ratio tails, KL(μ‖π_θ), the form's bias.
        // (Gauges are process-wide: a tracker of another test may have set them since, so only
        // what holds for every run is checked.)
        let lag1 = ["lag": "1"]
        let p1 = try #require(scraped.value(.trackerRatioP1, labels: lag1))
        let p99 = try #require(scraped.value(.trackerRatioP99, labels: lag1))
        #expect(0 < p1 && p1 <= p99)
        #expect(try #require(scraped.value(.trackerBehaviourKL, labels: lag1)) >= 0)
        let ess = try #require(scraped.value(.trackerRatioESSFraction, labels: lag1))
        #expect(0 < ess && ess <= 1)
        #expect(scraped.value(.trackerKLBias, labels: ["lag": "1", "form": "k2_loss_sgw_token"]) != nil)
        #expect((scraped.value(.trackerStep) ?? 0) >= 1)

        try await showsUnderTmux(endpoint)

        await group.triggerGracefulShutdown()
        try await serving.value  // the endpoint stops on graceful shutdown
    }
}

/// The `rein` executable built next to the test bundle, if any.
let reinExecutable: String? = {
    var dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    for _ in 0..<3 {
        let candidate = dir.appendingPathComponent("rein").path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        dir = dir.deletingLastPathComponent()
    }
    return nil
}()

/// tmux, if installed.
let tmux: String? = ["/usr/bin/tmux", "/usr/local/bin/tmux", "/bin/tmux"].first {
    FileManager.default.isExecutableFile(atPath: $0)
}

/// Runs `executable` with `arguments` through `posix_spawn` and `waitpid`; its exit status and
/// output. (Not Foundation's `Process`: it waits for an inherited socket to close, which the
/// daemonised tmux server keeps open.)
func run(_ executable: String, _ arguments: [String]) throws -> (Int32, String) {
    let file = FileManager.default.temporaryDirectory.appendingPathComponent("rein-out-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: file) }
    func quoted(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'" }
    let command =
        "exec " + ([executable] + arguments).map(quoted).joined(separator: " ") + " >"
        + quoted(file.path) + " 2>&1 </dev/null"
    let words: [String] = ["/bin/sh", "-c", command]
    var argv: [UnsafeMutablePointer<CChar>?] = words.map { strdup($0) }
    argv.append(nil)
    defer { for pointer in argv { free(pointer) } }
    // The child starts with no signal blocked and default handlers (the test process blocks
    // signals on its threads; a tmux server inheriting that mask never sees its panes exit).
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var signals = sigset_t()
    sigemptyset(&signals)
    posix_spawnattr_setsigmask(&attributes, &signals)
    for signal in [SIGHUP, SIGINT, SIGTERM, SIGCHLD, SIGPIPE] { sigaddset(&signals, signal) }
    posix_spawnattr_setsigdefault(&attributes, &signals)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
    var pid: pid_t = 0
    let spawned = posix_spawn(&pid, "/bin/sh", nil, &attributes, argv, environ)
    guard spawned == 0 else { throw RuntimeError("posix_spawn \(executable): error \(spawned)") }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0, errno == EINTR {}
    let exit = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    return (exit, (try? String(contentsOf: file, encoding: .utf8)) ?? "")
}

/// `rein top` on `endpoint` in a tmux pane shows the run (skipped without tmux or the built rein).
func showsUnderTmux(_ endpoint: MetricsEndpoint) async throws {
    guard let tmux, let rein = reinExecutable else {
        print("rein top under tmux: skipped (needs tmux and the built rein)")
        return
    }
    let server = "rein-top-test-\(UUID().uuidString.prefix(8))"
    let (started, output) = try run(
        tmux,
        [
            "-L", server, "new-session", "-d", "-x", "110", "-y", "40", "-s", "top",
            "\(rein) top --interval 0.2 \(endpoint.host):\(endpoint.port)",
        ])
    #expect(started == 0, "\(output)")
    defer { _ = try? run(tmux, ["-L", server, "kill-server"]) }
    // Waits for the first full frame (rein top starting on a busy machine), however long it takes
    // up to a minute; nothing is timed.
    var pane = ""
    for _ in 0..<300 {
        pane = try run(tmux, ["-L", server, "capture-pane", "-p", "-t", "top"]).1
        if pane.contains("wire     rejected") { break }
        try await Task.sleep(for: .milliseconds(200))
    }
    #expect(pane.contains("rein top · http://127.0.0.1:\(endpoint.port)/metrics"), "\(pane)")
    #expect(pane.contains("learner  version"), "\(pane)")
    #expect(pane.contains("ledger   produced"), "\(pane)")
    #expect(pane.contains("lag      tokens by lag"), "\(pane)")
    #expect(pane.contains("tracker  latest observation"), "\(pane)")
    #expect(pane.contains("workers  batches"), "\(pane)")
}
