import Foundation
import Logging
import Rein
import ReinActors
import ReinModel
import ReinRandom
import ReinRuntime
import ReinTasks
import Synchronization
import ZeroMQ

/// What `rein bench scale` measures, parsed from its flags.
struct ScaleBenchPlan: Sendable {
    var counts: [Int]
    var perProcess: Int
    var sampleMs: Int
    /// Each batch's stand-in sampling time is `sampleMs` × a factor in [1 − spread, 1 + spread].
    var sampleSpread: Double = 0
    var batchesPerWorker: Int
    var runModel: String
    var repeats: Int
    var parts: Set<String>
    /// `--config`/`--task`/`--set` as given, for the helper processes.
    var configArguments: [String]
    /// `--heartbeat-timeout`/`--call-timeout` as given, for the helper processes.
    var nodeArguments: [String]
    /// The CPUs the helper processes run on (`--pin`), or `nil`: wherever the kernel puts them.
    var helperCPUs: [Int]? = nil

    /// The counts of `--workers` (`16,64,256`).
    static func counts(_ text: String) throws -> [Int] {
        let counts = text.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !counts.isEmpty, counts.allSatisfy({ ($0 ?? 0) > 0 }) else {
            throw CLIError("--workers: expected positive counts, comma-separated, got '\(text)'")
        }
        return counts.compactMap(\.self)
    }

    /// (d_model, layers) of `--run-model` (`32x2`).
    static func model(_ text: String) -> (dModel: Int, layers: Int)? {
        let parts = text.split(separator: "x").compactMap { Int($0) }
        guard parts.count == 2, parts[0] >= 2, parts[0] % 2 == 0, parts[1] >= 1 else { return nil }
        return (parts[0], parts[1])
    }

    var largest: Int { counts.max() ?? 0 }

    /// The run part's `max_staleness`: room for every worker, so that the learner holds no request
    /// for its pacing window and the run measures serving, not pacing. A learner trains in index
    /// order, so while the slowest batch of a round is out the others run ahead: 2N in lockstep,
    /// and 2N × ⌈(1 + S) / (1 − S)⌉ when sampling times spread by S (the fastest worker samples
    /// that many batches while the slowest samples one).
    func staleness(workers: Int) -> Int {
        2 * workers * Int(((1 + sampleSpread) / (1 - sampleSpread)).rounded(.up))
    }

    /// Open files this process needs at the largest N: the broadcast part holds N subscribers, N
    /// raw receivers and N raw senders (each end of a TCP connection in this process); the run
    /// part's learner three connections per worker.
    var filesNeeded: Int { 6 * largest + FileLimit.reserve }

    /// The run part's overrides: its model, one thread per part, no evaluation, checkpoints or
    /// tracker, pacing bound with room for every worker (``staleness(workers:)``),
    /// `workers × batchesPerWorker` batches.
    func runOverrides(workers: Int) -> [String] {
        let (dModel, layers) = Self.model(runModel) ?? (32, 2)
        return [
            "model.d_model=\(dModel)", "model.layers=\(layers)", "model.heads=2", "threads=1",
            "train.steps=\(workers * batchesPerWorker)", "train.max_staleness=\(staleness(workers: workers))",
            "train.inject_lag=0", "train.eval_every=0", "train.checkpoint_every=0", "train.tracker_every=0",
            "runtime.pacing=bound", "runtime.max_workers=\(workers)",
        ]
    }
}

extension ConfigOptions {
    /// The options as given on the command line (for child processes).
    var arguments: [String] {
        (config.map { ["--config", $0] } ?? []) + (task.map { ["--task", $0] } ?? [])
            + overrides.flatMap { ["--set", $0] }
    }
}

/// `rein bench scale`'s output.
struct ScaleReport: Codable {
    var benchmark = "scale"
    var load: String
    var cpu: String
    var fileLimit: Int
    var sampleMs: Int
    var sampleSpread: Double
    var runModel: String
    /// Where `--pin` put the learner and the helpers (`nil`: not pinned).
    var pinned: String?
    var rows: [ScaleRow]

    var header: String {
        "scale: load \(load) at start, \(cpu), open-file limit \(fileLimit); stand-in sampling \(sampleMs) ms per batch"
            + (sampleSpread > 0
                ? String(format: " ± %.0f%% (uniform, each batch its own)", 100 * sampleSpread)
                : " (every batch the same: the workers hand over in lockstep)")
            + ", run model \(runModel)"
            + "; " + (pinned ?? "not pinned (learner and helpers share the CPUs)")
    }
}

/// The figures of one N.
struct ScaleRow: Codable {
    var workers: Int
    var processes: Int
    /// Broadcast part: bytes of the configured model's weights, medians in milliseconds.
    var broadcastBytes: Int?
    var broadcastMs: Double?
    var rawMs: Double?
    var broadcastRatio: Double?
    /// Seconds from the common start until N workers completed their handshake with the learner.
    var joinedSeconds: Double?
    /// Seconds from the common start until every worker held its first work order.
    var firstOrderSeconds: Double?
    /// Learner process CPU seconds from the start until its last batch was recorded, and of its
    /// step threads; the wall seconds between.
    var learnerCPUSeconds: Double?
    var stepCPUSeconds: Double?
    var wallSeconds: Double?
    /// Learner CPU seconds after the last batch: the run's end (the final checkpoint, reading
    /// `metrics.jsonl` back for the result, `ledger.json`, `workers.json`), once per run.
    var endCPUSeconds: Double?
    /// (learner CPU − step CPU) / wall: the cost of serving the workers, in cores.
    var overheadCores: Double?
    var overheadPerWorkerPercent: Double?
    /// (learner CPU − step CPU) per batch trained, in milliseconds.
    var servingMsPerBatch: Double?
    var learnerStepMs: Double?
    var rssPerConnectionKib: Double?
    var filesPerConnection: Double?
    var orderLatencyP50Ms: Double?
    var orderLatencyP99Ms: Double?
    var orderLatencyMaxMs: Double?
    /// The learner's own part of a work order: from the request's frames read off its socket to
    /// the reply handed back (its transport's and actor's queues included; not the network, not
    /// the worker), over the orders that carried work.
    var learnerAnswerP50Ms: Double?
    var learnerAnswerP99Ms: Double?
    /// The work order's time at the workers in its parts (``OrderWait``), milliseconds: handing
    /// the batch over, asking for the order (the round trip), getting its weights.
    var handOverMs: Quantiles?
    var requestMs: Quantiles?
    var weightsMs: Quantiles?
    /// The helper processes' CPU seconds, all of them, from the common start until their workers
    /// were done (the workers' side of every call, heartbeats, the stand-in's batches).
    var helperCPUSeconds: Double?
    var orders: Int?
    /// Orders the learner handed out after holding their request (nothing could go out when it
    /// came: training behind by the pacing bound): their time is the wait for training.
    var heldOrders: Int?
    /// Orders that carried work: each worker's first and one after each batch.
    var ordersWithWork: Int?
    var trained: Int?
    var samplesTrainedPerSecond: Double?
    var ledgerBalances: Bool?
    /// How new weights reached the workers (`runtime.weight_delivery`).
    var deliveries: WeightDeliveryCounts?
    var load: String

    /// `; 4 of the 256 orders with work (1.6%) held …` when the learner held any: their time is in
    /// the percentiles.
    var heldSummary: String {
        guard let heldOrders, heldOrders > 0, let ordersWithWork, ordersWithWork > 0 else { return "" }
        return String(
            format:
                "; %d of the %d orders with work (%.1f%%, first ones included) held by the learner until its pacing window let them out (training behind)",
            heldOrders, ordersWithWork, 100 * Double(heldOrders) / Double(ordersWithWork))
    }

    var summary: String {
        var lines = ["N=\(workers) (\(processes) helper process(es); load \(load) after)"]
        if let broadcastMs, let rawMs, let broadcastRatio, let broadcastBytes {
            lines.append(
                String(
                    format:
                        "  broadcast %d KiB to %d: %.1f ms, raw PUSH/PULL ×%d %.1f ms, ratio %.2f (goal ≤ 2 at 64)",
                    broadcastBytes / 1024, workers, broadcastMs, workers, rawMs, broadcastRatio))
        }
        if let joinedSeconds, let firstOrderSeconds {
            lines.append(
                String(
                    format: "  joined %.2f s (handshakes), all working %.2f s (goal ≤ 5 s at 256)",
                    joinedSeconds,
                    firstOrderSeconds))
        }
        if let overheadCores, let overheadPerWorkerPercent, let learnerCPUSeconds, let stepCPUSeconds,
            let wallSeconds, let learnerStepMs
        {
            lines.append(
                String(
                    format:
                        "  learner CPU %.2f s, step threads %.2f s (%.1f ms/step), over %.1f s until the last batch: serving costs %.1f%% of a core, %.3f%% per worker, %.1f ms per batch (goal ≤ 10%% at 256); then %.2f s CPU to end the run",
                    learnerCPUSeconds, stepCPUSeconds, learnerStepMs, wallSeconds, 100 * overheadCores,
                    overheadPerWorkerPercent, servingMsPerBatch ?? .nan, endCPUSeconds ?? .nan))
        }
        if let rssPerConnectionKib, let filesPerConnection {
            lines.append(
                String(
                    format: "  learner per connection: %.0f KiB RSS, %.2f open files", rssPerConnectionKib,
                    filesPerConnection))
        }
        if let orderLatencyP50Ms, let orderLatencyP99Ms, let orderLatencyMaxMs, let orders {
            lines.append(
                String(
                    format:
                        "  work order p50 %.1f ms, p99 %.1f ms, max %.1f ms over %d orders (goal p99 ≤ 50 ms)%@",
                    orderLatencyP50Ms, orderLatencyP99Ms, orderLatencyMaxMs, orders, heldSummary))
        }
        if let handOverMs, let requestMs, let weightsMs {
            lines.append(
                String(
                    format:
                        "  of it at the workers: handing the batch over p50 %.1f ms, p99 %.1f ms; asking (the round trip) p50 %.1f ms, p99 %.1f ms; weights p50 %.1f ms, p99 %.1f ms",
                    handOverMs.p50, handOverMs.p99, requestMs.p50, requestMs.p99, weightsMs.p50, weightsMs.p99
                ))
        }
        if let helperCPUSeconds, let wallSeconds, wallSeconds > 0 {
            lines.append(
                String(
                    format:
                        "  the helper processes: %.2f s CPU over the run (%.0f%% of one core; heartbeats and calls of all the workers)",
                    helperCPUSeconds, 100 * helperCPUSeconds / wallSeconds))
        }
        if let learnerAnswerP50Ms, let learnerAnswerP99Ms {
            lines.append(
                String(
                    format:
                        "  of it at the learner (a request read off the socket to its reply, its queues included): p50 %.1f ms, p99 %.1f ms",
                    learnerAnswerP50Ms, learnerAnswerP99Ms))
        }
        if let trained, let samplesTrainedPerSecond, let ledgerBalances {
            lines.append(
                String(
                    format: "  %d samples trained, %.0f/s; ledger %@", trained, samplesTrainedPerSecond,
                    ledgerBalances ? "balances" : "DOES NOT BALANCE"))
        }
        if let deliveries { lines.append("  weights: \(deliveries.summary)") }
        return lines.joined(separator: "\n")
    }
}

/// The learner process's resources at one moment.
/// This process's CPU time and the time when the learner recorded the run's last batch.
final class LastBatchSample: Sendable {
    private let batches: Int
    private let state = Mutex<(recorded: Int, sample: (ProcessSample, TimeInterval)?)>((0, nil))

    init(batches: Int) { self.batches = batches }

    /// The learner recorded a batch (its `onStep`).
    func recorded() {
        state.withLock { state in
            state.recorded += 1
            if state.recorded == batches {
                state.sample = (ProcessSample.now(), Date().timeIntervalSince1970)
            }
        }
    }

    /// The sample at the last batch (`nil` until then).
    var sample: (ProcessSample, TimeInterval)? { state.withLock { $0.sample } }
}

struct ProcessSample: Sendable {
    var cpuSeconds: Double
    var residentBytes: Int
    var openFiles: Int

    static func now() -> ProcessSample {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        let cpu =
            Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
            + Double(usage.ru_stime.tv_sec)
            + Double(usage.ru_stime.tv_usec) / 1e6
        let statm = (try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8)) ?? ""
        let pages = statm.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
        let files = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? 0
        return ProcessSample(
            cpuSeconds: cpu, residentBytes: pages * Int(sysconf(Int32(_SC_PAGESIZE))), openFiles: files)
    }
}

/// The CPU model (for the report).
func cpuModel() -> String {
    let info = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
    let line = info.split(separator: "\n").first { $0.hasPrefix("model name") }
    let name = line.flatMap { $0.split(separator: ":", maxSplits: 1).last }
    return name.map { $0.trimmingCharacters(in: .whitespaces) } ?? "unknown CPU"
}

/// One N of `rein bench scale`: the broadcast part, then the run part.
struct ScaleMeasurement {
    let plan: ScaleBenchPlan
    let options: ConfigOptions
    let config: RunConfig
    let settings: ReinActorSystem.Settings
    let logger: Logger

    func measure(workers: Int) async throws -> ScaleRow {
        let processes = (workers + plan.perProcess - 1) / plan.perProcess
        var row = ScaleRow(workers: workers, processes: processes, load: "")
        if plan.parts.contains("broadcast") {
            let task = try ArithmeticTask(config: config.task)
            let parameters = try GPTParameters(
                config: config.gptConfig(vocab: task.tokenizer.vocabSize), seed: 1)
            // N subscribers, N raw receivers and N raw senders, each with its monitor sockets.
            let context = try ZMQContext(maxSockets: 8 * workers + 64)
            defer { context.shutdown() }
            let (broadcast, raw) = try await broadcastAndRawMs(
                parameters.values, subscribers: workers, repeats: plan.repeats, context: context,
                logger: logger)
            row.broadcastBytes = parameters.values.count * 4
            (row.broadcastMs, row.rawMs, row.broadcastRatio) = (broadcast, raw, broadcast / raw)
        }
        if plan.parts.contains("run") { try await runPart(workers: workers, processes: processes, row: &row) }
        row.load = loadAverage()
        return row
    }

    /// The learner here, `workers` workers in `processes` helpers; fills in the run's figures.
    private func runPart(workers: Int, processes: Int, row: inout ScaleRow) async throws {
        let overrides = plan.runOverrides(workers: workers)
        var withOverrides = options
        withOverrides.overrides += overrides
        var run = try withOverrides.load()
        let task = try ArithmeticTask(config: run.task)
        let gpt = run.gptConfig(vocab: task.tokenizer.vocabSize)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "rein-bench-scale-\(UUID().uuidString)"
        ).path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        run.runDir = directory
        let folder = try RunFolder(path: directory)
        let limits = WireLimits.forRun(run, model: gpt)
        // The learner's CPU and the time when it has recorded its last batch: what serving the
        // run cost, apart from ending it.
        let lastBatch = LastBatchSample(batches: run.train.steps)
        let context = try ZMQContext()
        let system = try ReinActorSystem(
            context: context,
            configuration: .init(name: LearnerActor.name, bind: "tcp://127.0.0.1:*", limits: limits),
            settings: settings, logger: logger)
        let node = try await LearnerNode.start(
            on: system,
            channels: ZMQBulkChannels(context: context, wire: WireOptions(limits: limits), logger: logger),
            options: .init(
                config: run, reference: try GPTParameters(config: gpt, seed: 1), folder: folder,
                onStep: { _ in lastBatch.recorded() },
                broadcastBind: "tcp://127.0.0.1:*", samplesBind: "tcp://127.0.0.1:*"),
            logger: logger)
        defer { node.close() }
        guard let endpoint = system.endpoint else { throw CLIError("the learner did not bind") }
        let joins = system.membershipEvents()
        let answers = system.answerTimes(of: LearnerActor.requestWorkMethod)
        let idle = ProcessSample.now()
        signal(SIGPIPE, SIG_IGN)  // a helper that died has closed its stdin: start() must not kill us
        let helpers = try (0..<processes).map { index in
            try HelperProcess(
                arguments: helperArguments(
                    index: index, workers: workers, endpoint: endpoint, overrides: overrides,
                    report: directory + "/helper-\(index).json"),
                report: directory + "/helper-\(index).json")
        }
        // Every helper has made its workers: start them all at once.
        for helper in helpers { try await helper.ready() }
        let startAt = Date().timeIntervalSince1970
        for helper in helpers { helper.start() }
        let start = ProcessSample.now()
        var joined = 0
        for await event in joins {
            if case .joined = event { joined += 1 }
            if joined == workers { break }
        }
        let joinedAt = Date().timeIntervalSince1970
        let connected = ProcessSample.now()
        let result = try await node.serve(drainTimeout: .seconds(10))
        let end = ProcessSample.now()
        row.heldOrders = try await node.learner.heldOrderCount()
        guard let (last, lastAt) = lastBatch.sample else {
            throw CLIError("the learner ended the run without recording its \(run.train.steps) batches")
        }
        let wall = lastAt - startAt
        await system.shutdown()
        var reports: [ScaleHelperReport] = []
        for helper in helpers { reports.append(try await helper.finish()) }
        let stepCPU = result.utilisation.stepCPUSeconds
        let trainedSteps = try result.metrics().filter { $0.learner != nil }.count
        row.joinedSeconds = joinedAt - startAt
        row.firstOrderSeconds = (reports.flatMap(\.firstOrders).max() ?? startAt) - startAt
        row.learnerCPUSeconds = last.cpuSeconds - start.cpuSeconds
        row.endCPUSeconds = end.cpuSeconds - last.cpuSeconds
        row.stepCPUSeconds = stepCPU
        row.wallSeconds = wall
        row.overheadCores = (last.cpuSeconds - start.cpuSeconds - stepCPU) / wall
        row.overheadPerWorkerPercent = 100 * (row.overheadCores ?? 0) / Double(workers)
        row.learnerStepMs = trainedSteps > 0 ? 1000 * stepCPU / Double(trainedSteps) : nil
        row.servingMsPerBatch =
            trainedSteps > 0
            ? 1000 * (last.cpuSeconds - start.cpuSeconds - stepCPU) / Double(trainedSteps) : nil
        row.rssPerConnectionKib =
            Double(connected.residentBytes - idle.residentBytes) / 1024 / Double(workers)
        row.filesPerConnection = Double(connected.openFiles - idle.openFiles) / Double(workers)
        let gaps = reports.flatMap(\.orderGapsMs)
        if let gaps = Quantiles(gaps) {
            (row.orderLatencyP50Ms, row.orderLatencyP99Ms, row.orderLatencyMaxMs) = (
                gaps.p50, gaps.p99, gaps.max
            )
        }
        row.orders = gaps.count
        row.handOverMs = Quantiles(reports.flatMap(\.handOverMs))
        row.requestMs = Quantiles(reports.flatMap(\.requestMs))
        row.weightsMs = Quantiles(reports.flatMap(\.weightsMs))
        row.helperCPUSeconds = reports.reduce(0) { $0 + $1.cpuSeconds }
        // Answers in the order they were sent: first every order that carried work (the workers
        // counted them: their first orders and one after each batch; held ones among them, when
        // they were let out), then the last request of each worker, held until the run ended. A
        // `wait` answer (a request held past half the call timeout) would come between them;
        // with the bench's workers always asking for the next batch there is none before the end.
        let ordersWithWork = reports.reduce(0) { $0 + $1.firstOrders.count + $1.orderGapsMs.count }
        row.ordersWithWork = ordersWithWork
        if let answered = Quantiles(answers.all.prefix(ordersWithWork).map { 1000 * seconds($0) }) {
            (row.learnerAnswerP50Ms, row.learnerAnswerP99Ms) = (answered.p50, answered.p99)
        }
        row.trained = result.ledger.trained
        row.samplesTrainedPerSecond = result.trainedPerSecond
        row.ledgerBalances = result.ledger.balances
        row.deliveries = result.deliveries
    }

    private func helperArguments(
        index: Int, workers: Int, endpoint: String, overrides: [String], report: String
    ) -> [String] {
        let first = index * plan.perProcess
        let count = min(plan.perProcess, workers - first)
        return ["bench", "scale-workers"] + plan.configArguments + overrides.flatMap { ["--set", $0] }
            + plan.nodeArguments + [
                "--learner", endpoint, "--count", "\(count)", "--first", "\(first)", "--sample-ms",
                "\(plan.sampleMs)", "--sample-spread", "\(plan.sampleSpread)", "--ready-signal", "--report",
                report,
            ] + (plan.helperCPUs.map { ["--cpus", CPUPinning.format($0)] } ?? [])
    }
}

/// A helper process of `rein bench scale` (its stderr ours): says when its workers are made,
/// starts them on ``start()``.
final class HelperProcess: Sendable {
    private let process: Process
    /// The helper's stdin: ``start()`` writes a line to it.
    private let input: FileHandle
    private let reportPath: String
    private let exit = ExitStatus()
    private let readiness = ExitStatus()
    private let lines = LineBuffer()

    init(arguments: [String], report: String) throws {
        reportPath = report
        process = Process()
        process.executableURL = URL(fileURLWithPath: try executablePath())
        process.arguments = arguments
        let out = Pipe()
        process.standardOutput = out
        let input = Pipe()
        process.standardInput = input
        self.input = input.fileHandleForWriting
        process.terminationHandler = { [exit, readiness] process in
            exit.set(process.terminationStatus)
            readiness.set(1)  // never ready
        }
        out.fileHandleForReading.readabilityHandler = { [readiness, lines] handle in
            let data = handle.availableData
            if data.isEmpty { handle.readabilityHandler = nil }
            for line in lines.lines(adding: data) where line == ScaleHelper.readyLine { readiness.set(0) }
        }
        try process.run()
    }

    /// Returns once the helper made its workers.
    /// - Throws: ``CLIError`` if it exited first.
    func ready() async throws {
        guard await readiness.wait() == 0 else {
            throw CLIError("a scale helper exited before its workers were made (status \(await exit.wait()))")
        }
    }

    /// Starts its workers.
    func start() { try? input.write(contentsOf: Data("start\n".utf8)) }

    /// Waits for the helper to exit and reads its report.
    /// - Throws: ``CLIError`` if it failed or wrote no report.
    func finish() async throws -> ScaleHelperReport {
        let status = await exit.wait()
        guard status == 0 else { throw CLIError("a scale helper exited with status \(status)") }
        guard let data = FileManager.default.contents(atPath: reportPath) else {
            throw CLIError("a scale helper wrote no report to \(reportPath)")
        }
        return try JSONDecoder().decode(ScaleHelperReport.self, from: data)
    }
}

/// A process's exit status, set once (from its termination handler) and awaited.
final class ExitStatus: Sendable {
    private let state = Mutex<(status: Int32?, waiter: CheckedContinuation<Int32, Never>?)>((nil, nil))

    /// Sets the status (the first one set stays).
    func set(_ status: Int32) {
        let waiter = state.withLock { state -> CheckedContinuation<Int32, Never>? in
            guard state.status == nil else { return nil }
            state.status = status
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: status)
    }

    func wait() async -> Int32 {
        await withCheckedContinuation { continuation in
            let done = state.withLock { state -> Int32? in
                if let status = state.status { return status }
                state.waiter = continuation
                return nil
            }
            if let done { continuation.resume(returning: done) }
        }
    }
}

/// What a helper process measured.
struct ScaleHelperReport: Codable {
    /// When each worker held its first work order (seconds since 1970).
    var firstOrders: [Double]
    /// Milliseconds from handing over one batch to holding the next work order, every order.
    var orderGapsMs: [Double]
    /// When each work order was held (seconds since 1970), every order of every worker (the chaos
    /// script checks that a host cut off and healed got orders again before the learner restarted).
    var orderTimes: [Double]
    /// The parts of each order's time at the workers (``OrderWait``), milliseconds, every order
    /// but each worker's first.
    var handOverMs: [Double]
    var requestMs: [Double]
    var weightsMs: [Double]
    /// This process's CPU seconds from the common start until its workers were done.
    var cpuSeconds: Double
}

/// The median, 99th percentile and largest of some figures (the 99th: the value at rank
/// ⌊0.99 n⌋ of the sorted figures, counted from 0).
struct Quantiles: Codable, Hashable {
    var p50: Double
    var p99: Double
    var max: Double

    /// `nil` for no figures.
    init?(_ values: some Collection<Double>) {
        let sorted = values.sorted()
        guard let last = sorted.last else { return nil }
        p50 = sorted[sorted.count / 2]
        p99 = sorted[min(sorted.count - 1, Int(Double(sorted.count) * 0.99))]
        max = last
    }
}

/// The workers of one helper process.
struct ScaleHelper {
    /// What a helper prints once its workers are made.
    static let readyLine = "rein-scale-helper ready"

    let config: RunConfig
    let settings: ReinActorSystem.Settings
    let learner: String
    let count: Int
    let first: Int
    let sampleDelay: Duration
    let sampleSpread: Double
    let reconnectTimeout: Duration
    let logger: Logger

    init(
        config: RunConfig, settings: ReinActorSystem.Settings, learner: String, count: Int, first: Int,
        sampleDelay: Duration, sampleSpread: Double = 0, reconnectTimeout: Duration = .zero, logger: Logger
    ) throws {
        (self.config, self.settings, self.learner, self.count) = (config, settings, learner, count)
        (self.first, self.sampleDelay, self.logger) = (first, sampleDelay, logger)
        (self.sampleSpread, self.reconnectTimeout) = (sampleSpread, reconnectTimeout)
    }

    /// Makes the workers, then (with `readySignal`) says "ready" on stdout and waits for a line on stdin,
    /// then runs them until the run is over.
    func run(readySignal: Bool) async throws -> ScaleHelperReport {
        let task = try ArithmeticTask(config: config.task)
        let gpt = config.gptConfig(vocab: task.tokenizer.vocabSize)
        let limits = WireLimits.forRun(config, model: gpt)
        let context = try ZMQContext()
        let systems = try (0..<count).map {
            try ReinActorSystem(
                context: context, configuration: .init(name: "scale-\(first + $0)", limits: limits),
                settings: settings, logger: logger)
        }
        let samplers = (0..<count).map {
            CannedSampler(
                task: task, vocab: gpt.vocab, delay: sampleDelay, spread: sampleSpread, worker: first + $0)
        }
        let channels = ZMQBulkChannels(context: context, wire: WireOptions(limits: limits), logger: logger)
        // Made before the common start: in separate processes workers are made in parallel, here
        // they would queue for this process's cores and the join time would measure that.
        let dataset = ArithmeticDataset(task: task)  // shared: built once, not once per worker
        let workers = try zip(systems, samplers).map { system, sampler in
            try RolloutWorkerActor(
                actorSystem: system, config: config, gpt: gpt, logger: logger, standIn: sampler,
                dataset: dataset)
        }
        if readySignal { try await startSignal() }
        let start = ProcessSample.now()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (worker, system) in zip(workers, systems) {
                group.addTask {
                    try await runWorker(
                        worker, on: system, learnerAddress: learner, logger: logger, channels: channels,
                        connectTimeout: .seconds(60), reconnectTimeout: reconnectTimeout, stop: nil,
                        beforeDelivery: nil, wire: WireOptions(limits: limits))
                }
            }
            try await group.waitForAll()
        }
        let cpuSeconds = ProcessSample.now().cpuSeconds - start.cpuSeconds
        for system in systems { await system.shutdown() }
        return ScaleHelperReport(
            firstOrders: samplers.compactMap(\.firstOrder), orderGapsMs: samplers.flatMap(\.gapsMs),
            orderTimes: samplers.flatMap(\.orderTimes),
            handOverMs: samplers.flatMap { $0.waits.map { 1000 * seconds($0.handOver) } },
            requestMs: samplers.flatMap { $0.waits.map { 1000 * seconds($0.request) } },
            weightsMs: samplers.flatMap { $0.waits.map { 1000 * seconds($0.weights) } },
            cpuSeconds: cpuSeconds)
    }
}

/// Prints the ready line and returns on the first line on stdin (``HelperProcess/start()`` writes
/// it). Not a signal: a signal source's handler is installed asynchronously, so a signal sent right
/// after the ready line could be lost, and a helper waited for it forever (seen once in a run of
/// 256 workers under load).
private func startSignal() async throws {
    emit(ScaleHelper.readyLine)
    let line = await withCheckedContinuation { (continuation: CheckedContinuation<String?, Never>) in
        Thread.detachNewThread { continuation.resume(returning: readLine()) }
    }
    guard line != nil else {
        throw CLIError("rein bench scale closed this helper's stdin before starting it")
    }
}

/// The stand-in sampler of `rein bench scale`: sleeps its sampling time (``delay(index:)``), then
/// returns a batch that passes the learner's audit — the problems of the order, half of each group
/// answered correctly and half with an empty answer, graded by the task, every log-probability that
/// of a uniform policy (so the reference rows are valid too) — and records when each order arrived
/// and where the worker's time between batches went.
final class CannedSampler: StandInSampler {
    let task: ArithmeticTask
    let vocab: Int
    let delay: Duration
    /// Each batch's time is `delay` × a factor drawn from [1 − spread, 1 + spread].
    let spread: Double
    /// The worker's number (seeds its batches' times).
    let worker: Int
    private let times = Mutex<
        (
            first: Double?, handedOver: ContinuousClock.Instant?, gaps: [Double], held: [Double],
            waits: [OrderWait]
        )
    >((nil, nil, [], [], []))

    init(task: ArithmeticTask, vocab: Int, delay: Duration, spread: Double = 0, worker: Int = 0) {
        (self.task, self.vocab, self.delay) = (task, vocab, delay)
        (self.spread, self.worker) = (spread, worker)
    }

    /// The sampling time of batch `index`: `delay` scaled by a factor uniform in
    /// [1 − spread, 1 + spread], drawn from the worker's number and the index (so every run of the
    /// bench gives each worker the same times). Real rollouts differ in length, so real workers
    /// do not hand their batches over at the same moment; with no spread the bench's do.
    func delay(index: Int) -> Duration {
        guard spread > 0 else { return delay }
        var random = SplitMix64(
            seed: UInt64(truncatingIfNeeded: worker) << 32 | UInt64(UInt32(truncatingIfNeeded: index)))
        return delay * (1 + spread * (2 * random.nextUnit() - 1))
    }

    /// The worker's time between batches, every order but its first.
    var waits: [OrderWait] { times.withLock { $0.waits } }

    func waited(_ wait: OrderWait) { times.withLock { $0.waits.append(wait) } }

    /// When the first order arrived (seconds since 1970).
    var firstOrder: Double? { times.withLock { $0.first } }
    /// Milliseconds from each batch handed over to the next order.
    var gapsMs: [Double] { times.withLock { $0.gaps } }
    /// When each order arrived (seconds since 1970).
    var orderTimes: [Double] { times.withLock { $0.held } }

    func batch(_ problems: [ArithmeticProblem], groupSize: Int, version: Int, index: Int, firstID: UInt64)
        async throws -> RolloutBatch
    {
        let now = ContinuousClock.now
        let wall = Date().timeIntervalSince1970
        times.withLock { times in
            if times.first == nil { times.first = wall }
            times.held.append(wall)
            if let handedOver = times.handedOver {
                times.gaps.append(1000 * seconds(now - handedOver))
            }
        }
        try await Task.sleep(for: delay(index: index))
        let uniform = -Float(log(Double(vocab)))
        var rollouts: [Rollout] = []
        rollouts.reserveCapacity(problems.count * groupSize)
        for (group, problem) in problems.enumerated() {
            for k in 0..<groupSize {
                let answer = k % 2 == 0 ? problem.answer : [task.tokenizer.eos]
                let grade = task.grade(problem, completion: answer)
                let completion = answer.prefix(grade.length).map(Int32.init)
                let n = completion.count
                var rollout = Rollout(
                    id: firstID + UInt64(rollouts.count), group: group,
                    prompt: problem.prompt.map(Int32.init),
                    completion: completion, behaviourLogProbs: Array(repeating: uniform, count: n),
                    versions: Array(repeating: version, count: n), reward: grade.reward,
                    outcome: grade.outcome)
                rollout.referenceLogProbs = Array(repeating: uniform, count: n)
                rollout.referenceRows = Array(repeating: uniform, count: n * vocab)
                rollouts.append(rollout)
            }
        }
        times.withLock { $0.handedOver = .now }
        return RolloutBatch(rollouts: rollouts, groupSize: groupSize)
    }
}
