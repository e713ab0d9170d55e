import Foundation
import Logging
import Rein
import ReinKL
import ReinModel
import ReinTasks
import ReinTestKit
import Testing

@testable import ReinTracker

@Suite("Staleness tracker on the trainer")
struct TrainerIntegrationTests {
    /// A batch that carries π_ref's rows (scored by the sampler) gives the same record as one the
    /// tracker scores itself: the tracker reuses them instead of running π_ref.
    @Test func referenceRowsFromTheSamplerGiveTheSameRecord() throws {
        let task = try ArithmeticTask(config: .default)
        let gpt = GPTConfig(vocab: task.tokenizer.vocabSize, context: 16, dModel: 16, layers: 1, heads: 2)
        let reference = try GPTParameters(config: gpt, seed: 5)
        let policy = try GPTParameters(config: gpt, seed: 6)
        let behaviour = try GPTParameters(config: gpt, seed: 7)
        let sampler = RolloutSampler(
            task: task, config: gpt, temperature: 1, topK: 0, threads: 1, reference: reference)
        var random = TaskRandom(seed: 4, stream: 1)
        let problems = (0..<4).map { _ in task.randomProblem(using: &random) }
        let scored = try sampler.sample(
            problems, groupSize: 4, parameters: behaviour, version: 0, seed: 2, firstID: 0)
        #expect(scored.rollouts.allSatisfy { $0.referenceRows != nil })
        var plain = scored
        for i in plain.rollouts.indices { plain.rollouts[i].referenceRows = nil }
        let tracker = try StalenessTracker(logger: logger)
        func record(_ batch: RolloutBatch) throws -> TrackerRecord {
            try tracker.observe(
                step: 1, batch: batch, version: 3, policy: policy, reference: reference,
                behaviour: { _ in behaviour })
        }
        let a = try record(scored)
        let b = try record(plain)
        #expect(a.buckets.count == 1 && b.buckets.count == 1)
        let (x, y) = (a.buckets[0], b.buckets[0])
        #expect(abs(x.reverseKL - y.reverseKL) <= 1e-9 * max(1, y.reverseKL) && y.reverseKL > 0)
        for (p, q) in zip(x.implementations, y.implementations) {
            #expect(abs(p.relativeError - q.relativeError) <= 1e-9 * max(1, q.relativeError), "\(p.id)")
        }
    }

    @Test func writesOneRecordPerObservedStepWithTheInjectedLag() throws {
        let config = try TestKit.tinyConfig(
            steps: RunConfig().train.steps, maxStaleness: 16, injectLag: 2, promptsPerStep: 2, evalSize: 10)
        let reference = try TestKit.tinyReference(for: config)
        let folder = try TestKit.temporaryRunFolder(prefix: "rein-tracker")
        defer { try? FileManager.default.removeItem(atPath: folder.path) }
        let trainer = try Trainer(config: config, reference: reference, folder: folder, logger: logger)
        // Start θ away from π_ref so the KL term moves it (a random tiny model earns no reward).
        trainer.learner.model.parameters = try GPTParameters(config: reference.config, seed: 3)
        try StalenessTracker(every: 2, parameterEvery: 2, logger: logger).attach(to: trainer)
        var lags: [Int] = []
        for _ in 0..<5 { lags.append(try trainer.runStep().lagMax) }
        let records = try StalenessTracker.readRecords(in: folder)
        #expect(records.map(\.step) == [1, 3, 5])
        #expect(records.map { $0.parameterBias != nil } == [true, false, true])
        // Selection: everything trained so far (max_staleness 16), counted cumulatively.
        #expect(records.map { $0.selection?.trained.count } == [8, 24, 40])
        #expect(records.last?.selection?.dropped.count == 0)
        // Parameter space (Float backward): corrected forms match the back-propagated target.
        let parameter = try #require(records.last?.parameterBias)
        for bias in parameter where correctedIDs.contains(bias.id) {
            #expect(bias.relativeError < 1e-4 && bias.cosine > 0.9999, "\(bias.id)")
        }
        let naiveParameter = try #require(parameter.first { $0.id == "k2_loss" })
        #expect(naiveParameter.relativeError > 1e-6 && naiveParameter.targetNorm > 0)
        #expect(records.map { $0.lagHistogram.map(\.lag) } == [[lags[0]], [lags[2]], [lags[4]]])
        for record in records {
            #expect(record.maxBehaviourLogProbError < 1e-4)
            #expect(record.positions == record.lagHistogram.reduce(0) { $0 + $1.tokens })
            for bias in record.buckets[0].implementations where correctedIDs.contains(bias.id) {
                #expect(bias.relativeError < 1e-6, "\(bias.id) at step \(record.step)")
            }
        }
        let last = try #require(records.last?.buckets.first)
        #expect(last.lag == 2 && last.behaviourKL > 0 && last.reverseKL > 0)
        let naive = try #require(last.implementations.first { $0.id == "k2_loss" })
        #expect(naive.relativeError > 1e-6)
    }
}
