import Distributed
import Foundation
import Rein
import ReinActors
import ReinModel
import ReinRuntime
import ReinTasks
import Testing

@Suite("Learner: weights kept for batches still out")
struct WeightRetentionTests {
    /// Samples `order` as a worker would (the same prompts and seed for the index).
    static func sample(_ order: WorkOrder, config: RunConfig, parameters: GPTParameters) throws
        -> RolloutBatch
    {
        let task = try ArithmeticTask(config: config.task)
        let sampler = RolloutSampler(
            task: task, config: parameters.config, temperature: config.train.temperature,
            topK: config.train.topK,
            threads: 1)
        return try sampler.sample(
            Trainer.problems(forStep: order.index, config: config, dataset: ArithmeticDataset(task: task)),
            groupSize: config.train.groupSize, parameters: parameters, version: order.version,
            seed: Trainer.samplingSeed(forStep: order.index, seed: config.seed),
            firstID: WorkOrder.firstID(index: order.index, attempt: order.attempt))
    }

    /// A worker that missed the broadcast of its order's version must still be able to fetch it
    /// after the learner moved on (it used to fail "no longer kept" and the worker died).
    @Test func theVersionOfABatchStillOutCanBeFetchedAfterTheLearnerMovesOn() async throws {
        let (config, reference, _) = try tinyRun(steps: 6, maxStaleness: 4)
        let system = ReinActorSystem(
            bus: InMemoryBus(), name: LearnerActor.name, settings: testSettings, logger: quiet)
        defer { Task { await system.shutdown() } }
        let learner = try LearnerActor.named(on: system, config: config, reference: reference, logger: quiet)
        let worker = system.node

        func deliver(_ order: WorkOrder, with parameters: GPTParameters, reaching version: Int) async throws {
            let batch = try Self.sample(order, config: config, parameters: parameters)
            try await learner.deliver(
                worker: worker, index: order.index, attempt: order.attempt, incarnation: order.incarnation,
                batch: batch)
            #expect(await eventually { (try? await learner.currentVersion()) == version })
        }

        let first = try await learner.requestWork(worker: worker, haveVersion: 0, inline: false)
        #expect(first.index == 0 && first.version == 0)
        try await deliver(first, with: reference, reaching: 1)
        let v1 = try GPTParameters(
            config: reference.config, values: try await learner.fetchWeights(version: 1).values)
        let second = try await learner.requestWork(worker: worker, haveVersion: 1, inline: false)
        let third = try await learner.requestWork(worker: worker, haveVersion: 1, inline: false)
        #expect(second.version == 1 && third.version == 1 && third.index == 2)
        try await deliver(second, with: v1, reaching: 2)

        // The learner is at version 2; batch 2 is still out at version 1.
        let fetched = try await learner.fetchWeights(version: 1)
        #expect(fetched.version == 1 && fetched.values == v1.values)
        try await deliver(third, with: v1, reaching: 3)
        // Nothing is out at version 1 any more: it is not kept.
        await #expect(throws: (any Error).self) { try await learner.fetchWeights(version: 1) }
        #expect(try await learner.currentLedger().trained == 3 * 16)
    }
}
