import COpenBLAS
import Foundation

/// Measurements behind `rein bench model`: sampling throughput, one learner step, FLOP counts and the
/// machine's sgemm peak. Inputs are seeded, so repeated runs do the same work.
public enum ModelBenchmark {
    /// Generated tokens per second for `batch` rows of `prompt` random prompt tokens plus `generate`
    /// sampled tokens (temperature 1, no stop token): mean of `reps` runs after one warm-up, as the
    /// PyTorch peer measures.
    public static func samplingTokensPerSecond(
        config: GPTConfig, batch: Int = 64, prompt: Int = 8, generate: Int = 24, threads: Int, reps: Int = 5
    ) throws(ModelError) -> Double {
        let params = try GPTParameters(config: config, seed: 1)
        let sampler = GPTSampler(config: config, threads: threads)
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
        config: GPTConfig, batch: Int = 64, length: Int = 32, threads: Int, reps: Int = 5
    ) throws(ModelError) -> Double {
        let model = GPTModel(parameters: try GPTParameters(config: config, seed: 1), threads: threads)
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

    /// The machine's practical sgemm peak with `threads` cores: GFLOP/s of an `size³` product, the
    /// better of OpenBLAS's own threading and `threads` concurrent single-threaded products.
    public static func sgemmPeakGFLOPS(threads: Int, size: Int = 1536, reps: Int = 5) -> Double {
        _ = BLAS.configureOnce
        openblas_set_num_threads(Int32(threads))
        let pooled = gemmGFLOPS(m: size, n: size, k: size, shards: 1, reps: reps)
        openblas_set_num_threads(1)
        return max(pooled, gemmGFLOPS(m: size, n: size, k: size, shards: threads, reps: reps))
    }

    /// GFLOP/s of the learner's big products as the engine runs them: for each linear layer of a block,
    /// the forward product and both backward products over `batch × steps` rows split across
    /// `threads` single-threaded shards.
    public static func learnerGEMMGFLOPS(config: GPTConfig, batch: Int = 64, steps: Int = 31, threads: Int)
        -> Double
    {
        _ = BLAS.configureOnce
        let c = config.dModel
        let rows = batch * steps
        var flops = 0.0
        var seconds = 0.0
        for (i, o) in [(c, 3 * c), (c, c), (c, 4 * c), (4 * c, c)] {
            let shardRows = rows / threads
            // forward: [r×i]·[o×i]ᵀ; dInp: [r×o]·[o×i]; dW: [r×o]ᵀ·[r×i]
            for (m, n, k, ta, tb) in [
                (shardRows, o, i, false, true), (shardRows, i, o, false, false),
                (o, i, shardRows, true, false),
            ] {
                let g = gemmGFLOPS(m: m, n: n, k: k, transA: ta, transB: tb, shards: threads, reps: 20)
                let f = 2 * Double(m * n * k * threads)
                flops += f
                seconds += f / (g * 1e9)
            }
        }
        return flops / seconds * 1e-9
    }

    /// GFLOP/s of `shards` concurrent single-threaded (or one multi-threaded, if `shards` is 1) products.
    static func gemmGFLOPS(
        m: Int, n: Int, k: Int, transA: Bool = false, transB: Bool = false, shards: Int, reps: Int
    ) -> Double {
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
                BLAS.gemm(
                    transA: transA, transB: transB, m: m, n: n, k: k, a.pointer, lda: transA ? m : k,
                    b.pointer,
                    ldb: transB ? k : n, beta: 0, c.pointer, ldc: n)
            }
            let t = Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
            if rep > 0 { best = min(best, t) }
        }
        return 2 * Double(m * n * k * shards) / best * 1e-9
    }

    /// The OpenBLAS kernel set in use.
    public static var blasCore: String { BLAS.coreName }

    /// A warning when `OPENBLAS_CORETYPE` pins kernels narrower than the CPU supports (e.g. `Haswell`,
    /// AVX2, on an AVX-512 CPU), which halves sgemm throughput; nil otherwise.
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

    /// Peak resident set size of this process in bytes.
    public static func peakRSSBytes() -> Int {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return usage.ru_maxrss * 1024
    }
}
