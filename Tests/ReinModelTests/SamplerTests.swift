import Foundation
import ReinModel
import Testing

@Suite struct SamplerTests {
    @Test(arguments: GemmBackend.available, [1, 2])
    func kvCacheLogitsEqualFullForward(gemm: GemmBackend, threads: Int) throws {
        let p = try tinyParameters()
        var rng = SplitMix64(seed: 5)
        let rows = 3
        let seqs = (0..<rows).map { _ in
            (0..<tiny.context).map { _ in Int32(rng.next() % UInt64(tiny.vocab)) }
        }
        // Full forward over `context` positions (a dummy target appended to every row).
        let full = try GPTModel(parameters: p, gemm: gemm).forward(
            try TokenBatch(sequences: seqs.map { $0 + [0] }), logSoftmaxRows: true)
        let sampler = GPTSampler(config: tiny, threads: threads, gemm: gemm)
        try sampler.reset(batch: rows)
        // Prefill 3 tokens at once, then one token per step.
        var t = 0
        for count in [3] + Array(repeating: 1, count: tiny.context - 3) {
            let block = seqs.flatMap { $0[t..<t + count] }
            let logits = try sampler.append(parameters: p, tokens: block, count: count)
            for b in 0..<rows {
                for i in 0..<count {
                    let row = logits[((b * count + i) * tiny.vocab)..<((b * count + i + 1) * tiny.vocab)]
                    let mx = row.max()!
                    let lse = mx + log(row.map { exp($0 - mx) }.reduce(0, +))
                    for j in 0..<tiny.vocab {
                        let expected = full.logSoftmax![((b * full.positions) + t + i) * tiny.vocab + j]
                        #expect(abs(row[row.startIndex + j] - lse - expected) < 2e-5, "row \(b) pos \(t + i)")
                    }
                }
            }
            t += count
        }
        #expect(sampler.position == tiny.context)
        #expect(throws: ModelError.self) { try sampler.append(parameters: p, tokens: [1, 1, 1], count: 1) }
    }

    /// A batch larger than `rowsPerPass` goes in passes (the last one smaller, here with fewer rows
    /// than threads): the same tokens as one pass, and caches sized for one pass.
    @Test(arguments: [1, 2])
    func aBatchSampledInPassesDrawsWhatOnePassDraws(threads: Int) throws {
        let p = try tinyParameters()
        var rng = SplitMix64(seed: 9)
        let rows = 7
        let prompts = (0..<rows).map { r in
            (0...(r % 3)).map { _ in Int32(rng.next() % UInt64(tiny.vocab)) }
        }
        let options = SamplingOptions(maxNewTokens: 4)
        let seeds = (0..<rows).map { UInt64(100 + $0) }
        let single = GPTSampler(config: tiny, threads: threads, rowsPerPass: rows)
        let whole = try single.sample(parameters: p, prompts: prompts, options: options, seeds: seeds)
        let inPasses = GPTSampler(config: tiny, threads: threads, rowsPerPass: 3)
        let parts = try inPasses.sample(parameters: p, prompts: prompts, options: options, seeds: seeds)
        #expect(parts.tokens == whole.tokens)
        #expect(parts.lengths == whole.lengths)
        #expect(zip(parts.logProbs, whole.logProbs).allSatisfy { abs($0 - $1) < 1e-5 })
        #expect(single.cachedRows >= rows)
        #expect(inPasses.cachedRows <= 3 + threads - 1)
    }

    /// Pearson chi-square of the first sampled token over 6000 rows (one seed each) against the model's
    /// softmax. The critical value is for p = 0.001 with (categories − 1) degrees of freedom; the seeds are
    /// fixed, so the test is deterministic.
    @Test(arguments: [(Float(1), nil as Int?), (0.7, 3)])
    func sampledFrequenciesMatchSoftmax(temperature: Float, topK: Int?) throws {
        let p = try tinyParameters(seed: 11, scale: 3)
        let v = tiny.vocab
        let prompt: [Int32] = [2, 5]
        let full = try GPTModel(parameters: p).forward(
            try TokenBatch(sequences: [prompt + [0]]), logSoftmaxRows: true)
        var z = (0..<v).map { Double(full.logSoftmax![v + $0]) / Double(temperature) }
        if let topK {
            let keep = Set((0..<v).sorted { z[$0] > z[$1] }.prefix(topK))
            for j in 0..<v where !keep.contains(j) { z[j] = -.infinity }
        }
        let mx = z.max()!
        let total = z.map { exp($0 - mx) }.reduce(0, +)
        let probs = z.map { exp($0 - mx) / total }

        let n = 6000
        let out = try GPTSampler(config: tiny, threads: 2).sample(
            parameters: p, prompts: Array(repeating: prompt, count: n),
            options: SamplingOptions(maxNewTokens: 1, temperature: temperature, topK: topK),
            seeds: (0..<n).map { UInt64($0) &* 7919 })
        var counts = [Int](repeating: 0, count: v)
        for b in 0..<n { counts[Int(out.generated(b).first!)] += 1 }
        // Categories expected fewer than 5 times are pooled into one bin.
        var chi2 = 0.0
        var bins = 0
        var (pooledCount, pooledExpected) = (0, 0.0)
        for j in 0..<v {
            let e = probs[j] * Double(n)
            if probs[j] == 0 {
                #expect(counts[j] == 0, "token \(j) is outside the top-k but was sampled")
            } else if e < 5 {
                pooledCount += counts[j]
                pooledExpected += e
            } else {
                bins += 1
                chi2 += (Double(counts[j]) - e) * (Double(counts[j]) - e) / e
            }
        }
        if pooledExpected > 0 {
            bins += 1
            chi2 +=
                (Double(pooledCount) - pooledExpected) * (Double(pooledCount) - pooledExpected)
                / pooledExpected
        }
        let critical = [0, 10.83, 13.82, 16.27, 18.47, 20.52, 22.46]  // p = 0.001, indexed by df
        #expect(bins >= 3)
        #expect(chi2 < critical[bins - 1], "chi-square \(chi2) over \(bins) bins: \(counts) vs \(probs)")
    }

    @Test(arguments: [(Float(1), nil as Int?), (0.8, 4)])
    func behaviourLogProbsEqualFreshForward(temperature: Float, topK: Int?) throws {
        let p = try tinyParameters(seed: 3)
        let (v, promptLength) = (tiny.vocab, 2)
        let prompts: [[Int32]] = (0..<6).map { [Int32($0 % v), Int32(($0 * 3) % v)] }
        let options = SamplingOptions(maxNewTokens: 6, temperature: temperature, topK: topK, stopToken: 0)
        let s = try GPTSampler(config: tiny, threads: 2).sample(
            parameters: p, prompts: prompts, options: options, seeds: Array(100..<106))
        // Some rows stop early, so finished rows leave the batch while the rest continue.
        #expect(s.lengths.contains { $0 < options.maxNewTokens } && s.lengths.contains(options.maxNewTokens))
        let seqs = (0..<s.batch).map { prompts[$0] + Array(s.generated($0)) }
        let full = try GPTModel(parameters: p).forward(try TokenBatch(sequences: seqs), logSoftmaxRows: true)
        for b in 0..<s.batch {
            for i in 0..<s.lengths[b] {
                let t = promptLength - 1 + i
                var z = (0..<v).map {
                    Double(full.logSoftmax![(b * full.positions + t) * v + $0]) / Double(temperature)
                }
                if let topK {
                    let keep = Set(
                        (0..<v).sorted { z[$0] > z[$1] || (z[$0] == z[$1] && $0 < $1) }.prefix(topK))
                    for j in 0..<v where !keep.contains(j) { z[j] = -.infinity }
                }
                let mx = z.max()!
                let lse = mx + log(z.map { exp($0 - mx) }.reduce(0, +))
                let y = Int(seqs[b][t + 1])
                #expect(abs(Double(s.logProbs[b * s.maxNewTokens + i]) - (z[y] - lse)) < 1e-4)
                // The public transform gives the same behaviour row from the same log-softmax input.
                let row = (0..<v).map { full.logSoftmax![(b * full.positions + t) * v + $0] }
                let mu = options.behaviourLogProbs(logits: row, vocab: v)
                #expect(abs(mu[y] - s.logProbs[b * s.maxNewTokens + i]) < 2e-5)
                if temperature == 1 && topK == nil {
                    #expect(
                        abs(s.logProbs[b * s.maxNewTokens + i] - full.logProbs[b * full.positions + t]) < 2e-5
                    )
                }
            }
        }
    }

    /// Prompts of different lengths: rows are aligned by position, shorter prompts start sampling
    /// while longer ones are still fed, and every behaviour log-prob matches a fresh forward.
    @Test(arguments: GemmBackend.available, [1, 2])
    func raggedPromptsMatchFreshForward(gemm: GemmBackend, threads: Int) throws {
        let p = try tinyParameters(seed: 6, scale: 3)
        let v = tiny.vocab
        let prompts: [[Int32]] = [[1], [2, 3, 4, 5], [6, 0], [3, 3, 3], [5], [4, 1, 2, 0, 6]]
        let options = SamplingOptions(maxNewTokens: 3, temperature: 0.9, topK: 5, stopToken: 2)
        let s = try GPTSampler(config: tiny, threads: threads, gemm: gemm).sample(
            parameters: p, prompts: prompts, options: options, seeds: Array(40..<46))
        #expect(s.promptLengths == prompts.map(\.count) && s.width == 5 + 3)
        let full = try GPTModel(parameters: p, gemm: gemm).forward(
            try TokenBatch(sequences: (0..<s.batch).map { Array(s.sequence($0)) }), logSoftmaxRows: true)
        for b in 0..<s.batch {
            #expect(Array(s.sequence(b).prefix(prompts[b].count)) == prompts[b])
            #expect((1...3).contains(s.lengths[b]))
            for i in 0..<s.lengths[b] {
                let t = prompts[b].count - 1 + i
                let row = (0..<v).map { full.logSoftmax![(b * full.positions + t) * v + $0] }
                let mu = options.behaviourLogProbs(logits: row, vocab: v)
                let y = Int(s.sequence(b)[s.sequence(b).startIndex + t + 1])
                #expect(abs(mu[y] - s.logProbs[b * s.maxNewTokens + i]) < 2e-5)
            }
        }
        let again = try GPTSampler(config: tiny, threads: threads, gemm: gemm).sample(
            parameters: p, prompts: prompts, options: options, seeds: Array(40..<46))
        #expect(again == s)
    }

    @Test func stopTokenEndsRowsAndPads() throws {
        let p = try tinyParameters(seed: 4, scale: 2)
        let options = SamplingOptions(maxNewTokens: 6, stopToken: 1)
        let s = try GPTSampler(config: tiny).sample(
            parameters: p, prompts: Array(repeating: [3], count: 40), options: options, seeds: Array(0..<40))
        var stopped = 0
        for b in 0..<s.batch {
            let gen = Array(s.generated(b))
            #expect(gen.count == s.lengths[b] && (1...6).contains(gen.count))
            #expect(!gen.dropLast().contains(1))
            if gen.last == 1 { stopped += 1 } else { #expect(gen.count == 6) }
            for i in s.lengths[b]..<6 {
                #expect(s.tokens[b * 7 + 1 + i] == 0 && s.logProbs[b * 6 + i] == 0)
            }
        }
        #expect(stopped > 0)
    }

    @Test func greedyIsArgmaxAndSeedsAreReproducible() throws {
        let p = try tinyParameters(seed: 8)
        let prompts: [[Int32]] = (0..<5).map { [Int32($0), 1] }
        let seeds: [UInt64] = [9, 8, 7, 6, 5]
        let options = SamplingOptions(maxNewTokens: 5, temperature: 0.9, topK: 5)
        for threads in [1, 2] {
            let a = try GPTSampler(config: tiny, threads: threads).sample(
                parameters: p, prompts: prompts, options: options, seeds: seeds)
            let b = try GPTSampler(config: tiny, threads: threads).sample(
                parameters: p, prompts: prompts, options: options, seeds: seeds)
            #expect(a == b)
        }
        let g = try GPTSampler(config: tiny).sample(
            parameters: p, prompts: prompts, options: SamplingOptions(maxNewTokens: 3, temperature: 0),
            seeds: seeds)
        let full = try GPTModel(parameters: p).forward(
            try TokenBatch(sequences: (0..<5).map { prompts[$0] + Array(g.generated($0)) }),
            logSoftmaxRows: true)
        for b in 0..<5 {
            for i in 0..<3 {
                let row = (0..<tiny.vocab).map {
                    full.logSoftmax![(b * full.positions + 1 + i) * tiny.vocab + $0]
                }
                #expect(Int(g.generated(b)[g.generated(b).startIndex + i]) == row.firstIndex(of: row.max()!)!)
            }
        }
        #expect(g.logProbs.allSatisfy { $0 == 0 })
    }

    @Test func rejectsBadArguments() throws {
        let p = try tinyParameters()
        let s = GPTSampler(config: tiny)
        #expect(throws: ModelError.self) {
            try s.sample(
                parameters: p, prompts: [[1], []], options: .init(maxNewTokens: 1), seeds: [1, 2])
        }
        #expect(throws: ModelError.self) {
            try s.sample(
                parameters: p, prompts: [[1]], options: .init(maxNewTokens: tiny.context), seeds: [1])
        }
        #expect(throws: ModelError.self) {
            try s.sample(parameters: p, prompts: [[99]], options: .init(maxNewTokens: 1), seeds: [1])
        }
        #expect(throws: ModelError.self) {
            try s.sample(parameters: p, prompts: [[1]], options: .init(maxNewTokens: 1), seeds: [])
        }
    }
}
