import Foundation

extension GPTModel {
    /// Back-propagates dLoss/d log π(token[t+1] | …) (shape `batch × positions`, as returned by the
    /// last `forward`) and adds dLoss/dθ to ``gradients``. Padding targets are ignored. The parameters
    /// must be those of that forward pass (step the optimizer after the backward). Several backward
    /// calls may follow one forward (e.g. one per loss term); their gradients add up.
    public func backward(dLogProbs: [Float]) throws(ModelError) {
        guard let batch = lastBatch else { throw .noForwardPass }
        let steps = batch.length - 1
        guard dLogProbs.count == batch.batch * steps else {
            throw .invalidArgument(
                "dLogProbs has \(dLogProbs.count) values, expected \(batch.batch) × \(steps)")
        }
        let v = config.vocab
        try backward { ws, rows in
            // d log p_y / d z_j = 1[j = y] − p_j.
            for b in rows {
                let local = b - rows.lowerBound
                for t in 0..<steps {
                    let r = (local * steps + t) * v
                    let dz = ws.dlogits + r
                    guard t + 1 < batch.lengths[b] else {
                        dz.update(repeating: 0, count: v)
                        continue
                    }
                    let g = dLogProbs[b * steps + t]
                    scaledExp(dz, ws.logp + r, scale: -g, v)
                    dz[Int(batch.tokens[b * batch.length + t + 1])] += g
                }
            }
        }
    }

    /// Back-propagates dLoss/d logits (shape `batch × positions × vocab`, raw logits before the
    /// log-softmax) and adds dLoss/dθ to ``gradients``. Positions whose input token is padding are ignored.
    public func backward(dLogits: [Float]) throws(ModelError) {
        guard let batch = lastBatch else { throw .noForwardPass }
        let (steps, v) = (batch.length - 1, config.vocab)
        guard dLogits.count == batch.batch * steps * v else {
            throw .invalidArgument(
                "dLogits has \(dLogits.count) values, expected \(batch.batch) × \(steps) × \(v)")
        }
        try backward { ws, rows in
            for b in rows {
                let local = b - rows.lowerBound
                for t in 0..<steps {
                    let dz = ws.dlogits + (local * steps + t) * v
                    for j in 0..<v { dz[j] = t < batch.lengths[b] ? dLogits[(b * steps + t) * v + j] : 0 }
                }
            }
        }
    }

    /// Runs the backward pass on every shard after `seed` fills each shard's dlogits, then sums the
    /// shards' private gradients into ``gradients``.
    private func backward(seed: @escaping @Sendable (Workspace, Range<Int>) -> Void) throws(ModelError) {
        guard let batch = lastBatch else { throw .noForwardPass }
        // The shards must still hold this model's training forward (another model sharing them may
        // have run since).
        let owner = ObjectIdentifier(self)
        guard
            workspaces.prefix(shardCount(rows: batch.batch)).allSatisfy({
                $0.heldBy == owner && $0.keepsActivations
            })
        else { throw .noForwardPass }
        if gradients.isEmpty { zeroGradients() }
        guard parameters.values.count == gradients.count else {
            throw .invalidArgument("parameter buffer resized to \(parameters.values.count) floats")
        }
        let shards = shardCount(rows: batch.batch)
        let (layout, workspaces, count, threads) = (parameters.layout, workspaces, gradients.count, threads)
        parameters.values.withUnsafeBufferPointer { params in
            gradients.withUnsafeMutableBufferPointer { grads in
                batch.tokens.withUnsafeBufferPointer { tokens in
                    let p = SendablePointer(UnsafeMutablePointer(mutating: params.baseAddress!))
                    let g = SendablePointer(grads.baseAddress!)
                    let tok = SendablePointer(UnsafeMutablePointer(mutating: tokens.baseAddress!))
                    parallel(shards) { s in
                        let rows = shardRange(s, of: shards, total: batch.batch)
                        let ws = workspaces[s]
                        seed(ws, rows)
                        backwardShard(
                            layout: layout, params: p.pointer,
                            grads: s == 0 ? g.pointer : ws.zeroedGradients(count: count), ws: ws,
                            tokens: tok.pointer + rows.lowerBound * batch.length, stride: batch.length)
                    }
                    // Sum the private gradients in shard order (deterministic), split over threads.
                    guard shards > 1 else { return }
                    parallel(threads) { part in
                        let range = shardRange(part, of: threads, total: count)
                        for s in 1..<shards {
                            add(
                                g.pointer + range.lowerBound, workspaces[s].grads! + range.lowerBound,
                                range.count)
                        }
                    }
                }
            }
        }
    }
}

/// Backward pass of one shard, from `ws.dlogits` to `grads` (accumulated).
func backwardShard(
    layout: ParameterLayout, params: ConstFloatPtr, grads: FloatPtr, ws: Workspace,
    tokens: UnsafePointer<Int32>,
    stride: Int
) {
    let config = layout.config
    let (c, v, steps) = (config.dModel, config.vocab, ws.steps)
    let n = ws.rows * steps

    // Tied head and final LayerNorm (its output recomputed from the saved statistics).
    layerNormRecompute(
        ws.ln, ws.resFinal, mean: ws.lnfMean, rstd: ws.lnfRstd, weight: params + layout.lnfW,
        bias: params + layout.lnfB, rows: n, width: c)
    linearBackward(
        dInp: ws.dln, dWeight: grads + layout.wte, dBias: nil, dOut: ws.dlogits, inp: ws.ln,
        weight: params + layout.wte, rows: n, inDim: c, outDim: v, gemm: ws.gemm)
    ws.dres.update(repeating: 0, count: n * c)
    layerNormBackward(
        dInp: ws.dres, dWeight: grads + layout.lnfW, dBias: grads + layout.lnfB, dOut: ws.dln,
        inp: ws.resFinal, weight: params + layout.lnfW, mean: ws.lnfMean, rstd: ws.lnfRstd, rows: n, width: c)

    // Blocks in reverse; ws.dres holds dL/d(block output), then dL/d(block input). What the forward
    // pass did not keep is recomputed (bit-identical: the same kernels and products) into the
    // shard's shared buffers just before the product that reads it.
    for (l, a) in ws.blocks.enumerated().reversed() {
        let w = layout.blocks[l]
        // MLP: ln_2 output, then fch = c_fc(ln_2), then GELU(fch).
        layerNormRecompute(
            ws.ln, a.res2, mean: a.ln2Mean, rstd: a.ln2Rstd, weight: params + w.ln2W, bias: params + w.ln2B,
            rows: n, width: c)
        linearForward(
            ws.fch, ws.ln, weight: params + w.fcW, bias: params + w.fcB, rows: n, inDim: c, outDim: 4 * c,
            gemm: ws.gemm)
        // The GELU output, and its slope over fch (x itself is not needed again).
        geluOutputAndSlope(ws.gelu, ws.fch, n * 4 * c)
        // c_proj's weight gradient reads the GELU output; its input gradient then goes over it.
        linearBackward(
            dInp: nil, dWeight: grads + w.mlpProjW, dBias: grads + w.mlpProjB, dOut: ws.dres, inp: ws.gelu,
            weight: params + w.mlpProjW, rows: n, inDim: 4 * c, outDim: c, gemm: ws.gemm)
        linearBackwardInput(
            ws.dfc, dOut: ws.dres, weight: params + w.mlpProjW, rows: n, inDim: 4 * c, outDim: c,
            gemm: ws.gemm)
        multiply(ws.dfc, ws.fch, n * 4 * c)
        linearBackward(
            dInp: ws.dln, dWeight: grads + w.fcW, dBias: grads + w.fcB, dOut: ws.dfc, inp: ws.ln,
            weight: params + w.fcW, rows: n, inDim: c, outDim: 4 * c, gemm: ws.gemm)
        layerNormBackward(
            dInp: ws.dres, dWeight: grads + w.ln2W, dBias: grads + w.ln2B, dOut: ws.dln, inp: a.res2,
            weight: params + w.ln2W, mean: a.ln2Mean, rstd: a.ln2Rstd, rows: n, width: c)
        linearBackward(
            dInp: ws.dy, dWeight: grads + w.attnProjW, dBias: grads + w.attnProjB, dOut: ws.dres,
            inp: a.atty, weight: params + w.attnProjW, rows: n, inDim: c, outDim: c, gemm: ws.gemm)
        attentionBackward(
            dqkv: ws.dqkv, scratch: ws.datt, dOut: ws.dy, qkv: a.qkv, att: a.att, rows: ws.rows, steps: steps,
            config: config, gemm: ws.gemm)
        if l == 0 {  // the first block's input: the embeddings again
            embed(
                a.res, layout: layout, params: params, rows: ws.rows, steps: steps, tokens: tokens,
                stride: stride)
        }
        layerNormRecompute(
            ws.ln, a.res, mean: a.ln1Mean, rstd: a.ln1Rstd, weight: params + w.ln1W, bias: params + w.ln1B,
            rows: n, width: c)
        linearBackward(
            dInp: ws.dln, dWeight: grads + w.qkvW, dBias: grads + w.qkvB, dOut: ws.dqkv, inp: ws.ln,
            weight: params + w.qkvW, rows: n, inDim: c, outDim: 3 * c, gemm: ws.gemm)
        layerNormBackward(
            dInp: ws.dres, dWeight: grads + w.ln1W, dBias: grads + w.ln1B, dOut: ws.dln, inp: a.res,
            weight: params + w.ln1W, mean: a.ln1Mean, rstd: a.ln1Rstd, rows: n, width: c)
    }

    // Embeddings.
    for b in 0..<ws.rows {
        for t in 0..<steps {
            let d = ws.dres + (b * steps + t) * c
            add(grads + layout.wte + Int(tokens[b * stride + t]) * c, d, c)
            add(grads + layout.wpe + t * c, d, c)
        }
    }
}

/// Backward of ``attentionForward(_:att:qkv:rows:steps:config:gemm:)``, per (row, head) with `dp` as T×T
/// scratch: dP = dY·Vᵀ, dV = Pᵀ·dY, dS = P ⊙ (dP − Σⱼ P dP)/√d, dQ = dS·K, dK = dSᵀ·Q. Overwrites `dqkv`.
func attentionBackward(
    dqkv: FloatPtr, scratch dp: FloatPtr, dOut: ConstFloatPtr, qkv: ConstFloatPtr, att: ConstFloatPtr,
    rows: Int, steps t: Int, config: GPTConfig, gemm: GemmBackend
) {
    let (c, h, hs) = (config.dModel, config.heads, config.headDim)
    let scale = 1 / Float(hs).squareRoot()
    for b in 0..<rows {
        for head in 0..<h {
            let off = b * t * 3 * c + head * hs
            let (q, dq) = (qkv + off, dqkv + off)
            let p = att + (b * h + head) * t * t
            let dy = dOut + b * t * c + head * hs
            gemm.sgemm(
                transA: false, transB: true, m: t, n: t, k: hs, dy, lda: c, q + 2 * c, ldb: 3 * c, beta: 0,
                dp,
                ldc: t)
            gemm.sgemm(
                transA: true, transB: false, m: t, n: hs, k: t, p, lda: t, dy, ldb: c, beta: 0, dq + 2 * c,
                ldc: 3 * c)
            for i in 0..<t {
                let (pr, dr) = (p + i * t, dp + i * t)
                let pdp = dot(pr, dr, i + 1)
                for j in 0...i { dr[j] = pr[j] * (dr[j] - pdp) * scale }
                (dr + i + 1).update(repeating: 0, count: t - i - 1)
            }
            gemm.sgemm(
                transA: false, transB: false, m: t, n: hs, k: t, dp, lda: t, q + c, ldb: 3 * c, beta: 0, dq,
                ldc: 3 * c)
            gemm.sgemm(
                transA: true, transB: false, m: t, n: hs, k: t, dp, lda: t, q, ldb: 3 * c, beta: 0, dq + c,
                ldc: 3 * c)
        }
    }
}
