import Foundation

/// How to draw continuations.
public struct SamplingOptions: Sendable, Hashable {
    /// Tokens to generate per row (at most; a row ends early at `stopToken`).
    public var maxNewTokens: Int
    /// Softmax temperature; 0 means greedy (argmax, behaviour log-prob 0).
    public var temperature: Float
    /// Keep only the `topK` most likely tokens (ties broken by lower id); nil, 0 or ≥ vocab keeps all.
    public var topK: Int?
    /// A row stops after emitting this token (the stop token is part of the output and its length).
    public var stopToken: Int32?

    /// Options; the defaults sample the model's own distribution with no stop token.
    public init(maxNewTokens: Int, temperature: Float = 1, topK: Int? = nil, stopToken: Int32? = nil) {
        self.maxNewTokens = maxNewTokens
        self.temperature = temperature
        self.topK = topK
        self.stopToken = stopToken
    }
}

/// Sampled continuations with the behaviour log-probability of every sampled token.
public struct SampleBatch: Sendable, Equatable {
    /// Number of rows.
    public let batch: Int
    /// Prompt tokens of each row.
    public let promptLengths: [Int]
    /// Generated positions per row (`options.maxNewTokens`).
    public let maxNewTokens: Int
    /// Row stride of ``tokens``: the longest prompt plus `maxNewTokens`.
    public let width: Int
    /// `batch × width`: each row's prompt, then its generated tokens, then 0-padding.
    public let tokens: [Int32]
    /// `batch × maxNewTokens`: log μ(token) under the distribution actually sampled from
    /// (temperature and top-k applied); 0 past a row's end.
    public let logProbs: [Float]
    /// Generated tokens per row, the stop token included.
    public let lengths: [Int]
    /// `batch × maxNewTokens`: the policy version of the weights each token was drawn with (the
    /// batch's version for every token unless weights were swapped mid-batch; 0 past a row's end).
    public let versions: [Int]

    /// Generated tokens of row `b`.
    public func generated(_ b: Int) -> ArraySlice<Int32> {
        let start = b * width + promptLengths[b]
        return tokens[start..<start + lengths[b]]
    }

    /// Prompt and generated tokens of row `b` (what the learner scores).
    public func sequence(_ b: Int) -> ArraySlice<Int32> {
        tokens[(b * width)..<(b * width + promptLengths[b] + lengths[b])]
    }
}

/// Batched autoregressive sampler with a KV cache. Rows step together (a row that emits the stop
/// token leaves the batch); rows are split into `threads` shards that run the whole loop
/// concurrently. A batch of more than ``rowsPerPass`` rows is sampled in passes of that many rows,
/// so the KV caches and scratch hold one pass, not the whole batch. Results depend only on the
/// parameters, prompts, options, per-row seeds, the matrix-product backend, the thread count and
/// the rows per pass.
///
/// Not thread-safe: one owner. Weights are passed per call, so one sampler serves any version.
public final class GPTSampler {
    /// Model shape.
    public let config: GPTConfig
    /// Number of shards run concurrently.
    public let threads: Int
    /// The library that runs the matrix products.
    public let gemm: GemmBackend
    private var shards: [DecodeShard] = []
    private var batch = 0

    /// Rows ``sample(parameters:prompts:options:seeds:version:weights:)`` runs at once; a larger batch
    /// goes in passes of this many rows.
    public let rowsPerPass: Int

    /// The default ``rowsPerPass``. A rollout batch of the default run is 512 rows; its KV caches and
    /// prefill scratch were about half of a rollout worker's anonymous memory (`scripts/bench/memory.sh
    /// --breakdown`). In passes of 128 rows they hold a quarter of that, and the products of a pass
    /// still have 64 rows a shard on 2 threads.
    public static let defaultRowsPerPass = 128

    /// Creates a sampler using up to `threads` cores and `gemm` for the matrix products (by default
    /// the process-wide ``GemmBackend/preferred``), sampling at most `rowsPerPass` rows at once.
    public init(
        config: GPTConfig, threads: Int = 1, gemm: GemmBackend = .preferred,
        rowsPerPass: Int = GPTSampler.defaultRowsPerPass
    ) {
        self.config = config
        self.threads = max(1, threads)
        self.gemm = gemm
        self.rowsPerPass = max(1, rowsPerPass)
    }

    /// Tokens already in the cache of every row.
    public var position: Int { shards.first?.position ?? 0 }

    /// Starts `batch` empty sequences, with room for the whole context.
    public func reset(batch: Int) throws(ModelError) {
        try reset(batch: batch, positions: config.context)
    }

    /// Rows the KV caches hold, over all shards: one pass (``rowsPerPass``), not the whole batch.
    public var cachedRows: Int { shards.reduce(0) { $0 + $1.rows } }

    /// Positions per row the KV cache holds (``reset(batch:)`` makes room for the context; ``sample``
    /// for the longest prompt plus the new tokens only).
    public var cachedPositions: Int { shards.first?.positions ?? 0 }

    /// Starts `batch` empty sequences with a KV cache of `positions` per row. The cache is
    /// reallocated only when the batch changes or needs more positions than it has.
    func reset(batch: Int, positions: Int) throws(ModelError) {
        guard batch > 0 else { throw .invalidArgument("batch must be positive, got \(batch)") }
        guard (1...config.context).contains(positions) else {
            throw .invalidArgument("positions \(positions) must be in 1...\(config.context)")
        }
        let n = min(threads, batch)
        if shards.count != n || self.batch != batch || positions > cachedPositions {
            shards = []  // free the old caches before allocating the new ones
            // Every shard holds the largest share, so any smaller pass fits too.
            let capacity = (0..<n).map { shardRange($0, of: n, total: batch).count }.max()!
            shards = (0..<n).map { _ in
                DecodeShard(config: config, rows: capacity, positions: positions, gemm: gemm)
            }
        }
        for s in shards { s.position = 0 }
        self.batch = batch
    }

    /// Appends `count` tokens to every row (`tokens` is `batch × count`) and returns their logits,
    /// `batch × count × vocab`.
    public func append(parameters: GPTParameters, tokens: [Int32], count: Int) throws(ModelError) -> [Float] {
        try check(parameters)
        guard count > 0, tokens.count == batch * count else {
            throw .invalidArgument("\(tokens.count) tokens do not form a \(batch) × \(count) block")
        }
        guard position + count <= cachedPositions else {
            throw .invalidArgument(
                "position \(position) + \(count) exceeds the \(cachedPositions) cached positions")
        }
        if let bad = tokens.first(where: { $0 < 0 || Int($0) >= config.vocab }) {
            throw .invalidArgument("token id \(bad) is outside the vocabulary 0..<\(config.vocab)")
        }
        let (v, shards, batch) = (config.vocab, shards, batch)
        var logits = [Float](repeating: 0, count: batch * count * v)
        parameters.values.withUnsafeBufferPointer { params in
            logits.withUnsafeMutableBufferPointer { out in
                let p = SendablePointer(UnsafeMutablePointer(mutating: params.baseAddress!))
                let o = SendablePointer(out.baseAddress!)
                parallel(shards.count) { s in
                    let rows = shardRange(s, of: shards.count, total: batch)
                    let shard = shards[s]
                    let tok = Array(tokens[rows.lowerBound * count..<rows.upperBound * count])
                    shard.step(params: p.pointer, tokens: tok, count: count, active: Array(0..<rows.count))
                    (o.pointer + rows.lowerBound * count * v).update(
                        from: shard.logits, count: rows.count * count * v)
                }
            }
        }
        return logits
    }

    /// Samples continuations of `prompts` (any lengths ≥ 1), one RNG stream per row from `seeds`.
    /// Each prompt plus `maxNewTokens` must fit in the context. Rows are aligned by position: while a
    /// longer prompt is still being fed, rows with shorter prompts are already sampling.
    ///
    /// Partial rollouts: with a `weights` source, before every step that draws tokens each shard
    /// asks it for newer weights and, when ``WeightSwap`` says so, continues with them at that
    /// token. At a swap the KV cache of every live row is re-prefilled with the new weights
    /// (the whole prefix, prompt and tokens drawn so far), so the token at each position is drawn
    /// from exactly π_v(·|prefix) of the version v recorded for it in ``SampleBatch/versions`` and
    /// its behaviour log-prob is log π_v of that distribution — no sequence is restarted and no
    /// cache mixes versions. Without a source (nil) the result is bit-identical to sampling
    /// with `parameters` alone, every token tagged `version`.
    public func sample(
        parameters: GPTParameters, prompts: [[Int32]], options: SamplingOptions, seeds: [UInt64],
        version: Int = 0, weights: (any SamplingWeightsSource)? = nil
    ) throws(ModelError) -> SampleBatch {
        let p = prompts.map(\.count).max() ?? 0
        guard !prompts.isEmpty, prompts.allSatisfy({ !$0.isEmpty }) else {
            throw .invalidArgument("prompts must be non-empty")
        }
        guard seeds.count == prompts.count else {
            throw .invalidArgument("\(seeds.count) seeds for \(prompts.count) prompts")
        }
        guard options.maxNewTokens >= 1, p + options.maxNewTokens <= config.context else {
            throw .invalidArgument(
                "longest prompt \(p) + maxNewTokens \(options.maxNewTokens) must be in \(p + 1)...\(config.context)"
            )
        }
        guard options.temperature >= 0, options.temperature.isFinite else {
            throw .invalidArgument("temperature must be finite and ≥ 0, got \(options.temperature)")
        }
        try check(parameters)
        let pass = min(prompts.count, rowsPerPass)
        try reset(batch: pass, positions: p + options.maxNewTokens)
        if let bad = prompts.joined().first(where: { $0 < 0 || Int($0) >= config.vocab }) {
            throw .invalidArgument("token id \(bad) is outside the vocabulary 0..<\(config.vocab)")
        }
        let (batch, g, shards) = (prompts.count, options.maxNewTokens, shards)
        let width = p + g
        var tokens = [Int32](repeating: 0, count: batch * width)
        var logProbs = [Float](repeating: 0, count: batch * g)
        var lengths = [Int](repeating: 0, count: batch)
        var versions = [Int](repeating: 0, count: batch * g)
        let shape = config
        let swaps = weights.map { source in
            WeightOffers(source: source, check: { $0.config == shape && $0.values.count == $0.layout.count })
        }
        parameters.values.withUnsafeBufferPointer { params in
            tokens.withUnsafeMutableBufferPointer { tok in
                logProbs.withUnsafeMutableBufferPointer { lp in
                    lengths.withUnsafeMutableBufferPointer { len in
                        let (pp, tp) = (
                            SendablePointer(UnsafeMutablePointer(mutating: params.baseAddress!)),
                            SendablePointer(tok.baseAddress!)
                        )
                        let (lpp, lenp) = (
                            SendablePointer(lp.baseAddress!), SendablePointer(len.baseAddress!)
                        )
                        versions.withUnsafeMutableBufferPointer { vs in
                            let vp = SendablePointer(vs.baseAddress!)
                            // One pass at a time; the shards of a pass run concurrently.
                            for start in stride(from: 0, to: batch, by: pass) {
                                let count = min(pass, batch - start)
                                parallel(shards.count) { s in
                                    let part = shardRange(s, of: shards.count, total: count)
                                    guard !part.isEmpty else { return }
                                    let rows = (start + part.lowerBound)..<(start + part.upperBound)
                                    shards[s].generate(
                                        params: pp.pointer, prompts: Array(prompts[rows]),
                                        seeds: Array(seeds[rows]),
                                        options: options, width: width,
                                        tokens: tp.pointer + rows.lowerBound * width,
                                        logProbs: lpp.pointer + rows.lowerBound * g,
                                        lengths: lenp.pointer + rows.lowerBound,
                                        versions: (vp.pointer + rows.lowerBound * g, version), swaps: swaps)
                                }
                            }
                        }
                    }
                }
            }
        }
        return SampleBatch(
            batch: batch, promptLengths: prompts.map(\.count), maxNewTokens: g, width: width, tokens: tokens,
            logProbs: logProbs,
            lengths: lengths, versions: versions)
    }

    private func check(_ parameters: GPTParameters) throws(ModelError) {
        guard parameters.config == config, parameters.values.count == parameters.layout.count else {
            throw .invalidArgument("parameters are for \(parameters.config), the sampler for \(config)")
        }
    }
}

extension SamplingOptions {
    /// log μ(·) of the distribution the sampler draws from, for each `vocab`-wide row of raw `logits`:
    /// temperature, then top-k, then log-softmax. Greedy (temperature 0) gives 0 at the argmax and −∞
    /// elsewhere. Use it to rebuild full behaviour rows from logits of the sampling weights.
    public func behaviourLogProbs(logits: [Float], vocab: Int) -> [Float] {
        precondition(vocab > 0 && logits.count % vocab == 0, "logits are not rows of width \(vocab)")
        var rows = logits
        rows.withUnsafeMutableBufferPointer { p in
            for r in stride(from: 0, to: p.count, by: vocab) {
                behaviourLogProbsInPlace(p.baseAddress! + r, vocab)
            }
        }
        return rows
    }

    /// In-place version of ``behaviourLogProbs(logits:vocab:)`` for one row.
    func behaviourLogProbsInPlace(_ row: FloatPtr, _ v: Int) {
        if temperature == 0 {
            var best = 0
            for j in 1..<v where row[j] > row[best] { best = j }
            for j in 0..<v { row[j] = j == best ? 0 : -.infinity }
            return
        }
        for j in 0..<v { row[j] /= temperature }
        if let k = topK, k > 0, k < v {
            // The k largest values survive (ties: lower ids first).
            let order = (0..<v).sorted { row[$0] > row[$1] || (row[$0] == row[$1] && $0 < $1) }
            for j in order[k...] { row[j] = -.infinity }
        }
        logSoftmaxInPlace(row, v)
    }
}

/// Draws one token from raw `logits` (length `v`, overwritten with log μ) by inverse CDF with one
/// uniform draw. Returns the token and its behaviour log-probability.
func drawToken(
    _ logits: FloatPtr, _ v: Int, options: SamplingOptions, rng: inout SplitMix64
) -> (token: Int32, logProb: Float) {
    options.behaviourLogProbsInPlace(logits, v)
    if options.temperature == 0 {
        for j in 0..<v where logits[j] == 0 { return (Int32(j), 0) }
    }
    let u = rng.nextUnit()
    var cdf = 0.0
    var chosen = -1
    for j in 0..<v where logits[j] > -.infinity {
        chosen = j
        cdf += Double(exp(logits[j]))
        if u < cdf { break }
    }
    return (Int32(chosen), logits[chosen])
}

/// KV cache and scratch for one shard of sampler rows.
final class DecodeShard: @unchecked Sendable {
    let config: GPTConfig
    let layout: ParameterLayout
    let rows: Int
    let gemm: GemmBackend
    var position = 0
    /// Positions per row of the KV cache.
    let positions: Int
    /// Per layer: keys and values, `rows × positions × C`.
    private let keys: [FloatPtr], values: [FloatPtr]
    private var capacity = 0  // positions per row the scratch buffers hold
    /// Scratch of one step; `fc` holds the MLP's hidden layer before and (in place) after the GELU,
    /// and before them q|k|v (`qkv`, 3C wide) and the attention output (`atty`, C wide), which are
    /// dead by then.
    private var x: FloatPtr, ln: FloatPtr, fc: FloatPtr
    private var qkv: FloatPtr { fc }
    private var atty: FloatPtr { fc + rows * capacity * 3 * config.dModel }
    private(set) var logits: FloatPtr
    private let scores: FloatPtr

    init(config: GPTConfig, rows: Int, positions: Int, gemm: GemmBackend) {
        self.config = config
        self.gemm = gemm
        self.layout = ParameterLayout(config: config)
        self.rows = rows
        self.positions = positions
        let cache = rows * positions * config.dModel
        keys = (0..<config.layers).map { _ in FloatPtr.allocate(capacity: cache) }
        values = (0..<config.layers).map { _ in FloatPtr.allocate(capacity: cache) }
        scores = FloatPtr.allocate(capacity: positions)
        (x, ln, fc, logits) = DecodeShard.scratch(config, rows: rows, steps: 1)
        capacity = 1
    }

    deinit {
        for p in keys + values + [scores, x, ln, fc, logits] { p.deallocate() }
    }

    private static func scratch(_ c: GPTConfig, rows: Int, steps: Int) -> (
        FloatPtr, FloatPtr, FloatPtr, FloatPtr
    ) {
        let n = rows * steps
        let d = c.dModel
        return (
            .allocate(capacity: n * d), .allocate(capacity: n * d), .allocate(capacity: n * 4 * d),
            .allocate(capacity: n * c.vocab)
        )
    }

    /// Appends `count` tokens to each row listed in `active` (cache rows) at the current
    /// position (`tokens` is `active.count × count`); leaves their logits in `logits` in the same order.
    /// Finished rows drop out of `active`, so the products shrink as rows stop.
    func step(params: ConstFloatPtr, tokens: [Int32], count: Int, active: [Int]) {
        if count > capacity {
            for p in [x, ln, fc, logits] { p.deallocate() }
            (x, ln, fc, logits) = DecodeShard.scratch(config, rows: rows, steps: count)
            capacity = count
        }
        let (c, ctx, n) = (config.dModel, positions, active.count * count)
        for r in 0..<n {
            let te = params + layout.wte + Int(tokens[r]) * c
            let pe = params + layout.wpe + (position + r % count) * c
            for i in 0..<c { x[r * c + i] = te[i] + pe[i] }
        }
        for (l, w) in layout.blocks.enumerated() {
            layerNormForward(
                ln, mean: nil, rstd: nil, x, weight: params + w.ln1W, bias: params + w.ln1B, rows: n, width: c
            )
            linearForward(
                qkv, ln, weight: params + w.qkvW, bias: params + w.qkvB, rows: n, inDim: c, outDim: 3 * c,
                gemm: gemm)
            for r in 0..<n {
                let slot = active[r / count] * ctx + position + r % count
                (keys[l] + slot * c).update(from: qkv + r * 3 * c + c, count: c)
                (values[l] + slot * c).update(from: qkv + r * 3 * c + 2 * c, count: c)
            }
            cachedAttention(layer: l, count: count, active: active)
            linearForward(
                ln, atty, weight: params + w.attnProjW, bias: params + w.attnProjB, rows: n, inDim: c,
                outDim: c, gemm: gemm)
            add(x, ln, n * c)
            layerNormForward(
                ln, mean: nil, rstd: nil, x, weight: params + w.ln2W, bias: params + w.ln2B, rows: n, width: c
            )
            linearForward(
                fc, ln, weight: params + w.fcW, bias: params + w.fcB, rows: n, inDim: c, outDim: 4 * c,
                gemm: gemm)
            geluForward(fc, fc, n * 4 * c)
            linearForward(
                ln, fc, weight: params + w.mlpProjW, bias: params + w.mlpProjB, rows: n, inDim: 4 * c,
                outDim: c, gemm: gemm)
            add(x, ln, n * c)
        }
        layerNormForward(
            ln, mean: nil, rstd: nil, x, weight: params + layout.lnfW, bias: params + layout.lnfB, rows: n,
            width: c)
        linearForward(
            logits, ln, weight: params + layout.wte, bias: nil, rows: n, inDim: c, outDim: config.vocab,
            gemm: gemm)
        position += count
    }

    /// Attention of the `count` new positions of each active row over that row's cached keys and values.
    private func cachedAttention(layer l: Int, count: Int, active: [Int]) {
        let (c, h, hs, ctx) = (config.dModel, config.heads, config.headDim, positions)
        let scale = 1 / Float(hs).squareRoot()
        for (b, row) in active.enumerated() {
            let (k, v) = (keys[l] + row * ctx * c, values[l] + row * ctx * c)
            for i in 0..<count {
                let t = position + i
                for head in 0..<h {
                    let q = qkv + (b * count + i) * 3 * c + head * hs
                    for j in 0...t { scores[j] = dot(q, k + j * c + head * hs, hs) * scale }
                    softmaxInPlace(scores, t + 1)
                    let y = atty + (b * count + i) * c + head * hs
                    y.update(repeating: 0, count: hs)
                    for j in 0...t { axpy(scores[j], v + j * c + head * hs, y, hs) }
                }
            }
        }
    }

    /// The whole sampling loop for this shard's rows. Rows share one position counter: row `b` feeds
    /// its own prompt token at positions below its prompt length and samples from there on.
    ///
    /// `versions` receives the version of each drawn token (starting at the given one); with
    /// `swaps`, newer weights on offer are taken between tokens (``WeightSwap``) and the cache of
    /// every live row is re-prefilled with them before the next draw.
    func generate(
        params: ConstFloatPtr, prompts: [[Int32]], seeds: [UInt64], options: SamplingOptions, width: Int,
        tokens: UnsafeMutablePointer<Int32>, logProbs: FloatPtr, lengths: UnsafeMutablePointer<Int>,
        versions: (UnsafeMutablePointer<Int>, Int), swaps: WeightOffers?
    ) {
        let (g, v) = (options.maxNewTokens, config.vocab)
        var (params, holding) = (params, versions.1)
        var swapped: FloatPtr?  // this shard's copy of the weights swapped in, if any
        defer { swapped?.deallocate() }
        let shortest = prompts.map(\.count).min()!
        var rngs = seeds.map { SplitMix64(seed: $0) }
        position = 0
        // A pass may use fewer cache rows than the shard has (the last pass of a batch).
        precondition(prompts.count <= rows, "\(prompts.count) rows for a shard of \(rows)")
        let all = Array(0..<prompts.count)
        for b in all {
            for (t, token) in prompts[b].enumerated() { tokens[b * width + t] = token }
            lengths[b] = 0
        }
        // Prefill the common prompt prefix in one block, then step one position at a time.
        step(params: params, tokens: prompts.flatMap { $0.prefix(shortest) }, count: shortest, active: all)
        var stride = shortest  // logits rows per active row in the last step
        var active = all  // rows still running, in logits order
        while !active.isEmpty {
            let pos = position  // the position every active row fills now
            if let swaps,
                let offer = swaps.offer(
                    position: pos, holding: holding,
                    everyRowStarted: active.allSatisfy { lengths[$0] > 0 })
            {
                // Continue with the new weights at this token: recompute every live row's prefix
                // (positions 0..<pos) with them, so the cache and the next logits are exactly theirs.
                if swapped == nil { swapped = .allocate(capacity: offer.parameters.values.count) }
                offer.parameters.values.withUnsafeBufferPointer {
                    swapped!.update(from: $0.baseAddress!, count: $0.count)
                }
                (params, holding) = (ConstFloatPtr(swapped!), offer.version)
                position = 0
                step(
                    params: params, tokens: active.flatMap { b in (0..<pos).map { tokens[b * width + $0] } },
                    count: pos, active: active)
                stride = pos
            }
            var next: [Int32] = []
            var still: [Int] = []
            for (slot, b) in active.enumerated() {
                if pos < prompts[b].count {  // still feeding this row's prompt
                    next.append(prompts[b][pos])
                    still.append(b)
                    continue
                }
                let row = logits + (slot * stride + stride - 1) * v
                let (tok, lp) = drawToken(row, v, options: options, rng: &rngs[b])
                tokens[b * width + pos] = tok
                logProbs[b * g + lengths[b]] = lp
                versions.0[b * g + lengths[b]] = holding
                lengths[b] += 1
                if tok != options.stopToken && lengths[b] < g {
                    next.append(tok)
                    still.append(b)
                }
            }
            active = still
            if active.isEmpty { break }
            step(params: params, tokens: next, count: 1, active: active)
            stride = 1
        }
    }
}

/// A sampler's view of a ``SamplingWeightsSource``: asks it for an offer and applies
/// ``WeightSwap``; weights that do not fit the model are never taken.
struct WeightOffers: Sendable {
    let source: any SamplingWeightsSource
    let check: @Sendable (GPTParameters) -> Bool

    /// The weights to continue with before drawing at `position`, or nil to keep `holding`.
    func offer(position: Int, holding: Int, everyRowStarted: Bool) -> VersionedParameters? {
        guard everyRowStarted, let offer = source.offer(position: position),
            WeightSwap.shouldSwap(holding: holding, offered: offer.version, everyRowStarted: everyRowStarted),
            check(offer.parameters)
        else { return nil }
        return offer
    }
}
