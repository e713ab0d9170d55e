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
                worker: worker, index: order.index, attempt: order.attempt, token: order.token,
                incarnation: order.incarnation,
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

    /// A peer that asks for work under a made-up worker id and never delivers (it never joined,
    /// so it is never declared lost) stalls the run only until its lease expires: the batch counts
    /// lost and goes out again, and the late delivery under the old lease is refused.
    @Test func anAssignmentNobodyDeliversExpiresAndIsHandedOutAgain() async throws {
        let (config, reference, _) = try tinyRun(steps: 1, maxStaleness: 0)
        let system = ReinActorSystem(
            bus: InMemoryBus(), name: LearnerActor.name, settings: testSettings, logger: quiet)
        defer { Task { await system.shutdown() } }
        let learner = try LearnerActor.named(
            on: system, config: config, reference: reference,
            lease: .init(floor: .milliseconds(50), cap: .milliseconds(200)), logger: quiet)
        let ghost = NodeID(rawValue: 0xDEAD)
        let stolen = try await learner.requestWork(worker: ghost, haveVersion: 0, inline: false)
        #expect(stolen.status == .sample && stolen.index == 0 && stolen.attempt == 0)
        // No polling by the learner: a task sleeps until the lease's deadline.
        #expect(
            try await eventually(within: .seconds(60)) {
                try await learner.currentLedger().leasesExpired == 1
            })
        let ledger = try await learner.currentLedger()
        #expect(ledger.lost == 16 && ledger.inFlight == 0 && ledger.balances)

        // An honest worker finishes the run. Its first lease is the 50 ms floor (nothing measured
        // yet): on a slow machine it may miss it, then its late batch is refused but measured, and
        // the next lease fits.
        let worker = system.node
        var attempts: [Int] = []
        while !(try await learner.isFinished()) {
            let order = try await learner.requestWork(worker: worker, haveVersion: 0, inline: false)
            guard order.status == .sample else {
                try await Task.sleep(for: .milliseconds(10))  // training the delivered batch
                continue
            }
            #expect(order.index == 0)
            attempts.append(order.attempt)
            try await learner.deliver(
                worker: worker, index: order.index, attempt: order.attempt, token: order.token,
                incarnation: order.incarnation,
                batch: try Self.sample(order, config: config, parameters: reference))
            _ = await eventually(within: .seconds(60)) {
                (try? await learner.currentLedger()).map { $0.inFlight == 0 } ?? false
            }
        }
        #expect(attempts == Array(1...attempts.count), "handed out again after each expiry")
        try await learner.deliver(
            worker: ghost, index: stolen.index, attempt: stolen.attempt, token: stolen.token,
            incarnation: stolen.incarnation,
            batch: try Self.sample(stolen, config: config, parameters: reference))
        let final = try await learner.currentLedger()
        // Every expired lease's batch was lost, and its late delivery refused; one trained.
        #expect(final.trained == 16 && final.leasesExpired == attempts.count && final.balances)
        #expect(final.lost == 16 * final.leasesExpired)
        #expect(final.refused == [.leaseExpired: 16 * final.leasesExpired])
    }
}
