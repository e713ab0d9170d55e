import COpenBLAS
import CReinKernels
import Foundation

/// Measurements behind `rein bench model`: sampling throughput, one learner step, FLOP counts and the
/// sgemm throughput of each matrix-product backend. Inputs are seeded, so repeated runs do the same work.
public enum ModelBenchmark {
    /// Generated tokens per second for `batch` rows of `prompt` random prompt tokens plus `generate`
    /// sampled tokens (temperature 1, no stop token): mean of `reps` runs after one warm-up, as the
    /// PyTorch peer measures.
    public static func samplingTokensPerSecond(
        config: GPTConfig, batch: Int = 64, prompt: Int = 8, generate: Int = 24, threads: Int, reps: Int = 5,
        backend: GemmBackend = .preferred
    ) throws(ModelError) -> Double {
        let params = try GPTParameters(config: config, seed: 1)
        let sampler = GPTSampler(config: config, threads: threads, gemm: backend)
        var rng = SplitMix64(seed: 2)
        let prompts = (0..<batch).map { _ in
            (0..<prompt).map { _ in Int32(rng.next() % UInt64(config.vocab)) }
        }
        let options = SamplingOptions(maxNewTokens: generate)
        var total = 0.0
        for rep in 0...reps {
            let start = DispatchTime.now().uptimeNanoseconds
            _ = try sampler.sample(
                parameters: params, prompts: prompts, options: options,
                seeds: (0..<batch).map { UInt64(rep * batch + $0) })
            if rep > 0 { total += Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9 }
        }
        return Double(batch * generate * reps) / total
    }

    /// Milliseconds for one learner step (zero grads, forward over `batch × (length − 1)` positions,
    /// backward from random dLoss/d log-prob, AdamW): mean of `reps` steps after one warm-up.
    public static func learnerStepMilliseconds(
        config: GPTConfig, batch: Int = 64, length: Int = 32, threads: Int, reps: Int = 5,
        backend: GemmBackend = .preferred
    ) throws(ModelError) -> Double {
        let model = GPTModel(
            parameters: try GPTParameters(config: config, seed: 1), threads: threads, gemm: backend)
        var opt = AdamW(layout: model.parameters.layout, threads: threads)
        var rng = SplitMix64(seed: 3)
        let tokens = (0..<(batch * length)).map { _ in Int32(rng.next() % UInt64(config.vocab)) }
        let data = try TokenBatch(tokens: tokens, batch: batch, length: length)
        let dlp = (0..<(batch * (length - 1))).map { _ in
            Float(rng.nextGaussian()) / Float(batch * (length - 1))
        }
        var total = 0.0
        for rep in 0...reps {
            let start = DispatchTime.now().uptimeNanoseconds
            model.zeroGradients()
            _ = try model.forward(data)
            try model.backward(dLogProbs: dlp)
            opt.step(params: &model.parameters.values, grads: model.gradients, lr: 1e-4)
            if rep > 0 { total += Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9 }
        }
        return total / Double(reps) * 1e3
    }

    /// Matrix-product FLOPs of one learner step (forward 1×, backward 2×) for `batch × steps` positions:
    /// the linear layers, the tied head and causal attention.
    public static func learnerFLOPs(config: GPTConfig, batch: Int = 64, steps: Int = 31) -> Double {
        let (c, n) = (Double(config.dModel), Double(batch * steps))
        let linear = 2 * n * (12 * c * c) * Double(config.layers) + 2 * n * c * Double(config.vocab)
        let attention = 2 * 2 * Double(batch) * Double(steps * (steps + 1) / 2) * c * Double(config.layers)
        return 3 * (linear + attention)
    }

    /// The practical sgemm peak of `backend` with `threads` cores: GFLOP/s of a `size³` product, the
    /// better of the library's own threads and `threads` concurrent single-threaded products.
    public static func sgemmPeakGFLOPS(
        backend: GemmBackend, threads: Int, size: Int = 1536, reps: Int = 5
    ) -> Double {
        let pooled = gemmGFLOPS(
            backend: backend, shapes: [(size, size, size, false, false)], shards: 1, libraryThreads: threads,
            reps: reps)
        let sharded = gemmGFLOPS(
            backend: backend, shapes: [(size, size, size, false, false)], shards: threads, libraryThreads: 1,
            reps: reps)
        return max(pooled, sharded)
    }

    /// The engine's products (`m, n, k, transA, transB`) of one learner step over `rows` positions,
    /// per linear layer of a block: the forward product and both backward products. `shards` splits
    /// the rows as the engine does (the weight-gradient product has the shard's rows as `k`).
    public static func learnerShapes(config: GPTConfig, rows: Int, shards: Int) -> [(
        Int, Int, Int, Bool, Bool
    )] {
        let c = config.dModel
        let r = rows / shards
        return [(c, 3 * c), (c, c), (c, 4 * c), (4 * c, c)].flatMap { (i, o) in
            [(r, o, i, false, true), (r, i, o, false, false), (o, i, r, true, false)]
        }
    }

    /// The sampler's products of one decode step for `rows` rows: each linear layer's forward product.
    public static func samplingShapes(config: GPTConfig, rows: Int, shards: Int) -> [(
        Int, Int, Int, Bool, Bool
    )] {
        let c = config.dModel
        let r = max(1, rows / shards)
        return [(c, 3 * c), (c, c), (c, 4 * c), (4 * c, c)].map { (i, o) in (r, o, i, false, true) }
    }

    /// GFLOP/s of the learner's big products on `backend` over `batch × steps` rows: split across
    /// `threads` concurrent single-threaded shards as the engine runs them (`pooled` false), or as one
    /// product per shape on the library's own `threads` threads (`pooled` true).
    public static func learnerGEMMGFLOPS(
        config: GPTConfig, batch: Int = 64, steps: Int = 31, threads: Int, backend: GemmBackend,
        pooled: Bool = false
    ) -> Double {
        let shards = pooled ? 1 : threads
        return gemmGFLOPS(
            backend: backend, shapes: learnerShapes(config: config, rows: batch * steps, shards: shards),
            shards: shards, libraryThreads: pooled ? threads : 1, reps: 20)
    }

    /// GFLOP/s of the sampler's per-token products on `backend` for `batch` rows (see
    /// ``learnerGEMMGFLOPS(config:batch:steps:threads:backend:pooled:)`` for `pooled`).
    public static func samplingGEMMGFLOPS(
        config: GPTConfig, batch: Int = 64, threads: Int, backend: GemmBackend, pooled: Bool = false
    ) -> Double {
        let shards = pooled ? 1 : min(threads, batch)
        return gemmGFLOPS(
            backend: backend, shapes: samplingShapes(config: config, rows: batch, shards: shards),
            shards: shards, libraryThreads: pooled ? threads : 1, reps: 200)
    }

    /// Total FLOPs over total time of `shapes` (`m, n, k, transA, transB`), each run on `shards`
    /// concurrent threads with its own operands, the library using `libraryThreads` threads per call.
    /// The best of `reps` timed rounds (after one warm-up) per shape.
    static func gemmGFLOPS(
        backend: GemmBackend, shapes: [(Int, Int, Int, Bool, Bool)], shards: Int, libraryThreads: Int,
        reps: Int
    ) -> Double {
        if backend == .openblas {
            _ = OpenBLAS.configureOnce
            openblas_set_num_threads(Int32(libraryThreads))
        }
        defer { if backend == .openblas { openblas_set_num_threads(1) } }
        var (flops, seconds) = (0.0, 0.0)
        for (m, n, k, transA, transB) in shapes {
            let bufs = (0..<shards).map { _ in
                (
                    SendablePointer(FloatPtr.allocate(capacity: m * k)),
                    SendablePointer(FloatPtr.allocate(capacity: k * n)),
                    SendablePointer(FloatPtr.allocate(capacity: m * n))
                )
            }
            defer { for (a, b, c) in bufs { [a, b, c].forEach { $0.pointer.deallocate() } } }
            for (a, b, c) in bufs {
                a.pointer.initialize(repeating: 0.5, count: m * k)
                b.pointer.initialize(repeating: 0.25, count: k * n)
                c.pointer.initialize(repeating: 0, count: m * n)
            }
            var best = Double.infinity
            for rep in 0...reps {
                let start = DispatchTime.now().uptimeNanoseconds
                parallel(shards) { s in
                    let (a, b, c) = bufs[s]
                    backend.sgemm(
                        transA: transA, transB: transB, m: m, n: n, k: k, a.pointer, lda: transA ? m : k,
                        b.pointer, ldb: transB ? k : n, beta: 0, c.pointer, ldc: n, threads: libraryThreads)
                }
                let t = Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
                if rep > 0 { best = min(best, t) }
            }
            flops += 2 * Double(m * n * k * shards)
            seconds += best
        }
        return flops / seconds * 1e-9
    }

    /// A warning when `OPENBLAS_CORETYPE` pins kernels narrower than the CPU supports (e.g. `Haswell`,
    /// AVX2, on an AVX-512 CPU), which halves OpenBLAS's sgemm throughput; nil otherwise.
    public static var blasPinNote: String? {
        guard let pinned = ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"],
            let cpuinfo = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
            cpuinfo.contains(" avx512f "), cpuinfo.contains(" avx512bw "), cpuinfo.contains(" avx512vl ")
        else { return nil }
        let narrow = [
            "haswell", "zen", "sandybridge", "nehalem", "core2", "prescott", "excavator", "steamroller",
        ]
        guard narrow.contains(pinned.lowercased()) else { return nil }
        return "OPENBLAS_CORETYPE=\(pinned) pins AVX2-or-narrower kernels on this AVX-512 CPU; "
            + "unset it (or set SkylakeX) to let OpenBLAS use its AVX-512 kernels"
    }

    /// Nanoseconds per element of the GELU kernels, each build that runs here (`baseline`, and
    /// `avx2+fma` where the CPU has it): the forward and the backward's output-and-slope over 2²⁰
    /// inputs in [−4, 4), best of `reps` (one thread).
    public static func geluNanosecondsPerElement(reps: Int = 20) -> [(
        build: GELUKernels, forward: Double, outputAndSlope: Double
    )] {
        let n = 1 << 20
        let x = (0..<n).map { Float($0 % 2000) / 250 - 4 }
        var out = [Float](repeating: 0, count: n)
        var slope = x
        func best(prepare: () -> Void = {}, _ body: () -> Void) -> Double {
            var best = Double.infinity
            for _ in 0...reps {
                prepare()
                let start = DispatchTime.now().uptimeNanoseconds
                body()
                best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start))
            }
            return best / Double(n)
        }
        return GELUKernels.runnable.map { build in
            let variant = build.code
            let forward = best { rein_gelu_forward_variant(variant, &out, x, n) }
            // The slope overwrites its input: each repetition starts again from x, untimed.
            // (Copied into slope's own storage: an assignment would share x's, and the kernel's
            // write would then copy it inside the timing.)
            let both = best(prepare: {
                slope.withUnsafeMutableBufferPointer { s in
                    x.withUnsafeBufferPointer { s.baseAddress!.update(from: $0.baseAddress!, count: n) }
                }
            }) {
                rein_gelu_output_and_slope_variant(variant, &out, &slope, n)
            }
            return (build, forward, both)
        }
    }

    /// Peak resident set size of this process in bytes.
    public static func peakRSSBytes() -> Int {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return usage.ru_maxrss * 1024
    }
}
