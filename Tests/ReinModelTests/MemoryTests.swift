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

    /// Scoring takes a shard's rows 64 at a time: its memory does not grow with the batch, and
    /// the numbers are those of one pass over every row (the training forward's).
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
        #expect(a.logProbs == b.logProbs)
        #expect(a.logSoftmax == b.logSoftmax)
        #expect(a.mask == b.mask)
        let small = GPTModel(parameters: p, threads: threads, gemm: gemm)
        let first = try TokenBatch(sequences: Array(sequences.prefix(64 * threads)))
        _ = try small.forward(first, keepActivations: false)
        #expect(scoring.workspaceFloats == small.workspaceFloats, "as for 64 rows per shard")
    }

    /// A training forward keeps, per position and block, the residuals, q|k|v, the attention
    /// probabilities and output, the MLP's hidden layer and Φ of it, and the LayerNorm statistics;
    /// the LayerNorm and GELU outputs live in one buffer each, which `backward` refills (the
    /// gradients of these models are checked against finite differences elsewhere).
    @Test func trainingKeepsNoLayerNormOrGeluOutputsPerBlock() throws {
        let p = try tinyParameters()
        let config = p.config
        let model = GPTModel(parameters: p, threads: 1)
        let batch = try tinyBatch()
        _ = try model.forward(batch)
        let (c, v, steps) = (config.dModel, config.vocab, batch.length - 1)
        let n = batch.batch * steps
        let block = 14 * c * n + 4 * n + batch.batch * config.heads * steps * steps
        let shared = 5 * c * n  // LayerNorm and GELU outputs
        let head = 2 * c * n + 2 * n + v * n  // final residual, ln_f and its statistics, log-probs
        let backward = 10 * c * n + v * n + steps * steps
        let padding = 15 * (11 * config.layers + 14)  // each buffer starts 64-byte aligned
        #expect(model.workspaceFloats <= config.layers * block + shared + head + backward + padding)
        // Every block's LayerNorm and GELU outputs (6 rows of d_model per position) would not fit.
        #expect(model.workspaceFloats < config.layers * (block + 6 * c * n) + head + backward)
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
