import Foundation
import ReinModel
import Testing

let tiny = GPTConfig(vocab: 7, context: 8, dModel: 8, layers: 2, heads: 2)

/// Three rows of different lengths (padding exercised), fixed tokens.
func tinyBatch() throws -> TokenBatch {
    try TokenBatch(sequences: [[1, 2, 3, 4, 5, 6], [6, 0, 1], [3, 3, 2, 1, 0]])
}

/// Parameters with non-trivial LayerNorm weights and biases (the default init has them at 1 and 0).
func tinyParameters(seed: UInt64 = 7, scale: Float = 8) throws -> GPTParameters {
    var p = try GPTParameters(config: tiny, seed: seed)
    var rng = SplitMix64(seed: seed &+ 99)
    for spec in p.layout.tensors where spec.name.contains("ln_") || spec.name.hasSuffix(".bias") {
        for i in spec.range { p.values[i] += Float(rng.nextGaussian() * 0.3) }
    }
    // Larger weights so attention and GELU are not near-linear.
    for i in p.values.indices { p.values[i] *= scale }
    return p
}

@Suite struct ForwardBackwardTests {
    @Test(arguments: GemmBackend.available)
    func forwardMatchesFloat64Reference(gemm: GemmBackend) throws {
        let p = try tinyParameters()
        let batch = try tinyBatch()
        let out = try GPTModel(parameters: p, gemm: gemm).forward(batch, logSoftmaxRows: true)
        let ref = ReferenceGPT(p)
        var worst = 0.0
        for b in 0..<batch.batch {
            let n = batch.lengths[b]
            let seq = Array(batch.tokens[b * batch.length..<b * batch.length + n - 1])
            let rows = ref.logits(seq).map(ReferenceGPT.logSoftmax)
            for t in 0..<(n - 1) {
                for j in 0..<tiny.vocab {
                    worst = max(
                        worst,
                        abs(Double(out.logSoftmax![(b * out.positions + t) * tiny.vocab + j]) - rows[t][j]))
                }
                #expect(out.mask[b * out.positions + t])
                let y = Int(batch.tokens[b * batch.length + t + 1])
                #expect(abs(Double(out.logProbs[b * out.positions + t]) - rows[t][y]) < 1e-4)
            }
            for t in max(0, n - 1)..<out.positions {
                #expect(!out.mask[b * out.positions + t] && out.logProbs[b * out.positions + t] == 0)
            }
        }
        #expect(worst < 1e-4, "max |Δ log-softmax| = \(worst)")
    }

    /// Central finite differences of a float64 reference (h = 1e-5, truncation error ~1e-10) against the
    /// float32 analytic gradient. Per tensor, ‖g − g_fd‖ / max(‖g_fd‖, 1e-3) < 2e-3: float32 rounding in a
    /// forward of this depth gives relative errors around 1e-5…1e-4, so 2e-3 leaves margin without
    /// hiding a wrong term (a wrong term gives errors of order 1).
    @Test(arguments: GemmBackend.available, [false, true])
    func gradientsMatchFiniteDifferences(gemm: GemmBackend, throughLogits: Bool) throws {
        let p = try tinyParameters()
        let batch = try tinyBatch()
        let model = GPTModel(parameters: p, gemm: gemm)
        let out = try model.forward(batch)
        var rng = SplitMix64(seed: 3)
        let v = tiny.vocab
        let weights = (0..<(throughLogits ? out.logProbs.count * v : out.logProbs.count)).map { _ in
            rng.nextGaussian()
        }
        if throughLogits {
            try model.backward(dLogits: weights.map(Float.init))
        } else {
            try model.backward(dLogProbs: weights.map(Float.init))
        }

        // Loss on the reference: Σ w · log p(target)  or  Σ u · logits over real input positions.
        func loss(_ ref: ReferenceGPT) -> Double {
            var total = 0.0
            for b in 0..<batch.batch {
                let n = batch.lengths[b]
                let seq = Array(batch.tokens[b * batch.length..<b * batch.length + batch.length - 1])
                let z = ref.logits(seq)
                for t in 0..<out.positions {
                    if throughLogits {
                        guard t < n else { continue }
                        for j in 0..<v { total += weights[(b * out.positions + t) * v + j] * z[t][j] }
                    } else {
                        guard t + 1 < n else { continue }
                        let y = Int(batch.tokens[b * batch.length + t + 1])
                        total += weights[b * out.positions + t] * ReferenceGPT.logSoftmax(z[t])[y]
                    }
                }
            }
            return total
        }
        var ref = ReferenceGPT(p)
        let h = 1e-5
        for spec in p.layout.tensors {
            var diff = 0.0
            var norm = 0.0
            for i in 0..<spec.count {
                let saved = ref.w[spec.offset + i]
                ref.w[spec.offset + i] = saved + h
                let up = loss(ref)
                ref.w[spec.offset + i] = saved - h
                let down = loss(ref)
                ref.w[spec.offset + i] = saved
                let fd = (up - down) / (2 * h)
                let g = Double(model.gradients[spec.offset + i])
                diff += (g - fd) * (g - fd)
                norm += fd * fd
            }
            let rel = diff.squareRoot() / max(norm.squareRoot(), 1e-3)
            #expect(rel < 2e-3, "\(spec.name): relative gradient error \(rel)")
        }
    }

    @Test func gradientsAccumulateAndZero() throws {
        let model = GPTModel(parameters: try tinyParameters())
        let batch = try tinyBatch()
        let out = try model.forward(batch)
        let seed = [Float](repeating: 1, count: out.logProbs.count)
        try model.backward(dLogProbs: seed)
        let once = model.gradients
        try model.backward(dLogProbs: seed)
        for (a, b) in zip(once, model.gradients) { #expect(abs(2 * a - b) <= 1e-6 * max(1, abs(b))) }
        model.zeroGradients()
        #expect(model.gradients.allSatisfy { $0 == 0 })
    }

    @Test(arguments: GemmBackend.available)
    func threadsSplitRowsWithoutChangingResults(gemm: GemmBackend) throws {
        let p = try tinyParameters()
        let batch = try tinyBatch()
        let one = GPTModel(parameters: p, threads: 1, gemm: gemm)
        let two = GPTModel(parameters: p, threads: 2, gemm: gemm)
        let a = try one.forward(batch)
        let b = try two.forward(batch)
        for (x, y) in zip(a.logProbs, b.logProbs) { #expect(abs(x - y) < 1e-5) }
        try one.backward(dLogProbs: a.logProbs)
        try two.backward(dLogProbs: b.logProbs)
        // Shards sum in a different order: compare as vectors (float32 rounding, relative 1e-5).
        let diff = zip(one.gradients, two.gradients).map { Double($0 - $1) * Double($0 - $1) }.reduce(0, +)
        let norm = one.gradients.map { Double($0) * Double($0) }.reduce(0, +)
        #expect((diff / norm).squareRoot() < 1e-5)
    }

    @Test func rejectsBadInput() throws {
        let model = GPTModel(parameters: try tinyParameters())
        #expect(throws: ModelError.noForwardPass) { try model.backward(dLogProbs: []) }
        #expect(throws: ModelError.self) { try model.forward(try TokenBatch(sequences: [[1, 9]])) }
        #expect(throws: ModelError.self) { try model.forward(try TokenBatch(sequences: [[1]])) }
        let long = [Int32](repeating: 1, count: tiny.context + 2)
        #expect(throws: ModelError.self) { try model.forward(try TokenBatch(sequences: [long])) }
        _ = try model.forward(try tinyBatch())
        #expect(throws: ModelError.self) { try model.backward(dLogProbs: [1, 2]) }
    }
}

@Suite struct DeterminismTests {
    /// Same parameters, batch and thread count → bit-identical log-probs, gradients and AdamW update,
    /// across separate engine instances, for each backend.
    @Test(arguments: GemmBackend.available, [1, 2])
    func learnerStepIsBitIdentical(gemm: GemmBackend, threads: Int) throws {
        func step() throws -> (lp: [Float], grads: [Float], params: [Float]) {
            let model = GPTModel(
                parameters: try GPTParameters(config: tiny, seed: 21), threads: threads, gemm: gemm)
            var rng = SplitMix64(seed: 5)
            let tokens = (0..<(6 * 8)).map { _ in Int32(rng.next() % 7) }
            let out = try model.forward(
                try TokenBatch(tokens: tokens, batch: 6, length: 8, lengths: [8, 3, 8, 5, 2, 8]))
            try model.backward(dLogProbs: out.logProbs.map { $0 * 0.1 })
            var grads = model.gradients
            clipGradientNorm(&grads, maxNorm: 0.01)
            var opt = AdamW(layout: model.parameters.layout)
            opt.step(params: &model.parameters.values, grads: grads, lr: 1e-3)
            return (out.logProbs, model.gradients, model.parameters.values)
        }
        let a = try step()
        let b = try step()
        #expect(a.lp.map(\.bitPattern) == b.lp.map(\.bitPattern))
        #expect(a.grads.map(\.bitPattern) == b.grads.map(\.bitPattern))
        #expect(a.params.map(\.bitPattern) == b.params.map(\.bitPattern))
    }
}
