import ArgumentParser
import Foundation
import Logging
import ReinModel

/// `rein bench model`: sampling throughput and learner-step time of the GPT engine on the default and
/// small configs, the sgemm throughput of every matrix-product backend that works here (the best is
/// the peak), and, if `REIN_TORCH_PYTHON` is set, the PyTorch peer.
struct ModelBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "model",
        abstract: "Benchmark the GPT policy engine (sampling, learner step) against PyTorch CPU eager.",
        discussion: """
            Batch 64, 8 prompt + 24 generated tokens for sampling; batch 64 × 31 positions for one learner \
            step (forward + backward + AdamW). The engine uses the backend REIN_GEMM names (onednn, openblas; \
            default auto: oneDNN on x86-64). Each working backend's sgemm is measured on a 1536³ product and \
            on the engine's shapes, both split into the engine's row shards (single-threaded calls) and on \
            the library's own threads; "% peak" is against the best of those figures, any backend. Set \
            REIN_TORCH_PYTHON to a Python with PyTorch to run scripts/bench/torch_peer.py in the same run \
            with the same thread count. With --rounds N, each config is measured N times, Rein then the \
            peer, and every figure and ratio is the median over the rounds of that round's own figures: a \
            host whose speed drifts from one minute to the next (a shared VM) moves both sides of a round.
            """
    )

    @Flag(help: "Print one JSON object instead of a table.")
    var json = false

    @Option(help: "Threads for both Rein and the peer (default: all cores).")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    @Option(help: "Timed repetitions (the mean is reported, after one warm-up, as the peer does).")
    var reps: Int = 10

    @Option(help: "Runs of the PyTorch peer per config and round (the median of each figure is reported).")
    var peerRuns: Int = 3

    @Option(help: "Rounds per config, each Rein then the peer; figures and ratios are medians over rounds.")
    var rounds: Int = 1

    @Option(help: "Comma-separated configs to run: default, small.")
    var configs: String = "default,small"

    @Option(
        help:
            "Comma-separated parts to run: gemm (each backend's sgemm and the peak), kernels (GELU, each build), sample, learner."
    )
    var parts: String = "gemm,kernels,sample,learner"

    @Option(help: "Path of the PyTorch peer script (run from the repository root, or give the path).")
    var peerScript: String = "scripts/bench/torch_peer.py"

    func validate() throws {
        guard reps >= 1, peerRuns >= 1, rounds >= 1, threads >= 1 else {
            throw ValidationError("--reps, --peer-runs, --rounds and --threads must be at least 1")
        }
    }

    /// What one run measured: the inputs to its JSON object or its table.
    private struct Report {
        var configs: [(String, GPTConfig)]
        /// Load average before we started.
        var load: String
        var selection: GemmSelection
        /// Every backend that works: its peak, and its products on the first config's shapes.
        var backends: [(GemmBackend, [String: Double])]
        /// The best figure any backend reached, and that backend.
        var best: (GemmBackend, Double)?
        var results: [String: [String: Double]]
        var python: String?
        var rss: Double
        /// GELU nanoseconds per element, each build that runs here.
        var gelu: [(build: GELUKernels, forward: Double, outputAndSlope: Double)]
    }

    func run() async throws {
        let known: [String: GPTConfig] = ["default": .default, "small": .small]
        let configs = try self.configs.split(separator: ",").map { name -> (String, GPTConfig) in
            guard let c = known[String(name)] else { throw ModelCLIError("unknown config '\(name)'") }
            return (String(name), c)
        }
        let parts = Set(self.parts.split(separator: ",").map(String.init))
        let python = ProcessInfo.processInfo.environment["REIN_TORCH_PYTHON"].flatMap {
            $0.isEmpty ? nil : $0
        }
        // Load before we start (our own work raises it); the other engineers' builds make figures noisy.
        let load = loadAverage()
        let selection = try GemmBackend.configure(.auto, logger: Logger(label: "rein.bench"))
        let backends = measureBackends(
            parts.contains("gemm") ? GemmBackend.available : [], shapes: configs[0])
        // The peak: the best figure any backend reached, on any of the shapes, either way of threading.
        let best = backends.map { b, f in (b, f.values.max() ?? 0) }.max { $0.1 < $1.1 }
        if parts.contains("kernels") { progress("GELU kernels, each build") }
        let gelu = parts.contains("kernels") ? ModelBenchmark.geluNanosecondsPerElement() : []
        var results: [String: [String: Double]] = [:]
        for (name, config) in configs {
            let each = try (1...rounds).map { round in
                if rounds > 1 { progress("\(name): round \(round)/\(rounds)") }
                return try measure(
                    name, config, parts: parts, backend: selection.backend, peak: best?.1, python: python)
            }
            results[name] = Self.medians(each)
        }
        let report = Report(
            configs: configs, load: load, selection: selection, backends: backends, best: best,
            results: results,
            python: python, rss: Double(ModelBenchmark.peakRSSBytes()) / 1_048_576, gelu: gelu)
        if json {
            try emitJSON(report)
            return
        }
        emitBackends(report)
        emitConfigs(report)
    }

    /// Each backend's sgemm throughput: the 1536³ product and the first config's shapes, both ways of threading.
    private func measureBackends(_ available: [GemmBackend], shapes: (String, GPTConfig)) -> [(
        GemmBackend, [String: Double]
    )] {
        let shapeConfig = shapes.1
        var backends: [(GemmBackend, [String: Double])] = []
        for b in available {
            progress("\(b.kernels): sgemm with \(threads) threads (1536³ and \(shapes.0) shapes)")
            backends.append(
                (
                    b,
                    [
                        "square1536_gflops": ModelBenchmark.sgemmPeakGFLOPS(backend: b, threads: threads),
                        "learner_shards_gflops": ModelBenchmark.learnerGEMMGFLOPS(
                            config: shapeConfig, threads: threads, backend: b),
                        "learner_library_threads_gflops": ModelBenchmark.learnerGEMMGFLOPS(
                            config: shapeConfig, threads: threads, backend: b, pooled: true),
                        "sample_shards_gflops": ModelBenchmark.samplingGEMMGFLOPS(
                            config: shapeConfig, threads: threads, backend: b),
                        "sample_library_threads_gflops": ModelBenchmark.samplingGEMMGFLOPS(
                            config: shapeConfig, threads: threads, backend: b, pooled: true),
                    ]
                ))
        }
        return backends
    }

    /// The median of `xs` (not empty): the middle value, or the mean of the middle two.
    static func median(_ xs: [Double]) -> Double {
        let sorted = xs.sorted()
        let mid = sorted.count / 2
        return sorted.count % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
    }

    /// Each figure's median over `rounds` (the ratios too: each round's ratio is of figures measured
    /// minutes apart at most), and, with more than one round, every round's ratios as
    /// `ratio_sample_round_N` / `ratio_learner_round_N` and their count as `rounds`.
    static func medians(_ rounds: [[String: Double]]) -> [String: Double] {
        guard rounds.count > 1 else { return rounds.first ?? [:] }
        var merged: [String: Double] = ["rounds": Double(rounds.count)]
        for key in Set(rounds.flatMap(\.keys)) {
            let values = rounds.compactMap { $0[key] }
            if !values.isEmpty { merged[key] = median(values) }
        }
        for (i, round) in rounds.enumerated() {
            for key in ["ratio_sample", "ratio_learner"] {
                if let ratio = round[key] { merged["\(key)_round_\(i + 1)"] = ratio }
            }
        }
        return merged
    }

    /// One config's figures: sampling, the learner step and, with `python`, the PyTorch peer's.
    private func measure(
        _ name: String, _ config: GPTConfig, parts: Set<String>, backend: GemmBackend, peak: Double?,
        python: String?
    ) throws -> [String: Double] {
        var r: [String: Double] = [:]
        if parts.contains("sample") {
            progress("\(name): sampling (\(config))")
            r["sample_tokens_per_s"] = try ModelBenchmark.samplingTokensPerSecond(
                config: config, threads: threads, reps: reps, backend: backend)
        }
        if parts.contains("learner") {
            progress("\(name): learner step")
            let ms = try ModelBenchmark.learnerStepMilliseconds(
                config: config, threads: threads, reps: reps, backend: backend)
            r["learner_step_ms"] = ms
            r["learner_gflops"] = ModelBenchmark.learnerFLOPs(config: config) / (ms * 1e-3) * 1e-9
            r["learner_gemm_gflops"] = ModelBenchmark.learnerGEMMGFLOPS(
                config: config, threads: threads, backend: backend)
            r["learner_gemm_fraction_of_peak"] = peak.map { r["learner_gemm_gflops"]! / $0 }
        }
        if let python {
            progress("\(name): PyTorch peer (\(python) \(peerScript))")
            let runs = try (0..<max(1, peerRuns)).map { _ in try runPeer(python: python, config: config) }
            let peer = (
                sample: Self.median(runs.map(\.sample)), learnerMs: Self.median(runs.map(\.learnerMs)),
                threads: runs[0].threads
            )
            r["peer_sample_tokens_per_s"] = peer.sample
            r["peer_learner_step_ms"] = peer.learnerMs
            r["peer_threads"] = Double(peer.threads)
            r["peer_runs"] = Double(runs.count)
            r["ratio_sample"] = r["sample_tokens_per_s"].map { $0 / peer.sample }
            r["ratio_learner"] = r["learner_step_ms"].map { peer.learnerMs / $0 }
        }
        return r
    }

    private func emitJSON(_ report: Report) throws {
        let backend = report.selection.backend
        var object: [String: Any] = [
            "benchmark": "model", "threads": threads, "load_average": report.load,
            "gemm_backend": backend.rawValue, "gemm_kernels": backend.kernels,
            "gemm_selected_by": report.selection.source, "gelu_kernels": GELUKernels.current.rawValue,
            "sgemm_peak_gflops": report.best?.1 ?? NSNull(),
            "sgemm_peak_backend": report.best?.0.rawValue ?? NSNull(),
            "peak_rss_mb": report.rss,
            "backends": Dictionary(
                uniqueKeysWithValues: report.backends.map { b, figures in
                    var entry: [String: Any] = figures
                    entry["kernels"] = b.kernels
                    return (b.rawValue, entry)
                }),
            "peer": report.python == nil ? "skipped (REIN_TORCH_PYTHON unset)" : "torch_peer.py",
            "configs": report.results,
        ]
        object["gelu_ns_per_element"] = Dictionary(
            uniqueKeysWithValues: report.gelu.map {
                ($0.build.rawValue, ["forward": $0.forward, "output_and_slope": $0.outputAndSlope])
            })
        object["batch"] = 64
        object["blas_note"] = ModelBenchmark.blasPinNote
        let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        emit(String(decoding: data, as: UTF8.self))
    }

    /// The table's head: the run, each backend's sgemm figures, the peak, the notes.
    private func emitBackends(_ report: Report) {
        let selection = report.selection
        emit(
            "rein bench model: \(threads) threads, backend \(selection.backend.kernels) (\(selection.source)), "
                + "GELU kernels \(GELUKernels.current.rawValue), "
                + "peak RSS \(fmt(report.rss, 1)) MB, load \(report.load)")
        if let fallback = selection.fallback { emit("note: \(fallback)") }
        if !report.backends.isEmpty {
            emit(
                "sgemm GFLOP/s".padding(toLength: 32, withPad: " ", startingAt: 0)
                    + "   1536³  learner shapes (\(report.configs[0].0)): shards / lib threads  sampling: shards / lib threads"
            )
        }
        for (b, f) in report.backends {
            emit(
                b.kernels.padding(toLength: 32, withPad: " ", startingAt: 0)
                    + [
                        pad(fmt(f["square1536_gflops"]!, 1), 8), pad(fmt(f["learner_shards_gflops"]!, 1), 34),
                        pad(fmt(f["learner_library_threads_gflops"]!, 1), 13),
                        pad(fmt(f["sample_shards_gflops"]!, 1), 18),
                        pad(fmt(f["sample_library_threads_gflops"]!, 1), 13),
                    ].joined(separator: " "))
        }
        if let best = report.best {
            emit("peak (best of the figures above): \(fmt(best.1, 1)) GFLOP/s, \(best.0.displayName)")
        }
        for k in report.gelu {
            emit(
                "GELU \(k.build.rawValue): forward \(fmt(k.forward, 2)) ns, output and slope \(fmt(k.outputAndSlope, 2)) ns "
                    + "an element (one thread)")
        }
        if let note = ModelBenchmark.blasPinNote { emit("note: \(note)") }
        if report.python == nil {
            emit("PyTorch peer skipped: set REIN_TORCH_PYTHON to a Python with torch installed")
        }
    }

    /// The table's body: one row per config.
    private func emitConfigs(_ report: Report) {
        emit(
            "config   sample tok/s   peer     ratio   step ms   peer ms  speedup  GFLOP/s  GEMM GFLOP/s (% peak)"
        )
        for (name, _) in report.configs {
            let r = report.results[name]!
            let peerS = r["peer_sample_tokens_per_s"].map { fmt($0, 0) } ?? "-"
            let peerL = r["peer_learner_step_ms"].map { fmt($0, 1) } ?? "-"
            let ratioS = r["ratio_sample"].map { fmt($0, 2) + "×" } ?? "-"
            let ratioL = r["ratio_learner"].map { fmt($0, 2) + "×" } ?? "-"
            emit(
                [
                    name.padding(toLength: 8, withPad: " ", startingAt: 0),
                    pad(r["sample_tokens_per_s"].map { fmt($0, 0) } ?? "-", 12), pad(peerS, 8),
                    pad(ratioS, 7),
                    pad(r["learner_step_ms"].map { fmt($0, 2) } ?? "-", 9), pad(peerL, 9), pad(ratioL, 8),
                    pad(r["learner_gflops"].map { fmt($0, 1) } ?? "-", 8),
                    pad(r["learner_gemm_gflops"].map { fmt($0, 1) } ?? "-", 8)
                        + (r["learner_gemm_fraction_of_peak"].map { " (\(fmt(100 * $0, 0))%)" } ?? ""),
                ].joined(separator: " "))
            if let count = r["rounds"].map(Int.init) {
                func list(_ key: String) -> String {
                    (1...count).compactMap { r["\(key)_round_\($0)"].map { fmt($0, 2) + "×" } }
                        .joined(separator: ", ")
                }
                emit(
                    "  \(name): medians of \(count) rounds; sampling ratio by round \(list("ratio_sample")), "
                        + "learner step \(list("ratio_learner"))")
            }
        }
    }

    private func runPeer(python: String, config: GPTConfig) throws -> (
        sample: Double, learnerMs: Double, threads: Int
    ) {
        guard FileManager.default.fileExists(atPath: peerScript) else {
            throw ModelCLIError("peer script not found at \(peerScript) (use --peer-script)")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        let cfg =
            "{\"vocab\": \(config.vocab), \"ctx\": \(config.context), \"d\": \(config.dModel), "
            + "\"layers\": \(config.layers), \"heads\": \(config.heads)}"
        process.arguments = [peerScript, cfg]
        var env = ProcessInfo.processInfo.environment
        for key in ["OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"] {
            env[key] = String(threads)
        }
        process.environment = env
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        guard process.terminationStatus == 0,
            let line = text.split(separator: "\n").last,
            let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
            let sample = (obj["sample_tokens_per_s"] as? NSNumber)?.doubleValue,
            let learner = (obj["learner_step_ms"] as? NSNumber)?.doubleValue
        else {
            throw ModelCLIError(
                "PyTorch peer failed (exit \(process.terminationStatus)): \(text.suffix(300))")
        }
        return (sample, learner, (obj["threads"] as? NSNumber)?.intValue ?? threads)
    }
}

private func progress(_ message: String) {
    FileHandle.standardError.write(Data("[bench model] \(message)\n".utf8))
}

private func fmt(_ x: Double, _ digits: Int) -> String { String(format: "%.\(digits)f", x) }
private func pad(_ s: String, _ n: Int) -> String { String(repeating: " ", count: max(0, n - s.count)) + s }
