import Foundation

/// A batch of token sequences, right-padded to a common length.
/// Position `t` of row `b` predicts token `t + 1`; targets at or past `lengths[b]` are padding.
public struct TokenBatch: Sendable, Equatable {
    /// Row-major `batch × length` token ids; padding positions hold 0.
    public private(set) var tokens: [Int32]
    /// Number of rows.
    public let batch: Int
    /// Padded length of every row.
    public let length: Int
    /// Valid tokens in each row (`2...length` for a row that has at least one target).
    public let lengths: [Int]

    /// Builds a batch from a flat `batch × length` array. Tokens past a row's length are replaced by 0.
    public init(tokens: [Int32], batch: Int, length: Int, lengths: [Int]? = nil) throws(ModelError) {
        guard batch > 0, length > 0, tokens.count == batch * length else {
            throw .invalidArgument("\(tokens.count) tokens do not form a \(batch) × \(length) batch")
        }
        let lengths = lengths ?? Array(repeating: length, count: batch)
        guard lengths.count == batch, lengths.allSatisfy({ (0...length).contains($0) }) else {
            throw .invalidArgument("need \(batch) row lengths in 0...\(length), got \(lengths)")
        }
        var tokens = tokens
        for b in 0..<batch {
            for t in lengths[b]..<length { tokens[b * length + t] = 0 }
        }
        self.tokens = tokens
        self.batch = batch
        self.length = length
        self.lengths = lengths
    }

    /// Builds a batch from variable-length sequences, padding each to the longest.
    public init(sequences: [[Int32]]) throws(ModelError) {
        let length = sequences.map(\.count).max() ?? 0
        var flat = [Int32](repeating: 0, count: sequences.count * length)
        for (b, s) in sequences.enumerated() {
            flat.replaceSubrange(b * length..<b * length + s.count, with: s)
        }
        try self.init(tokens: flat, batch: sequences.count, length: length, lengths: sequences.map(\.count))
    }
}

/// What the training forward returns: one log-probability per (row, position) and, on request,
/// the full log-softmax rows.
public struct ForwardOutput: Sendable {
    /// Number of rows.
    public let batch: Int
    /// Positions per row: `length − 1` of the input batch.
    public let positions: Int
    /// Vocabulary size (width of a log-softmax row).
    public let vocab: Int
    /// `batch × positions`: log π(token[t+1] | tokens[...t]); 0 where the target is padding.
    public let logProbs: [Float]
    /// `batch × positions × vocab` log-softmax rows (padding positions included), if requested.
    public let logSoftmax: [Float]?
    /// `batch × positions`: true where the target is a real token.
    public let mask: [Bool]
}

/// The training engine: parameters, their gradient, and reusable activation memory. Batch rows are
/// split into `threads` shards that run concurrently, each calling the matrix-product library
/// single-threaded; the result for a given batch depends only on the parameters, the backend and the
/// thread count.
///
/// Not thread-safe: one owner calls `forward` then `backward`.
public final class GPTModel {
    /// Model shape.
    public let config: GPTConfig
    /// The weights (a value: assign to swap them, copy to snapshot them). Must keep ``config``.
    public var parameters: GPTParameters
    /// dLoss/dθ, laid out like `parameters.values`; `backward` adds to it. Empty until the first
    /// `backward` or ``zeroGradients()`` (a model that only scores, such as π_ref, holds none).
    public internal(set) var gradients: [Float] = []
    /// Number of shards run concurrently.
    public let threads: Int
    /// The library that runs the matrix products.
    public let gemm: GemmBackend

    let workspaces: [Workspace]
    /// The batch of the last forward pass (backward needs its tokens and lengths).
    var lastBatch: TokenBatch?

    /// Creates an engine around `parameters`, using up to `threads` cores and `gemm` for the matrix
    /// products (by default the process-wide ``GemmBackend/preferred``).
    public init(parameters: GPTParameters, threads: Int = 1, gemm: GemmBackend = .preferred) {
        self.config = parameters.config
        self.parameters = parameters
        self.threads = max(1, threads)
        self.gemm = gemm
        workspaces = (0..<max(1, threads)).map { _ in Workspace(config: parameters.config, gemm: gemm) }
    }

    /// Sets every gradient to zero (allocating them on first use).
    public func zeroGradients() {
        if gradients.isEmpty {
            gradients = [Float](repeating: 0, count: parameters.values.count)
        } else {
            gradients.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
        }
    }

    /// Shards used for a batch of `rows` rows.
    func shardCount(rows: Int) -> Int { min(threads, rows) }

    /// An engine for other weights of the same shape that uses `other`'s activation memory instead of
    /// its own (e.g. a scratch model that scores batches between the learner's steps). The two must
    /// not run at the same time; a forward pass of one invalidates the other's (its `backward` then
    /// throws ``ModelError/noForwardPass`` until it runs `forward` again).
    public init(sharingWorkspacesOf other: GPTModel, parameters: GPTParameters) throws(ModelError) {
        guard parameters.config == other.config else {
            throw .invalidArgument(
                "parameters are for \(parameters.config), the shared workspaces for \(other.config)")
        }
        self.config = other.config
        self.parameters = parameters
        self.threads = other.threads
        self.gemm = other.gemm
        workspaces = other.workspaces
    }

    /// Floats of activation memory the shards hold now (a structural figure for tests and benchmarks).
    public var workspaceFloats: Int { workspaces.reduce(0) { $0 + $1.capacity } }

    /// Runs the model over `batch` (positions `0..<length−1`), keeping activations for `backward`.
    /// - Parameters:
    ///   - logSoftmaxRows: also return the full `vocab`-wide log-softmax at every position.
    ///   - keepActivations: false for a forward pass that no `backward` follows (scoring, evaluation):
    ///     the shards then hold one block's activations instead of every block's, for 32 rows at a
    ///     time (however large the batch), and `backward` throws ``ModelError/noForwardPass`` until
    ///     the next training forward. The outputs agree to float32 rounding (a library may round a
    ///     row by where it falls in a product's row blocks, as oneDNN's and OpenBLAS's AVX2 kernels
    ///     do), and each path is bit-identical from one call to the next.
    public func forward(_ batch: TokenBatch, logSoftmaxRows: Bool = false, keepActivations: Bool = true)
        throws(ModelError) -> ForwardOutput
    {
        let (v, steps) = (config.vocab, batch.length - 1)
        guard parameters.config == config, parameters.values.count == parameters.layout.count else {
            throw .invalidArgument("parameters are for \(parameters.config), the model for \(config)")
        }
        guard steps >= 1, steps <= config.context else {
            throw .invalidArgument("sequence length \(batch.length) must be in 2...\(config.context + 1)")
        }
        if let bad = batch.tokens.first(where: { $0 < 0 || Int($0) >= v }) {
            throw .invalidArgument("token id \(bad) is outside the vocabulary 0..<\(v)")
        }
        lastBatch = keepActivations ? batch : nil
        let shards = shardCount(rows: batch.batch)
        let (layout, workspaces) = (parameters.layout, workspaces)
        let owner = ObjectIdentifier(self)
        // Training keeps a shard's rows in one pass (backward needs them all); scoring takes them
        // `scoringRows` at a time, so its memory does not grow with the batch.
        let rowsPerPass = keepActivations ? batch.batch : Self.scoringRows
        var logProbs = [Float](repeating: 0, count: batch.batch * steps)
        var mask = [Bool](repeating: false, count: batch.batch * steps)
        var rowsOut = [Float](repeating: 0, count: logSoftmaxRows ? batch.batch * steps * v : 0)
        parameters.values.withUnsafeBufferPointer { params in
            batch.tokens.withUnsafeBufferPointer { tokens in
                logProbs.withUnsafeMutableBufferPointer { logProbs in
                    mask.withUnsafeMutableBufferPointer { mask in
                        rowsOut.withUnsafeMutableBufferPointer { rowsOut in
                            let p = SendablePointer(UnsafeMutablePointer(mutating: params.baseAddress!))
                            let tok = SendablePointer(UnsafeMutablePointer(mutating: tokens.baseAddress!))
                            let out = SendablePointer(logProbs.baseAddress!)
                            let valid = SendablePointer(mask.baseAddress!)
                            let full = logSoftmaxRows ? SendablePointer(rowsOut.baseAddress!) : nil
                            parallel(shards) { s in
                                let shard = shardRange(s, of: shards, total: batch.batch)
                                let ws = workspaces[s]
                                for first in stride(
                                    from: shard.lowerBound, to: shard.upperBound, by: rowsPerPass)
                                {
                                    let rows = first..<min(first + rowsPerPass, shard.upperBound)
                                    ws.ensure(
                                        rows: rows.count, steps: steps, keepActivations: keepActivations)
                                    ws.heldBy = owner
                                    forwardShard(
                                        layout: layout, params: p.pointer, ws: ws,
                                        tokens: tok.pointer + rows.lowerBound * batch.length,
                                        stride: batch.length)
                                    Self.gather(
                                        ws.logp, rows: rows, of: batch, vocab: v, logProbs: out.pointer,
                                        mask: valid.pointer, logSoftmax: full?.pointer)
                                }
                            }
                        }
                    }
                }
            }
        }
        return ForwardOutput(
            batch: batch.batch, positions: steps, vocab: v, logProbs: logProbs,
            logSoftmax: logSoftmaxRows ? rowsOut : nil, mask: mask)
    }

    /// Rows a forward pass that keeps no activations (scoring) runs at a time in each shard.
    static let scoringRows = 32

    /// Copies the log-probabilities of the targets of `rows` (and their log-softmax rows, when
    /// `logSoftmax` is given) from a shard's `logp`, which holds those rows, into the outputs.
    static func gather(
        _ logp: ConstFloatPtr, rows: Range<Int>, of batch: TokenBatch, vocab v: Int, logProbs: FloatPtr,
        mask: UnsafeMutablePointer<Bool>, logSoftmax: FloatPtr?
    ) {
        let steps = batch.length - 1
        for b in rows {
            let local = logp + (b - rows.lowerBound) * steps * v
            for t in 0..<steps where t + 1 < batch.lengths[b] {
                logProbs[b * steps + t] = local[t * v + Int(batch.tokens[b * batch.length + t + 1])]
                mask[b * steps + t] = true
            }
            logSoftmax?.advanced(by: b * steps * v).update(from: local, count: steps * v)
        }
    }
}

/// Forward pass of one shard: `ws.rows` rows of `ws.steps` positions. `tokens` points at the shard's
/// first row; consecutive rows are `stride` tokens apart.
func forwardShard(
    layout: ParameterLayout, params: ConstFloatPtr, ws: Workspace, tokens: UnsafePointer<Int32>, stride: Int
) {
    let config = layout.config
    let (c, v, steps) = (config.dModel, config.vocab, ws.steps)
    let n = ws.rows * steps

    var x = ws.blocks.first?.res ?? ws.resFinal
    embed(x, layout: layout, params: params, rows: ws.rows, steps: steps, tokens: tokens, stride: stride)

    for (l, a) in ws.blocks.enumerated() {
        let w = layout.blocks[l]
        layerNormForward(
            ws.ln, mean: a.ln1Mean, rstd: a.ln1Rstd, x, weight: params + w.ln1W, bias: params + w.ln1B,
            rows: n, width: c)
        linearForward(
            a.qkv, ws.ln, weight: params + w.qkvW, bias: params + w.qkvB, rows: n, inDim: c, outDim: 3 * c,
            gemm: ws.gemm)
        attentionForward(
            a.atty, att: a.att, qkv: a.qkv, rows: ws.rows, steps: steps, config: config, gemm: ws.gemm)
        linearForward(
            a.res2, a.atty, weight: params + w.attnProjW, bias: params + w.attnProjB, rows: n, inDim: c,
            outDim: c, gemm: ws.gemm)
        add(a.res2, x, n * c)
        layerNormForward(
            ws.ln, mean: a.ln2Mean, rstd: a.ln2Rstd, a.res2, weight: params + w.ln2W, bias: params + w.ln2B,
            rows: n, width: c)
        linearForward(
            ws.fch, ws.ln, weight: params + w.fcW, bias: params + w.fcB, rows: n, inDim: c, outDim: 4 * c,
            gemm: ws.gemm)
        // Training writes the GELU output beside fch (the backward pass recomputes both, from the
        // ln_2 output); scoring overwrites fch in place.
        let gelu = ws.keepsActivations ? ws.gelu : ws.fch
        geluForward(gelu, ws.fch, n * 4 * c)
        let next = l + 1 < ws.blocks.count ? ws.blocks[l + 1].res : ws.resFinal
        linearForward(
            next, gelu, weight: params + w.mlpProjW, bias: params + w.mlpProjB, rows: n, inDim: 4 * c,
            outDim: c, gemm: ws.gemm)
        add(next, a.res2, n * c)
        x = next
    }

    layerNormForward(
        ws.ln, mean: ws.lnfMean, rstd: ws.lnfRstd, ws.resFinal, weight: params + layout.lnfW,
        bias: params + layout.lnfB, rows: n, width: c)
    // Tied head: logits = ln_f(x) · wteᵀ.
    linearForward(
        ws.logp, ws.ln, weight: params + layout.wte, bias: nil, rows: n, inDim: c, outDim: v, gemm: ws.gemm)
    for r in 0..<n { logSoftmaxInPlace(ws.logp + r * v, v) }
}

/// Causal multi-head self-attention over `rows × steps` positions of packed q|k|v rows (width 3C).
/// Per (row, head): S = QKᵀ/√d (sgemm), causal softmax, Y = PV (sgemm). Saves the probabilities P in
/// `att` (rows × heads × steps × steps, zero above the diagonal) for the backward pass.
func attentionForward(
    _ out: FloatPtr, att: FloatPtr, qkv: ConstFloatPtr, rows: Int, steps t: Int, config: GPTConfig,
    gemm: GemmBackend
) {
    let (c, h, hs) = (config.dModel, config.heads, config.headDim)
    let scale = 1 / Float(hs).squareRoot()
    for b in 0..<rows {
        for head in 0..<h {
            let q = qkv + b * t * 3 * c + head * hs
            let p = att + (b * h + head) * t * t
            gemm.sgemm(
                transA: false, transB: true, m: t, n: t, k: hs, alpha: scale, q, lda: 3 * c, q + c,
                ldb: 3 * c,
                beta: 0, p, ldc: t)
            for i in 0..<t {
                let row = p + i * t
                softmaxInPlace(row, i + 1)
                (row + i + 1).update(repeating: 0, count: t - i - 1)
            }
            gemm.sgemm(
                transA: false, transB: false, m: t, n: hs, k: t, p, lda: t, q + 2 * c, ldb: 3 * c, beta: 0,
                out + b * t * c + head * hs, ldc: c)
        }
    }
}

/// Token + position embedding of `rows × steps` positions into `out` (the first block's input; the
/// backward pass recomputes it with this function).
func embed(
    _ out: FloatPtr, layout: ParameterLayout, params: ConstFloatPtr, rows: Int, steps: Int,
    tokens: UnsafePointer<Int32>, stride: Int
) {
    let c = layout.config.dModel
    for b in 0..<rows {
        for t in 0..<steps {
            let row = out + (b * steps + t) * c
            let te = params + layout.wte + Int(tokens[b * stride + t]) * c
            let pe = params + layout.wpe + t * c
            for i in 0..<c { row[i] = te[i] + pe[i] }
        }
    }
}
