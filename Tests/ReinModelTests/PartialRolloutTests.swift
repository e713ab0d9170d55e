import Foundation
import ReinModel
import Testing

/// Partial rollouts in the sampler: the swap rule alone, and a batch that moves to newer weights
/// mid-sequence (deterministic offers, no actors).
@Suite struct PartialRolloutTests {
    @Test func theSwapRuleTakesOnlyNewerVersionsOnceEveryRowStarted() {
        #expect(WeightSwap.shouldSwap(holding: 3, offered: 4, everyRowStarted: true))
        #expect(WeightSwap.shouldSwap(holding: 3, offered: 9, everyRowStarted: true))
        #expect(!WeightSwap.shouldSwap(holding: 3, offered: 4, everyRowStarted: false))
        #expect(!WeightSwap.shouldSwap(holding: 3, offered: 3, everyRowStarted: true))
        #expect(!WeightSwap.shouldSwap(holding: 3, offered: 2, everyRowStarted: true))
        #expect(!WeightSwap.shouldSwap(holding: 3, offered: nil, everyRowStarted: true))
    }

    @Test func scheduledWeightsOfferTheNewestVersionFromItsPosition() throws {
        let (a, b) = (try tinyParameters(seed: 1), try tinyParameters(seed: 2))
        let offers = ScheduledWeights([
            (from: 5, weights: VersionedParameters(version: 7, parameters: b)),
            (from: 2, weights: VersionedParameters(version: 6, parameters: a)),
        ])
        #expect(offers.offer(position: 1) == nil)
        #expect(offers.offer(position: 2)?.version == 6)
        #expect(offers.offer(position: 4)?.version == 6)
        #expect(offers.offer(position: 5)?.version == 7)
    }

    /// Prompts of several lengths, so rows start drawing at different positions.
    let prompts: [[Int32]] = [[1], [2, 3, 4], [6, 0], [3, 3, 3], [5], [4, 1], [0, 2], [6]]
    let options = SamplingOptions(maxNewTokens: 4, temperature: 0.9)

    @Test(arguments: [1, 2])
    func withoutNewerWeightsTheBatchIsBitIdentical(threads: Int) throws {
        let p = try tinyParameters(seed: 6, scale: 3)
        let seeds = Array(UInt64(10)..<UInt64(10 + prompts.count))
        let plain = try GPTSampler(config: tiny, threads: threads).sample(
            parameters: p, prompts: prompts, options: options, seeds: seeds, version: 4)
        // Offers of the same or an older version are never taken.
        let stale = ScheduledWeights([
            (from: 0, weights: VersionedParameters(version: 4, parameters: try tinyParameters(seed: 9))),
            (from: 0, weights: VersionedParameters(version: 2, parameters: try tinyParameters(seed: 8))),
        ])
        let offered = try GPTSampler(config: tiny, threads: threads).sample(
            parameters: p, prompts: prompts, options: options, seeds: seeds, version: 4, weights: stale)
        #expect(offered == plain)
        for b in 0..<plain.batch {
            #expect(plain.versions[(b * 4)..<(b * 4 + plain.lengths[b])].allSatisfy { $0 == 4 })
        }
    }

    @Test(arguments: [1, 2])
    func aSwapContinuesEverySequenceWithExactlyTheNewWeights(threads: Int) throws {
        let old = try tinyParameters(seed: 6, scale: 3)
        let new = try tinyParameters(seed: 11, scale: 3)
        let v = tiny.vocab
        let seeds = Array(UInt64(10)..<UInt64(10 + prompts.count))
        let offers = ScheduledWeights([(from: 0, weights: VersionedParameters(version: 5, parameters: new))])
        let s = try GPTSampler(config: tiny, threads: threads).sample(
            parameters: old, prompts: prompts, options: options, seeds: seeds, version: 4, weights: offers)
        let plain = try GPTSampler(config: tiny, threads: threads).sample(
            parameters: old, prompts: prompts, options: options, seeds: seeds, version: 4)
        // Fresh full forwards of each version over the sampled sequences: log μ of every token
        // must be that of the version it is tagged with (the cache was re-prefilled at the swap).
        let sequences = (0..<s.batch).map { Array(s.sequence($0)) }
        var rows: [Int: [Float]] = [:]
        var positions = 0
        for (version, parameters) in [(4, old), (5, new)] {
            let full = try GPTModel(parameters: parameters).forward(
                try TokenBatch(sequences: sequences), logSoftmaxRows: true)
            rows[version] = full.logSoftmax!
            positions = full.positions
        }
        var spanning = 0
        for b in 0..<s.batch {
            let versions = Array(s.versions[(b * 4)..<(b * 4 + s.lengths[b])])
            #expect(versions.first == 4, "row \(b) starts with the assigned version")
            #expect(zip(versions, versions.dropFirst()).allSatisfy { $0 <= $1 })
            if versions.last == 5 { spanning += 1 }
            for i in 0..<s.lengths[b] {
                let t = prompts[b].count - 1 + i
                let logits = (0..<v).map { rows[versions[i]]![(b * positions + t) * v + $0] }
                let mu = options.behaviourLogProbs(logits: logits, vocab: v)
                let y = Int(sequences[b][t + 1])
                #expect(abs(mu[y] - s.logProbs[b * 4 + i]) < 2e-5, "row \(b) token \(i)")
            }
            // Up to the swap the batch is the one sampled without it (same RNG streams).
            let kept = versions.firstIndex(of: 5) ?? versions.count
            #expect(Array(s.generated(b).prefix(kept)) == Array(plain.generated(b).prefix(kept)))
        }
        #expect(spanning > 0)
        // The swap waits until every row of the shard has drawn its first token: with one shard
        // the longest prompt (3) draws at position 3, so no token before position 4 is new.
        for b in 0..<s.batch where threads == 1 {
            for i in 0..<s.lengths[b] where prompts[b].count + i < 4 { #expect(s.versions[b * 4 + i] == 4) }
        }
        let again = try GPTSampler(config: tiny, threads: threads).sample(
            parameters: old, prompts: prompts, options: options, seeds: seeds, version: 4, weights: offers)
        #expect(again == s)
    }
}
