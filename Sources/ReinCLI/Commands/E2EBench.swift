import ArgumentParser
import Foundation
import Logging
import Rein
import ReinModel
import ReinRuntime
import ReinTasks

/// `rein bench e2e`: samples trained per second of the whole RL loop on the run configuration's
/// model, task and batch — the single-process loop (``Trainer``) and the asynchronous pipeline
/// (learner + rollout workers as distributed actors in this process) — and, if `REIN_TRL_PYTHON`
/// is set, Hugging Face TRL's `GRPOTrainer` on the same reference, task and batch.
struct E2EBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "e2e",
        abstract: "Samples trained per second: single-process loop, async pipeline, and TRL's GRPOTrainer.",
        discussion: """
            Uses the run configuration (default configs/default.yaml's values: train.prompts_per_step × \
            train.group_size samples per batch, at most the task's longest answer + EOS new tokens, \
            train.beta) and its reference (train.reference). single: the `rein train` loop (sampling \
            with π_ref scored, then one learner step), config threads. pipeline: a learner and \
            --workers rollout workers over inproc ZeroMQ (`rein train --workers N`), --pipeline-threads \
            each, max_staleness --max-staleness. Both without evaluations, tracker or checkpoints; \
            --warmup batches first (single) and --steps timed batches; --rounds rounds alternate the \
            modes and the peer, and the median of each is reported. Set REIN_TRL_PYTHON to a Python \
            with trl, transformers and safetensors to run scripts/bench/trl_peer.py in the same run \
            (same reference weights in a transformers GPT-2, same tokenizer, task, reward and batch, \
            CPU, config threads). Goals (issue 14): single ≥ 3× TRL, pipeline ≥ 1.5× single.
            """
    )

    @OptionGroup var options: ConfigOptions
    @OptionGroup var reference: ReferenceOptions

    @Option(name: .long, help: "Timed batches per mode.")
    var steps = 20

    @Option(name: .long, help: "Untimed batches before the single-process measurement.")
    var warmup = 2

    @Option(name: .long, help: "Pipeline: rollout workers.")
    var workers = 2

    @Option(name: .long, help: "Pipeline: threads of the learner and of each worker.")
    var pipelineThreads = 1

    @Option(name: .long, help: "Pipeline: train.max_staleness (how far workers may run ahead).")
    var maxStaleness = 4

    @Option(name: .long, help: "Modes to run: single, pipeline (comma-separated; default both).")
    var modes = "single,pipeline"

    @Option(name: .long, help: "Rounds (each runs every mode and the peer once; medians are reported).")
    var rounds = 3

    @Option(name: .long, help: "Optimizer steps of the TRL peer (after its own warm-up step).")
    var peerSteps = 10

    @Option(help: "Path of the TRL peer script (run from the repository root, or give the path).")
    var peerScript = "scripts/bench/trl_peer.py"

    @Flag(name: .long, help: "Print one JSON object instead of lines.")
    var json = false

    struct Report: Codable {
        var model: String
        var samplesPerBatch: Int
        var maxNewTokens: Int
        var beta: Double
        var threads: Int
        var gemm: String
        var loadAverage: String
        var rounds = 0
        var single: Mode?
        var pipeline: Mode?
        var peer: Peer?
        var pipelineOverSingle: Double?
        var singleOverPeer: Double?
        var pipelineOverPeer: Double?
    }

    struct Mode: Codable {
        var batches: Int
        var seconds: Double
        var samplesPerSecond: Double
    }

    struct Peer: Codable {
        var samplesPerSecond: Double
        var steps: Int
        var seconds: Double
        var threads: Int
        var versions: String
    }

    func validate() throws {
        guard steps >= 1, warmup >= 0, workers >= 1, pipelineThreads >= 1, maxStaleness >= 0, peerSteps >= 1,
            rounds >= 1
        else {
            throw ValidationError(
                "--steps, --rounds, --workers, --pipeline-threads and --peer-steps must be ≥ 1, --warmup and --max-staleness ≥ 0"
            )
        }
        for mode in modes.split(separator: ",") where !["single", "pipeline"].contains(mode) {
            throw ValidationError("--modes: unknown mode '\(mode)' (single, pipeline)")
        }
    }

    /// Each round's measurement of each mode and of the peer.
    private struct Rounds {
        var singles: [Mode] = []
        var pipelines: [Mode] = []
        var peers: [Peer] = []
    }

    func run() async throws {
        let logger = Logger(label: "rein.bench.e2e")
        var config = try options.load()
        config.train.evalEvery = 0
        config.train.checkpointEvery = 0
        config.train.trackerEvery = 0
        let parameters = try reference.load(config)
        let task = try ArithmeticTask(config: config.task)
        let python = ProcessInfo.processInfo.environment["REIN_TRL_PYTHON"].flatMap { $0.isEmpty ? nil : $0 }
        let load = loadAverage()
        let selection = try GemmBackend.configure(config.gemm, logger: logger)
        let perBatch = config.train.promptsPerStep * config.train.groupSize
        var report = Report(
            model: "\(parameters.config)", samplesPerBatch: perBatch, maxNewTokens: task.maxAnswerTokens,
            beta: config.train.beta, threads: config.threads, gemm: selection.backend.kernels,
            loadAverage: load)
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent(
            "rein-bench-e2e-\(UUID().uuidString)"
        ).path
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: scratch) }

        if !json {
            emit(
                "rein bench e2e: \(parameters.config); \(perBatch) samples per batch (\(config.train.promptsPerStep) "
                    + "prompts × \(config.train.groupSize)), ≤ \(task.maxAnswerTokens) new tokens, β \(config.train.beta); "
                    + "\(selection.backend.kernels); load \(load)")
        }
        let peer = try python.map { (python: $0, reference: try peerReference(config, parameters, scratch)) }
        let measured = try await measureRounds(
            config, parameters, scratch: scratch, peer: peer, logger: logger)
        summarize(measured, into: &report, threads: config.threads)
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            encoder.keyEncodingStrategy = .convertToSnakeCase
            emit(String(decoding: try encoder.encode(report), as: UTF8.self))
        }
    }

    /// The peer reads the reference from a file: the configured one, or the random one written out.
    private func peerReference(_ config: RunConfig, _ parameters: GPTParameters, _ scratch: String) throws
        -> String
    {
        var path = config.train.reference
        if reference.randomReference != nil {
            path = scratch + "/reference.safetensors"
            try Checkpoint.save(parameters, to: path)
        }
        return path
    }

    /// Rounds alternate the modes and the peer, so each sees the same machine.
    private func measureRounds(
        _ config: RunConfig, _ parameters: GPTParameters, scratch: String,
        peer: (python: String, reference: String)?, logger: Logger
    ) async throws -> Rounds {
        let chosen = Set(modes.split(separator: ",").map(String.init))
        var measured = Rounds()
        for round in 1...rounds {
            if chosen.contains("single") {
                progress(
                    "round \(round)/\(rounds): single-process loop, \(warmup) + \(steps) batches, \(config.threads) threads"
                )
                measured.singles.append(
                    try single(
                        config, parameters: parameters, directory: scratch + "/single-\(round)",
                        logger: logger))
            }
            if chosen.contains("pipeline") {
                progress(
                    "round \(round)/\(rounds): pipeline, learner + \(workers) workers, \(pipelineThreads) thread(s) each, max_staleness \(maxStaleness)"
                )
                measured.pipelines.append(
                    try await pipeline(
                        config, parameters: parameters, directory: scratch + "/pipeline-\(round)",
                        logger: logger))
            }
            if let peer {
                progress(
                    "round \(round)/\(rounds): TRL peer (\(peer.python) \(peerScript)), \(peerSteps) steps")
                measured.peers.append(
                    try await runPeer(python: peer.python, config: config, reference: peer.reference))
            }
        }
        return measured
    }

    /// The medians and ratios into the report; without --json, printed as lines too.
    private func summarize(_ measured: Rounds, into report: inout Report, threads: Int) {
        func median<T>(_ runs: [T], _ rate: (T) -> Double) -> T? {
            runs.sorted { rate($0) < rate($1) }.dropFirst(runs.count / 2).first
        }
        report.rounds = rounds
        report.single = median(measured.singles, \.samplesPerSecond)
        report.pipeline = median(measured.pipelines, \.samplesPerSecond)
        report.peer = median(measured.peers, \.samplesPerSecond)
        func all<T>(_ runs: [T], _ rate: (T) -> Double) -> String {
            runs.map { String(format: "%.0f", rate($0)) }.joined(separator: ", ")
        }
        if let mode = report.single, !json {
            emit(
                String(
                    format:
                        "single process (%d threads): %.0f samples trained/s (median of %@; %d batches in %.2f s)",
                    threads, mode.samplesPerSecond, all(measured.singles, \.samplesPerSecond), mode.batches,
                    mode.seconds))
        }
        if let mode = report.pipeline, !json {
            emit(
                String(
                    format:
                        "pipeline (learner + %d workers, %d thread(s) each, max_staleness %d): %.0f samples trained/s (median of %@)",
                    workers, pipelineThreads, maxStaleness, mode.samplesPerSecond,
                    all(measured.pipelines, \.samplesPerSecond)))
        }
        if let s = report.single, let p = report.pipeline, s.samplesPerSecond > 0 {
            report.pipelineOverSingle = p.samplesPerSecond / s.samplesPerSecond
            if !json {
                emit(String(format: "pipeline / single: %.2f× (goal ≥ 1.5×)", report.pipelineOverSingle!))
            }
        }
        if let peer = report.peer {
            report.singleOverPeer = report.single.map { $0.samplesPerSecond / peer.samplesPerSecond }
            report.pipelineOverPeer = report.pipeline.map { $0.samplesPerSecond / peer.samplesPerSecond }
            if !json {
                emit(
                    String(
                        format:
                            "TRL GRPOTrainer (%@, %d threads): %.0f samples trained/s (median of %@; %d steps in %.2f s)",
                        peer.versions, peer.threads, peer.samplesPerSecond,
                        all(measured.peers, \.samplesPerSecond),
                        peer.steps, peer.seconds))
                if let r = report.singleOverPeer {
                    emit(String(format: "single / TRL: %.2f× (goal ≥ 3×)", r))
                }
                if let r = report.pipelineOverPeer { emit(String(format: "pipeline / TRL: %.2f×", r)) }
            }
        } else if !json {
            emit("TRL peer skipped: set REIN_TRL_PYTHON to a Python with trl, transformers and safetensors")
        }
    }

    /// The single-process loop: `warmup` untimed batches, then `steps` timed ones.
    func single(_ base: RunConfig, parameters: GPTParameters, directory: String, logger: Logger) throws
        -> Mode
    {
        var config = base
        config.train.steps = warmup + steps
        config.runDir = directory
        var quiet = logger
        quiet.logLevel = max(logger.logLevel, .warning)
        let trainer = try Trainer(
            config: config, reference: parameters, folder: try RunFolder(path: directory), logger: quiet)
        for _ in 0..<warmup { _ = try trainer.runStep() }
        let clock = ContinuousClock()
        let start = clock.now
        let before = trainer.ledger.trained
        for _ in 0..<steps { _ = try trainer.runStep() }
        let elapsed = seconds(clock.now - start)
        let trained = trainer.ledger.trained - before
        return Mode(batches: steps, seconds: elapsed, samplesPerSecond: Double(trained) / elapsed)
    }

    /// The asynchronous pipeline, in process: learner + `workers` workers over inproc ZeroMQ. The
    /// rate is the learner's (samples trained over its wall time, start-up and drain included).
    func pipeline(_ base: RunConfig, parameters: GPTParameters, directory: String, logger: Logger)
        async throws
        -> Mode
    {
        var config = base
        config.threads = pipelineThreads
        config.train.steps = steps
        config.train.maxStaleness = maxStaleness
        config.runDir = directory
        var quiet = logger
        quiet.logLevel = max(logger.logLevel, .warning)
        let result = try await DistributedTrainer(
            config: config, reference: parameters, folder: try RunFolder(path: directory), workers: workers,
            transport: .inproc, logger: quiet
        ).run()
        return Mode(
            batches: try result.metrics().filter { $0.learner != nil }.count,
            seconds: result.utilisation.wallSeconds, samplesPerSecond: result.trainedPerSecond)
    }

    private func runPeer(python: String, config: RunConfig, reference: String) async throws -> Peer {
        guard FileManager.default.fileExists(atPath: peerScript) else {
            throw CLIError("TRL peer script not found at \(peerScript) (use --peer-script)")
        }
        let t = config.train
        let settings: [String: Any] = [
            "reference": reference, "steps": peerSteps, "threads": config.threads,
            "prompts_per_step": t.promptsPerStep, "group_size": t.groupSize, "beta": t.beta, "lr": t.lr,
            "temperature": t.temperature, "clip": t.clip, "seed": Int(config.seed),
            "task": [
                "operations": config.task.operations.map(\.rawValue), "min_digits": config.task.minDigits,
                "max_digits": config.task.maxDigits, "pad_operands": config.task.padOperands,
            ],
        ]
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = [
            peerScript,
            String(
                decoding: try JSONSerialization.data(withJSONObject: settings, options: [.sortedKeys]),
                as: UTF8.self),
        ]
        var env = ProcessInfo.processInfo.environment
        for key in ["OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"] {
            env[key] = String(config.threads)
        }
        env["CUDA_VISIBLE_DEVICES"] = ""
        process.environment = env
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        // Drain stderr concurrently so a chatty peer cannot fill the pipe and block.
        let errors = Task.detached { err.fileHandleForReading.readDataToEndOfFile() }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let errorText = String(decoding: await errors.value, as: UTF8.self)
        let text = String(decoding: data, as: UTF8.self)
        guard process.terminationStatus == 0,
            let line = text.split(separator: "\n").last,
            let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
            let rate = (obj["samples_per_s"] as? NSNumber)?.doubleValue
        else {
            let tail = (errorText.isEmpty ? text : errorText).suffix(400)
            throw CLIError("TRL peer failed (exit \(process.terminationStatus)): \(tail)")
        }
        return Peer(
            samplesPerSecond: rate, steps: (obj["steps"] as? NSNumber)?.intValue ?? peerSteps,
            seconds: (obj["seconds"] as? NSNumber)?.doubleValue ?? 0,
            threads: (obj["threads"] as? NSNumber)?.intValue ?? config.threads,
            versions: obj["versions"] as? String ?? "")
    }
}

private func progress(_ message: String) {
    FileHandle.standardError.write(Data("[bench e2e] \(message)\n".utf8))
}
