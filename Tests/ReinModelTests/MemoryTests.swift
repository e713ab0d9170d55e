import Foundation
import ReinModel
import Testing

/// Structural facts about the engine's memory (issue 14): buffers sized by what a call uses, not by
/// the worst case. No RSS is measured here (`scripts/bench/memory.sh` does that).
@Suite struct MemoryTests {
    /// A forward pass that no backward follows gives the same numbers from one block's activations.
    @Test(arguments: GemmBackend.available, [1, 2])
    func inferenceForwardEqualsTrainingForward(gemm: GemmBackend, threads: Int) throws {
        let p = try tinyParameters()
        let training = GPTModel(parameters: p, threads: threads, gemm: gemm)
        let inference = GPTModel(parameters: p, threads: threads, gemm: gemm)
        let a = try training.forward(try tinyBatch(), logSoftmaxRows: true)
        let b = try inference.forward(try tinyBatch(), logSoftmaxRows: true, keepActivations: false)
        #expect(a.logProbs == b.logProbs)
        #expect(a.logSoftmax == b.logSoftmax)
        // One block of activations instead of `layers`, and no backward scratch.
        #expect(inference.workspaceFloats * 3 < training.workspaceFloats * 2)
        // Nothing to back-propagate through.
        #expect(throws: ModelError.noForwardPass) {
            try inference.backward(dLogProbs: [Float](repeating: 1, count: b.logProbs.count))
        }
    }

    /// Scoring takes a shard's rows 32 at a time: its memory does not grow with the batch, and
    /// the numbers are those of one pass over every row (the training forward's) up to float32
    /// rounding. Not bit for bit: a library may round a row differently by where it falls in a
    /// product's row blocks (oneDNN's and OpenBLAS's AVX2 kernels do, on an AMD EPYC Zen 3), and
    /// the pieces are smaller products. The same call is bit-identical every time.
    @Test(arguments: GemmBackend.available, [1, 2])
    func scoringABigBatchInPiecesEqualsOnePass(gemm: GemmBackend, threads: Int) throws {
        let p = try tinyParameters()
        var random = SplitMix64(seed: 21)
        let sequences = (0..<300).map { r in
            (0..<(3 + r % 6)).map { _ in Int32(random.next() % UInt64(p.config.vocab)) }
        }
        let batch = try TokenBatch(sequences: sequences)
        let training = GPTModel(parameters: p, threads: threads, gemm: gemm)
        let scoring = GPTModel(parameters: p, threads: threads, gemm: gemm)
        let a = try training.forward(batch, logSoftmaxRows: true)
        let b = try scoring.forward(batch, logSoftmaxRows: true, keepActivations: false)
        func close(_ x: [Float], _ y: [Float]) -> Bool {
            x.count == y.count && zip(x, y).allSatisfy { abs($0 - $1) <= 1e-5 * max(1, abs($0)) }
        }
        #expect(close(a.logProbs, b.logProbs))
        #expect(close(a.logSoftmax ?? [], b.logSoftmax ?? [1]))
        #expect(a.mask == b.mask)
        let again = try scoring.forward(batch, logSoftmaxRows: true, keepActivations: false)
        #expect(again.logProbs == b.logProbs && again.logSoftmax == b.logSoftmax)
        let small = GPTModel(parameters: p, threads: threads, gemm: gemm)
        let first = try TokenBatch(sequences: Array(sequences.prefix(32 * threads)))
        _ = try small.forward(first, keepActivations: false)
        #expect(scoring.workspaceFloats == small.workspaceFloats, "as for 32 rows per shard")
        // A model that only scores holds no gradients.
        #expect(scoring.gradients.isEmpty)
    }

    /// A training forward keeps, per position and block, the block's input and attention residual
    /// with their LayerNorm statistics, q|k|v, the attention probabilities and output: nothing else.
    /// The LayerNorm outputs, the MLP's hidden layer, Φ of it, the GELU output and the embeddings
    /// live in shared buffers, which `backward` refills block by block (the gradients are checked
    /// against finite differences, and for bit-identity, elsewhere).
    @Test(arguments: [false, true])
    func trainingKeepsOnlyWhatItCannotRecompute(defaultShape: Bool) throws {
        // The tiny test model, and the default run's (d_model 64, 4 layers, 4 heads, vocab 32;
        // 11-token rows, as its additions are).
        let config = defaultShape ? GPTConfig(vocab: 32, context: 64, dModel: 64, layers: 4, heads: 4) : tiny
        let p = defaultShape ? try GPTParameters(config: config, seed: 1) : try tinyParameters()
        let batch =
            defaultShape
            ? try TokenBatch(tokens: [Int32](repeating: 3, count: 16 * 11), batch: 16, length: 11)
            : try tinyBatch()
        let model = GPTModel(parameters: p, threads: 1)
        _ = try model.forward(batch)
        let (c, v, h, steps) = (config.dModel, config.vocab, config.heads, batch.length - 1)
        let n = batch.batch * steps
        // Every block but the first keeps its input (the first one's is in the GELU buffer).
        let blocks = config.layers * (6 * c * n + 4 * n + batch.batch * h * steps * steps) - c * n
        // LayerNorm output; fch, then dL/dlogits and dL/d(LayerNorm output); GELU output, then
        // dL/dqkv and the first block's input.
        let shared = c * n + max(4 * c * n, v * n + c * n) + max(4 * c * n, 3 * c * n + c * n)
        let head = c * n + 2 * n + v * n  // final residual, ln_f statistics, log-probs
        let backward = c * n + steps * steps  // dL/d(residual), dL/dP
        let padding = 15 * (8 * config.layers + 10)  // each buffer starts 64-byte aligned
        let expected = blocks + shared + head + backward
        #expect(model.workspaceFloats >= expected)
        #expect(model.workspaceFloats <= expected + padding)
        if defaultShape {
            // One more saved row of d_model per position and block (Φ(fch) was 4, fch 4, the ln_f
            // output 1 in all, the backward scratch 6) would not fit.
            #expect(padding < config.layers * c * n)
            // 2 387 floats (9.3 KiB) per training position, from 4 914 before the recomputation
            // (14·d_model + 4 + heads·steps per block, and 17·d_model + 2 + 2·vocab outside them).
            #expect(model.workspaceFloats / n <= 2_390)
        }
        // The backward pass recomputes into the shared buffers only: a second one after it (as the
        // staleness tracker runs, one per KL form) gives the same gradients, bit for bit, as a
        // model that runs one.
        let seed = (0..<batch.batch * steps).map { Float($0 % 7) - 3 }
        try model.backward(dLogProbs: seed)
        model.zeroGradients()
        try model.backward(dLogProbs: seed)
        let other = GPTModel(parameters: p, threads: 1)
        _ = try other.forward(batch)
        try other.backward(dLogProbs: seed)
        #expect(model.gradients == other.gradients)
    }

    /// A model sharing another's workspaces invalidates its forward pass; the other's backward then
    /// refuses until it runs forward again, and gives the same gradients as a model of its own.
    @Test(arguments: [1, 2])
    func sharedWorkspacesNeverMixForwardPasses(threads: Int) throws {
        let p = try tinyParameters()
        let other = try tinyParameters(seed: 11)
        let owner = GPTModel(parameters: p, threads: threads)
        let scratch = try GPTModel(sharingWorkspacesOf: owner, parameters: other)
        let alone = GPTModel(parameters: p, threads: threads)
        let out = try owner.forward(try tinyBatch())
        let seed = (0..<out.logProbs.count).map { Float($0 % 5) - 2 }
        _ = try scratch.forward(try tinyBatch(), logSoftmaxRows: true)
        #expect(throws: ModelError.noForwardPass) { try owner.backward(dLogProbs: seed) }
        #expect(owner.workspaceFloats == scratch.workspaceFloats)
        _ = try owner.forward(try tinyBatch())
        try owner.backward(dLogProbs: seed)
        _ = try alone.forward(try tinyBatch())
        try alone.backward(dLogProbs: seed)
        #expect(owner.gradients == alone.gradients)
        #expect(throws: ModelError.self) {
            try GPTModel(sharingWorkspacesOf: owner, parameters: try GPTParameters(config: .small, seed: 1))
        }
    }

    /// The sampler's KV cache holds the longest prompt plus the new tokens, not the whole context.
    @Test func kvCacheSizedByTheSequencesSampled() throws {
        let config = GPTConfig(vocab: 7, context: 32, dModel: 8, layers: 2, heads: 2)
        let p = try GPTParameters(config: config, seed: 3)
        let sampler = GPTSampler(config: config, threads: 2)
        let options = SamplingOptions(maxNewTokens: 4)
        let batch = try sampler.sample(
            parameters: p, prompts: [[1, 2, 3], [4, 5, 6, 1, 2]], options: options, seeds: [1, 2])
        #expect(sampler.cachedPositions == 5 + 4)
        #expect(batch.lengths == [4, 4])
        // Appending needs the whole context again.
        try sampler.reset(batch: 2)
        #expect(sampler.cachedPositions == config.context)
        // Sampling the same shapes again after a shorter run gives the same tokens.
        let again = try GPTSampler(config: config, threads: 2).sample(
            parameters: p, prompts: [[1, 2, 3], [4, 5, 6, 1, 2]], options: options, seeds: [1, 2])
        #expect(
            try sampler.sample(
                parameters: p, prompts: [[1, 2, 3], [4, 5, 6, 1, 2]], options: options, seeds: [1, 2])
                == again)
        #expect(again == batch)
    }
}
