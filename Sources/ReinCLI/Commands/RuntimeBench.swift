import ArgumentParser
import Foundation
import Logging
import Rein
import ReinActors
import ReinModel
import ReinRuntime
import ReinTasks
import ReinTracker
import ZeroMQ

/// `rein bench runtime`: the runtime against the transport under it, and the pipeline against
/// itself: weight broadcast vs raw PUSH/PULL of the same bytes to as many receivers, sample
/// batches over the wire vs raw transfer of the same bytes, the same distributed run in sync
/// (`max_staleness` 0) and async (`max_staleness` 4) mode, and `runtime.pacing` `bound` against
/// `auto` and `auto` with partial rollouts (throughput, learner busy, lag, and the naive
/// k2-as-loss bias at the resulting lags).
struct RuntimeBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "runtime",
        abstract:
            "Broadcast and sample transport against raw PUSH/PULL, and async vs sync training, in one run.",
        discussion: """
            broadcast: publish the default model's weights until 1, 2 and 4 subscribers (WeightCaches,             as in workers) hold them, against the same frames sent over 1, 2 and 4 raw PUSH/PULL pairs at             once; the two alternate, medians over --repeats. Goal: broadcast ≤ 2× raw.
            samples: one real sampled batch (train.prompts_per_step × train.group_size rollouts)             encoded as SampleColumns frames (SampleBatchLayout), sent, received and decoded back into SampleColumns (and, second figure, on into a RolloutBatch), against             raw PUSH/PULL of the same bytes (the transport ceiling).
            pipeline: the same in-process run (learner + --workers rollout workers over inproc             ZeroMQ, --steps batches, threads 1 per part) with max_staleness 0 and then 4: samples             trained per second and learner busy fraction. Goals: async ≥ 1.5× sync, busy ≥ 90% async.
            pacing: the same in-process run (--pacing-workers workers, --pacing-steps batches, the             configured train.max_staleness, staleness tracker every --tracker-every steps) with             runtime.pacing bound, then auto, then auto with train.partial_rollouts: samples trained per             second, learner busy, token-weighted lag (mean, p50, p99, max) and the tracker's position-weighted relative error of naive             k2-as-loss (k2_loss) beside sg(w)·k2. Goals: auto ≥ 95% of bound's samples/s, busy ≥ 90%,             mean lag ≤ 1.5, k2_loss bias ≤ ¼ of bound's.
            """
    )

    enum Part: String, CaseIterable, ExpressibleByArgument {
        case broadcast, samples, pipeline, pacing
    }

    @OptionGroup var options: ConfigOptions

    @Option(name: .long, help: "Measurements per broadcast/sample row (the median is reported).")
    var repeats = 10

    @Option(
        name: .long,
        help: "Parts to run: broadcast, samples, pipeline, pacing (comma-separated; default all).")
    var parts = "broadcast,samples,pipeline,pacing"

    @Option(name: .long, help: "Pipeline: batches per mode.")
    var steps = 12

    @Option(name: .long, help: "Pipeline: rollout workers.")
    var workers = 1

    @Option(name: .long, help: "Pacing: batches per mode.")
    var pacingSteps = 40

    @Option(name: .long, help: "Pacing: rollout workers.")
    var pacingWorkers = 2

    @Option(
        name: .long,
        help: "Pacing: rounds of bound, auto, auto + partial rollouts (the comparison takes medians).")
    var pacingRepeats = 1

    @Option(name: .long, help: "Pacing: staleness tracker every this many steps.")
    var trackerEvery = 5

    @Flag(name: .long, help: "Print one JSON object instead of tables.")
    var json = false

    struct Row: Codable {
        var subscribers: Int
        var bytes: Int
        var broadcastMs: Double
        var rawMs: Double
        var ratio: Double
    }

    struct SampleRow: Codable {
        var rollouts: Int
        var bytes: Int
        /// Worker's encode, send, receive, learner's decode into ``SampleColumns`` (medians).
        var batchesPerSecond: Double
        var rawBatchesPerSecond: Double
        /// Median of the per-round ratios of the sample path to raw.
        var ratio: Double
        /// The same path, decoded on to a `RolloutBatch` (one array per row and column).
        var rolloutsBatchesPerSecond: Double
        var rolloutsRatio: Double
        /// Raw PUSH/PULL of the path's own frames, made once and sent without copying.
        var rawFramesBatchesPerSecond: Double
        /// Median of the per-round ratios of the sample path to that.
        var framesRatio: Double
    }

    struct PipelineRow: Codable {
        var maxStaleness: Int
        var trained: Int
        var wallSeconds: Double
        var trainedPerSecond: Double
        var busyFraction: Double
        var learnerStepMs: Double
        /// Wall time per batch outside learner steps (in sync mode: sampling and delivery).
        var samplingMs: Double
    }

    struct PacingRow: Codable {
        var pacing: PacingMode
        /// `train.partial_rollouts`.
        var partialRollouts = false
        /// With partial rollouts: the largest span of versions within one sequence trained.
        var versionSpanMax: Int?
        var trained: Int
        var wallSeconds: Double
        var trainedPerSecond: Double
        var busyFraction: Double
        /// `runtime.pacing_margin` (auto only).
        var margin: Double?
        /// Mean seconds from hand-out to delivery of the batches trained.
        var samplingSeconds: Double
        /// Mean learner step seconds.
        var learnerStepSeconds: Double
        /// Token-weighted lag of the samples trained (versions).
        var lagMean: Double
        var lagP50: Int
        var lagP99: Int
        var lagMax: Int
        /// Position-weighted relative error of naive k2-as-loss over every tracker observation.
        var k2LossBias: Double?
        /// The same for sg(w)·k2 (the importance-corrected form).
        var k2LossSgwBias: Double?
        var trackerPositions: Int
        /// Wall time of the tracker's observations (part of wallSeconds, not of busy).
        var trackerSeconds: Double
        var ledgerBalances: Bool
    }

    struct Report: Codable {
        var broadcast: [Row]
        var samples: SampleRow?
        var pipeline: [PipelineRow]
        var pacing: [PacingRow] = []
        var asyncOverSync: Double?
        /// (sampling + learner step) / max of the two in the sync run: what perfect overlap gives.
        var overlapCeiling: Double?
    }

    func validate() throws {
        guard repeats >= 1, steps >= 2, workers >= 1 else {
            throw ValidationError("--repeats ≥ 1, --steps ≥ 2 and --workers ≥ 1")
        }
        guard pacingSteps >= 2, pacingWorkers >= 1, pacingRepeats >= 1, trackerEvery >= 1 else {
            throw ValidationError(
                "--pacing-steps ≥ 2, --pacing-workers ≥ 1, --pacing-repeats ≥ 1 and --tracker-every ≥ 1")
        }
        for part in parts.split(separator: ",") where Part(rawValue: String(part)) == nil {
            throw ValidationError("--parts: unknown part '\(part)' (broadcast, samples, pipeline, pacing)")
        }
    }

    func run() async throws {
        let logger = Logger(label: "rein.bench.runtime")
        let config = try options.load()
        let chosen = Set(parts.split(separator: ",").compactMap { Part(rawValue: String($0)) })
        let task = try ArithmeticTask(config: config.task)
        let gpt = config.gptConfig(vocab: task.tokenizer.vocabSize)
        let parameters = try GPTParameters(config: gpt, seed: 1)
        let context = try ZMQContext()
        var report = Report(
            broadcast: [], samples: nil, pipeline: [], asyncOverSync: nil, overlapCeiling: nil)
        if chosen.contains(.broadcast) {
            try await broadcastPart(parameters.values, context: context, report: &report, logger: logger)
        }
        if chosen.contains(.samples) {
            let row = try await sampleThroughput(
                config: config, task: task, gpt: gpt, parameters: parameters,
                context: context, logger: logger)
            report.samples = row
            if !json {
                emit(
                    String(
                        format:
                            "samples: batch of %d rollouts (%d bytes): %.0f batches/s over the wire, raw PUSH/PULL %.0f/s, ratio %.2f (goal ≥ 0.8); decoded on to rollouts %.0f/s, ratio %.2f; raw PUSH/PULL of the same frames without copying %.0f/s, ratio %.2f",
                        row.rollouts, row.bytes, row.batchesPerSecond, row.rawBatchesPerSecond, row.ratio,
                        row.rolloutsBatchesPerSecond, row.rolloutsRatio, row.rawFramesBatchesPerSecond,
                        row.framesRatio))
            }
        }
        if chosen.contains(.pipeline) {
            try await pipelinePart(config, parameters: parameters, report: &report, logger: logger)
        }
        if chosen.contains(.pacing) {
            try await pacingPart(config, parameters: parameters, report: &report, logger: logger)
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            encoder.keyEncodingStrategy = .convertToSnakeCase
            emit(String(decoding: try encoder.encode(report), as: UTF8.self))
        }
    }

    /// Runs the broadcast part: 1, 2 and 4 subscribers against as many raw PUSH/PULL pairs, one row each.
    func broadcastPart(_ values: [Float], context: ZMQContext, report: inout Report, logger: Logger)
        async throws
    {
        if !json {
            emit(
                "broadcast: \(values.count) floats (\(values.count * 4 / 1024) KiB), median of \(repeats)"
            )
        }
        for subscribers in [1, 2, 4] {
            let (broadcast, raw) = try await broadcastAndRawMs(
                values, subscribers: subscribers, repeats: repeats, context: context, logger: logger)
            let row = Row(
                subscribers: subscribers, bytes: values.count * 4, broadcastMs: broadcast, rawMs: raw,
                ratio: broadcast / raw)
            report.broadcast.append(row)
            if !json {
                emit(
                    String(
                        format:
                            "  %d subscriber(s): broadcast %.2f ms, raw PUSH/PULL ×%d %.2f ms, ratio %.2f (goal ≤ 2)",
                        subscribers, broadcast, subscribers, raw, broadcast / raw))
            }
        }
    }

    /// Runs the pipeline part: max_staleness 0 then 4, one row each, and async against sync.
    func pipelinePart(_ config: RunConfig, parameters: GPTParameters, report: inout Report, logger: Logger)
        async throws
    {
        if !json {
            emit(
                "pipeline: \(steps) batches of \(config.train.promptsPerStep * config.train.groupSize) rollouts, \(workers) worker(s), threads 1 per part"
            )
        }
        for staleness in [0, 4] {
            let row = try await pipeline(
                config, parameters: parameters, maxStaleness: staleness, logger: logger)
            report.pipeline.append(row)
            if !json {
                emit(
                    String(
                        format:
                            "  max_staleness %d: %.1f samples trained/s, learner busy %.0f%% of %.1f s (learner step %.0f ms, idle %.0f ms per batch)",
                        row.maxStaleness, row.trainedPerSecond, 100 * row.busyFraction, row.wallSeconds,
                        row.learnerStepMs, row.samplingMs))
            }
        }
        if report.pipeline.count == 2, report.pipeline[0].trainedPerSecond > 0 {
            let ratio = report.pipeline[1].trainedPerSecond / report.pipeline[0].trainedPerSecond
            report.asyncOverSync = ratio
            // Two threads that alternate (sync) can at best overlap completely (async): the
            // ceiling is (sample + learn) / max(sample, learn), from the sync run's times.
            let sync = report.pipeline[0]
            let ceiling =
                (sync.samplingMs + sync.learnerStepMs) / max(sync.samplingMs, sync.learnerStepMs, 1e-9)
            report.overlapCeiling = ceiling
            if !json {
                emit(
                    String(
                        format:
                            "  async / sync: %.2f× (goal ≥ 1.5×; full overlap of this run's sampling and learning would give %.2f×)",
                        ratio, ceiling))
            }
        }
    }

    /// One in-process distributed run with `maxStaleness`, every part on one thread.
    func pipeline(_ base: RunConfig, parameters: GPTParameters, maxStaleness: Int, logger: Logger)
        async throws
        -> PipelineRow
    {
        var config = base
        config.threads = 1
        config.train.steps = steps
        config.train.maxStaleness = maxStaleness
        config.train.injectLag = 0
        config.train.evalEvery = 0
        config.train.checkpointEvery = 0
        config.train.trackerEvery = 0
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "rein-bench-pipeline-\(UUID().uuidString)"
        ).path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        config.runDir = directory
        let folder = try RunFolder(path: directory)
        var quiet = logger  // the run's own progress lines would drown the figures
        quiet.logLevel = max(logger.logLevel, .warning)
        let result = try await DistributedTrainer(
            config: config, reference: parameters, folder: folder, workers: workers, transport: .inproc,
            logger: quiet
        ).run()
        let trained = try result.metrics().filter { $0.learner != nil }.count
        return PipelineRow(
            maxStaleness: maxStaleness, trained: result.ledger.trained,
            wallSeconds: result.utilisation.wallSeconds,
            trainedPerSecond: result.trainedPerSecond, busyFraction: result.utilisation.busyFraction,
            learnerStepMs: trained > 0 ? 1000 * result.utilisation.busySeconds / Double(trained) : 0,
            samplingMs: trained > 0
                ? 1000 * (result.utilisation.wallSeconds - result.utilisation.busySeconds) / Double(trained)
                : 0)
    }

    /// Runs the pacing part: `bound`, `auto`, and `auto` with partial rollouts, one row each, and
    /// the comparison with the goals.
    func pacingPart(_ config: RunConfig, parameters: GPTParameters, report: inout Report, logger: Logger)
        async throws
    {
        if !json {
            emit(
                "pacing: \(pacingSteps) batches of \(config.train.promptsPerStep * config.train.groupSize) rollouts, "
                    + "\(pacingWorkers) worker(s), max_staleness \(config.train.maxStaleness), threads 1 per part, "
                    + "tracker every \(trackerEvery) steps")
        }
        let modes: [(PacingMode, Bool)] = [(.bound, false), (.auto, false), (.auto, true)]
        for (mode, partial) in (0..<pacingRepeats).flatMap({ _ in modes }) {
            let row = try await paced(
                config, parameters: parameters, pacing: mode, partialRollouts: partial, logger: logger)
            report.pacing.append(row)
            if !json {
                let bias =
                    row.k2LossBias.map { k2 in
                        String(
                            format: "; k2_loss bias %.2f%% (sg(w)·k2 %.2f%%) over %d positions", 100 * k2,
                            100 * (row.k2LossSgwBias ?? .nan), row.trackerPositions)
                    } ?? "; no tracker records"
                let figures = String(
                    format:
                        "%.1f samples trained/s, learner busy %.0f%% of %.1f s (tracker %.1f s), "
                        + "sampling %.0f ms / learner step %.0f ms, token lag mean %.2f p50 %d p99 %d max %d",
                    row.trainedPerSecond, 100 * row.busyFraction, row.wallSeconds, row.trackerSeconds,
                    1000 * row.samplingSeconds, 1000 * row.learnerStepSeconds, row.lagMean,
                    row.lagP50, row.lagP99, row.lagMax)
                let ledger = row.ledgerBalances ? "" : "; LEDGER DOES NOT BALANCE"
                let margin = row.margin.map { " (margin \($0))" } ?? ""
                let partial = row.partialRollouts ? " + partial rollouts" : ""
                let span = row.versionSpanMax.map { ", version span max \($0)" } ?? ""
                emit("  \(row.pacing.rawValue)\(partial)\(margin): \(figures)\(span)\(bias)\(ledger)")
            }
        }
        guard !json else { return }
        // Medians over the rounds (the modes alternate, so both see the same machine).
        let bound = report.pacing.filter { $0.pacing == .bound }
        let auto = report.pacing.filter { $0.pacing == .auto && !$0.partialRollouts }
        let partial = report.pacing.filter { $0.partialRollouts }
        func middle(_ rows: [PacingRow], _ value: (PacingRow) -> Double?) -> Double {
            let values = rows.compactMap(value)
            return values.isEmpty ? .nan : median(values)
        }
        // Samples/s: the ratio within each round (the two runs are adjacent in time, so a load that
        // drifts between rounds cancels), then the median over rounds.
        let ratios = zip(auto, bound).map { $0.trainedPerSecond / max($1.trainedPerSecond, 1e-9) }
        let speed = ratios.isEmpty ? .nan : median(ratios)
        let rounds = pacingRepeats > 1 ? " (medians of \(pacingRepeats) alternating rounds)" : ""
        var line = String(
            format:
                "  auto / bound: %.2f× samples/s (goal ≥ 0.95), learner busy %.0f%% (goal ≥ 90%%; bound %.0f%%), "
                + "auto mean lag %.2f (goal ≤ 1.5)",
            speed, 100 * middle(auto, \.busyFraction), 100 * middle(bound, \.busyFraction),
            middle(auto, \.lagMean))
        let bias = middle(auto, \.k2LossBias) / middle(bound, \.k2LossBias)
        if bias.isFinite { line += String(format: ", k2_loss bias ratio %.2f (goal ≤ 0.25)", bias) }
        emit(line + rounds)
        let partialRatios = zip(partial, bound).map { $0.trainedPerSecond / max($1.trainedPerSecond, 1e-9) }
        let partialSpeed = partialRatios.isEmpty ? .nan : median(partialRatios)
        var partialLine = String(
            format: "  auto + partial / bound: %.2f× samples/s, learner busy %.0f%%, mean lag %.2f",
            partialSpeed, 100 * middle(partial, \.busyFraction), middle(partial, \.lagMean))
        let partialBias = middle(partial, \.k2LossBias) / middle(bound, \.k2LossBias)
        if partialBias.isFinite { partialLine += String(format: ", k2_loss bias ratio %.2f", partialBias) }
        emit(partialLine)
    }

    /// One in-process distributed run paced as `pacing` (with partial rollouts if
    /// `partialRollouts`), every part on one thread, with the staleness tracker every
    /// ``trackerEvery`` steps.
    func paced(
        _ base: RunConfig, parameters: GPTParameters, pacing: PacingMode, partialRollouts: Bool,
        logger: Logger
    ) async throws -> PacingRow {
        var config = base
        config.threads = 1
        config.train.steps = pacingSteps
        config.train.injectLag = 0
        config.train.evalEvery = 0
        config.train.checkpointEvery = 0
        config.train.trackerEvery = trackerEvery
        config.runtime.pacing = pacing
        config.train.partialRollouts = partialRollouts
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "rein-bench-pacing-\(UUID().uuidString)"
        ).path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        config.runDir = directory
        let folder = try RunFolder(path: directory)
        var quiet = logger
        quiet.logLevel = max(logger.logLevel, .warning)
        let trainer = DistributedTrainer(
            config: config, reference: parameters, folder: folder, workers: pacingWorkers, transport: .inproc,
            logger: quiet)
        let result = try await trainer.run()
        let records = folder.has(.tracker) ? try StalenessTracker.readRecords(in: folder) : []
        let trained = try result.metrics().filter { $0.learner != nil }
        let lags = LagDistribution(trained)
        let count = Double(max(1, trained.count))
        func bias(_ id: String) -> Double? {
            var (weighted, positions) = (0.0, 0)
            for bucket in records.flatMap(\.buckets) {
                guard let found = bucket.implementations.first(where: { $0.id == id }) else { continue }
                weighted += found.relativeError * Double(bucket.positions)
                positions += bucket.positions
            }
            return positions > 0 ? weighted / Double(positions) : nil
        }
        return PacingRow(
            pacing: pacing, partialRollouts: partialRollouts,
            versionSpanMax: partialRollouts ? trained.compactMap(\.versionSpanMax).max() ?? 0 : nil,
            trained: result.ledger.trained, wallSeconds: result.utilisation.wallSeconds,
            trainedPerSecond: result.trainedPerSecond, busyFraction: result.utilisation.busyFraction,
            margin: pacing == .auto ? config.runtime.pacingMargin : nil,
            samplingSeconds: trained.map(\.sampleSeconds).reduce(0, +) / count,
            learnerStepSeconds: trained.compactMap(\.learner?.seconds).reduce(0, +) / count,
            lagMean: lags.mean, lagP50: lags.quantile(0.5), lagP99: lags.quantile(0.99), lagMax: lags.largest,
            k2LossBias: bias("k2_loss"), k2LossSgwBias: bias("k2_loss_sgw_token"),
            trackerPositions: records.map(\.positions).reduce(0, +),
            trackerSeconds: records.map(\.seconds).reduce(0, +), ledgerBalances: result.ledger.balances)
    }

    /// Batches per second through the sample path (encode, send, receive, decode) against raw
    /// PUSH/PULL of the same bytes.
    func sampleThroughput(
        config: RunConfig, task: ArithmeticTask, gpt: GPTConfig, parameters: GPTParameters,
        context: ZMQContext,
        logger: Logger
    ) async throws -> SampleRow {
        // As workers sample: with the reference scored, so the batch carries its rows too.
        let sampler = RolloutSampler(
            task: task, config: gpt, temperature: config.train.temperature, topK: config.train.topK,
            threads: config.threads, reference: parameters)
        var random = TaskRandom(seed: 7, stream: 3)
        let problems = (0..<config.train.promptsPerStep).map { _ in task.randomProblem(using: &random) }
        let batch = try sampler.sample(
            problems, groupSize: config.train.groupSize, parameters: parameters, version: 0, seed: 1,
            firstID: 0)
        let node = NodeID.random()
        let encoded = SampleBatchLayout.frames(SampleColumns(batch, worker: node, index: 0, attempt: 0))
        let count = max(50, repeats * 20)
        // The sample path as a worker and the learner take it: the worker makes the columns of its
        // batch and their frames and sends them; the learner receives and decodes the columns
        // (and, in the learner's next step, the batch of rollouts back from them).
        func path(toRollouts: Bool) async throws -> Double {
            try await bulkRate(count: count, context: context, logger: logger) { sender in
                let frames = SampleBatchLayout.frames(
                    SampleColumns(batch, worker: node, index: 0, attempt: 0))
                try await sender.send(frames, policyVersion: 0)
            } receive: { message in
                let columns = try SampleBatchLayout.decode(message.frames)
                let rows = toRollouts ? try columns.batch().rollouts.count : columns.ids.count
                guard rows == batch.rollouts.count else { throw CLIError("sample batch decoded wrong") }
            }
        }
        // Raw: the same bytes, already encoded, in one frame, not decoded. Beside it, the stricter
        // ceiling of the very frames the path sends, already made (no copy on send). The four
        // alternate, and each ratio is taken within a round (a load that changes between rounds
        // cancels out).
        let bytes = encoded.flatMap(\.bytes)
        var rounds: [(wire: Double, rollouts: Double, raw: Double, frames: Double)] = []
        for _ in 0..<5 {
            let raw = try await bulkRate(count: count, context: context, logger: logger) { sender in
                try await sender.send([WireFrame(bytes)], policyVersion: 0)
            } receive: { _ in
            }
            let frames = try await bulkRate(count: count, context: context, logger: logger) { sender in
                try await sender.send(encoded, policyVersion: 0)
            } receive: { _ in
            }
            rounds.append((try await path(toRollouts: false), try await path(toRollouts: true), raw, frames))
        }
        return SampleRow(
            rollouts: batch.rollouts.count, bytes: encoded.reduce(0) { $0 + $1.count },
            batchesPerSecond: median(rounds.map(\.wire)),
            rawBatchesPerSecond: median(rounds.map(\.raw)), ratio: median(rounds.map { $0.wire / $0.raw }),
            rolloutsBatchesPerSecond: median(rounds.map(\.rollouts)),
            rolloutsRatio: median(rounds.map { $0.rollouts / $0.raw }),
            rawFramesBatchesPerSecond: median(rounds.map(\.frames)),
            framesRatio: median(rounds.map { $0.wire / $0.frames }))
    }

    /// Messages per second from one PUSH to one PULL over loopback TCP: `send` is called `count`
    /// times (after a warm-up message), `receive` on each message.
    func bulkRate(
        count: Int, context: ZMQContext, logger: Logger, send: (BulkSender) async throws -> Void,
        receive: (BulkMessage) throws -> Void
    ) async throws -> Double {
        let receiver = BulkReceiver(context: context, link: .bind("tcp://127.0.0.1:*"), logger: logger)
        defer { receiver.close() }
        let sender = try BulkSender(
            context: context, node: .random(), link: .connect(await receiver.endpoint()), highWaterMark: 64)
        defer { sender.close() }
        var iterator = receiver.makeAsyncIterator()
        try await send(sender)  // warm-up: the connection is up once this arrives
        var pending = try await iterator.next() ?? []
        pending.removeFirst()
        let clock = ContinuousClock()
        let start = clock.now
        // Windows of 16 in flight: the receiver's thread drains while the next ones are sent, and
        // nothing waits on a full queue.
        var sent = 0
        var received = 0
        while received < count {
            let window = min(16, count - sent)
            for _ in 0..<window { try await send(sender) }
            sent += window
            while received < sent {
                if pending.isEmpty {
                    guard let next = try await iterator.next() else { throw CLIError("raw receiver closed") }
                    pending = next
                }
                try receive(pending.removeFirst())
                received += 1
            }
        }
        return Double(count) / seconds(clock.now - start)
    }

    func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
}

/// The lag of trained batches weighted by their tokens (every token of a batch has its lag).
struct LagDistribution {
    /// (lag, tokens), by lag.
    var weights: [(lag: Int, tokens: Double)]

    init(_ steps: [StepMetrics]) {
        var byLag: [Int: Double] = [:]
        for step in steps {
            // Batches are the same size: the mean response length weighs a batch by its tokens
            // (tokens per sample); with partial rollouts a batch's tokens spread over its histogram.
            if let histogram = step.lagHistogram, case let samples = histogram.map(\.sequences).reduce(0, +),
                samples > 0
            {
                for count in histogram {
                    byLag[count.lag, default: 0] += Double(count.tokens) / Double(samples)
                }
            } else {
                byLag[step.lagMax, default: 0] += max(step.responseLength, 0)
            }
        }
        weights = byLag.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    }

    private var total: Double { weights.map(\.tokens).reduce(0, +) }

    var mean: Double {
        total > 0 ? weights.map { Double($0.lag) * $0.tokens }.reduce(0, +) / total : 0
    }

    var largest: Int { weights.last?.lag ?? 0 }

    /// The smallest lag at or below which a fraction `q` of the tokens lie.
    func quantile(_ q: Double) -> Int {
        var seen = 0.0
        for (lag, tokens) in weights {
            seen += tokens
            if seen >= q * total { return lag }
        }
        return largest
    }
}
