import ArgumentParser
import Foundation
import Logging
import Rein
import ReinActors
import ReinModel
import ReinRuntime
import ReinTasks
import ZeroMQ

/// `rein bench scale`: one learner against 16, 64, 256… real rollout workers whose sampling costs
/// nothing, packed many to a helper process, on the real protocol over loopback TCP.
struct ScaleBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scale",
        abstract:
            "One learner against N real rollout workers with a stand-in sampler: overhead, broadcast, joins, latency.",
        discussion: """
            For each N in --workers: (1) broadcast: the configured model's weights published to N \
            subscribers (WeightCaches, as in workers) against the same frames over N raw PUSH/PULL \
            pairs, alternating, medians of --repeats. (2) run: a learner in this process (tcp on \
            127.0.0.1, weights delivered by runtime.weight_delivery — auto unless --set — and sample \
            stream on) and N RolloutWorkerActors in helper \
            processes of --per-process workers each (each worker its own actor system: its own \
            connections), sampling with a stand-in that sleeps --sample-ms (× a factor uniform in \
            [1 − S, 1 + S] with --sample-spread S: real rollouts differ in length) and returns a canned \
            batch that passes the learner's audit. The run's model is --run-model (d_model x layers), \
            pacing bound, max_staleness 2N (× ⌈(1 + S)/(1 − S)⌉ with a spread: room for every worker), N × --batches-per-worker batches. Measured: the time \
            from the common start until N workers completed their handshake with the learner, and \
            until every one held its first work order; the learner process's CPU minus its \
            learner-step threads' CPU (calls, heartbeats, admission, audits, decoding, broadcast), \
            as a fraction of one core and per worker; the learner's RSS and open files per \
            connection; work-order latency (from handing a batch over to holding the next order, \
            weights included) p50/p99 over all workers, and its parts: handing the batch over, asking \
            (the round trip), weights; the learner's own part (a request read off its socket to \
            its reply); samples trained per second; versions \
            broadcast, orders that carried weights, fetches. \
            Goals: 256 workers overhead ≤ 10% of one core, broadcast to 64 ≤ 2× raw, 256 joined ≤ 5 s, \
            work-order p99 ≤ 50 ms.
            """
    )

    @OptionGroup var options: ConfigOptions
    @OptionGroup var node: NodeOptions

    @Option(name: .long, help: "Worker counts, comma-separated.")
    var workers = "16,64,256"

    @Option(name: .long, help: "Workers per helper process.")
    var perProcess = 32

    @Option(name: .long, help: "Stand-in sampling time per batch, in milliseconds.")
    var sampleMs = 1000

    @Option(
        name: .long,
        help:
            "Spread of the sampling times: each batch takes --sample-ms × a factor uniform in [1 − S, 1 + S] (0: all the same, the workers hand over in lockstep)."
    )
    var sampleSpread = 0.0

    @Option(name: .long, help: "Batches per worker in the run part (the run trains N × this).")
    var batchesPerWorker = 4

    @Option(name: .long, help: "The run part's model: D_MODELxLAYERS (2 heads).")
    var runModel = "32x2"

    @Option(name: .long, help: "Broadcast measurements per N (the median is reported).")
    var repeats = 5

    @Option(name: .long, help: "Parts: broadcast, run (comma-separated).")
    var parts = "broadcast,run"

    @Flag(
        name: .long,
        help:
            "Run the learner on the first CPU alone and the helper processes on the others (workers are on other machines in a real run)."
    )
    var pin = false

    @Flag(name: .long, help: "Print one JSON object instead of lines.")
    var json = false

    func validate() throws {
        guard (try? ScaleBenchPlan.counts(workers)) != nil else {
            throw ValidationError("--workers: positive counts, comma-separated (e.g. 16,64,256)")
        }
        guard perProcess >= 1, sampleMs >= 0, batchesPerWorker >= 1, repeats >= 1 else {
            throw ValidationError("--per-process, --batches-per-worker and --repeats ≥ 1, --sample-ms ≥ 0")
        }
        guard (0..<1).contains(sampleSpread) else {
            throw ValidationError("--sample-spread: from 0 up to (not including) 1")
        }
        guard ScaleBenchPlan.model(runModel) != nil else {
            throw ValidationError("--run-model: D_MODELxLAYERS with D_MODEL even, e.g. 32x2")
        }
        for part in parts.split(separator: ",") where !["broadcast", "run"].contains(part) {
            throw ValidationError("--parts: unknown part '\(part)' (broadcast, run)")
        }
    }

    func run() async throws {
        let logger = Logger(label: "rein.bench.scale")
        var pinning: CPUPinning?
        if pin {
            guard let split = CPUPinning.split(try CPUPinning.allowed()) else {
                throw CLIError("--pin needs at least 2 CPUs: this process may run on one")
            }
            try CPUPinning.pinProcess(to: split.learner)
            pinning = split
        }
        let plan = try ScaleBenchPlan(
            counts: ScaleBenchPlan.counts(workers), perProcess: perProcess, sampleMs: sampleMs,
            sampleSpread: sampleSpread,
            batchesPerWorker: batchesPerWorker, runModel: runModel, repeats: repeats,
            parts: Set(parts.split(separator: ",").map(String.init)),
            configArguments: options.arguments, nodeArguments: node.arguments, helperCPUs: pinning?.helpers)
        let limit = try FileLimit.ensure(
            plan.filesNeeded, for: "rein bench scale with \(plan.largest) workers")
        let config = try options.load()
        var report = ScaleReport(
            load: loadAverage(), cpu: cpuModel(), fileLimit: Int(limit), sampleMs: sampleMs,
            sampleSpread: sampleSpread,
            runModel: runModel,
            pinned: pinning.map {
                "learner on CPU \(CPUPinning.format($0.learner)), helpers on \(CPUPinning.format($0.helpers))"
            },
            rows: [])
        if !json { emit(report.header) }
        for count in plan.counts {
            let row = try await ScaleMeasurement(
                plan: plan, options: options, config: config, settings: node.settings(config), logger: logger
            ).measure(workers: count)
            report.rows.append(row)
            if !json { emit(row.summary) }
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            encoder.keyEncodingStrategy = .convertToSnakeCase
            emit(String(decoding: try encoder.encode(report), as: UTF8.self))
        }
    }
}

/// `rein bench scale-workers` (hidden): a helper process of `rein bench scale` holding
/// `--count` rollout workers with the stand-in sampler, each on its own actor system.
struct ScaleWorkers: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scale-workers",
        abstract: "A helper process of rein bench scale (not for runs).",
        shouldDisplay: false
    )

    @OptionGroup var options: ConfigOptions
    @OptionGroup var node: NodeOptions

    @Option(name: .long, help: "The learner's endpoint.")
    var learner: String

    @Option(name: .long, help: "Workers in this process.")
    var count: Int

    @Option(name: .long, help: "The first worker's number (names are scale-N).")
    var first = 0

    @Option(name: .long, help: "Stand-in sampling time per batch, in milliseconds.")
    var sampleMs = 1000

    @Option(name: .long, help: "Spread of the sampling times (see rein bench scale).")
    var sampleSpread = 0.0

    @Flag(
        name: .long,
        help: "Make the workers, print a ready line, start them on a line on stdin (rein bench scale).")
    var readySignal = false

    @Option(name: .long, help: "Where to write this process's report (JSON; default none).")
    var report: String?

    @Option(name: .long, help: "Run on these CPUs only (e.g. 1-3; rein bench scale --pin).")
    var cpus: String?

    @Option(name: .long, help: "Seconds to look for a lost learner again (scripts/chaos.sh; default 0).")
    var reconnectTimeout = 0.0

    func validate() throws {
        guard count >= 1, sampleMs >= 0, reconnectTimeout >= 0, (0..<1).contains(sampleSpread) else {
            throw ValidationError(
                "--count ≥ 1, --sample-ms ≥ 0, --reconnect-timeout ≥ 0, 0 ≤ --sample-spread < 1")
        }
    }

    func run() async throws {
        let logger = Logger(label: "rein.bench.scale-workers")
        if let cpus {
            guard let list = CPUPinning.parse(cpus) else {
                throw CLIError("--cpus: expected e.g. 1-3,5, got '\(cpus)'")
            }
            try CPUPinning.pinProcess(to: list)
        }
        try FileLimit.ensure(
            8 * count + FileLimit.reserve, for: "a scale helper with \(count) workers")
        let config = try options.load()
        let helper = try ScaleHelper(
            config: config, settings: node.settings(config), learner: learner, count: count, first: first,
            sampleDelay: .milliseconds(sampleMs), sampleSpread: sampleSpread,
            reconnectTimeout: .milliseconds(Int(reconnectTimeout * 1000)),
            logger: logger)
        let result = try await helper.run(readySignal: readySignal)
        if let report { try RunFolder.writeAtomically(try JSONEncoder().encode(result), to: report) }
    }
}
