import Distributed
import Foundation
import Rein
import ReinActors
import ReinModel
import ReinRuntime
import Testing

/// A worker that holds a real assignment and its token cannot steer the run with made-up contents:
/// the learner audits every delivered batch against the task (``BatchAudit``) before it is taken.
@Suite("Forged batch contents at the learner")
struct ForgedContentsTests {
    @Test(.timeLimit(.minutes(2)))
    func aBatchWithAForgedRewardIsRefusedCountedAndTheHonestOneTrains() async throws {
        let (config, reference, _) = try tinyRun(steps: 1, maxStaleness: 0)
        let system = ReinActorSystem(
            bus: InMemoryBus(), name: LearnerActor.name, settings: testSettings, logger: quiet)
        defer { Task { await system.shutdown() } }
        let learner = try LearnerActor.named(on: system, config: config, reference: reference, logger: quiet)
        let (forger, honest) = (NodeID(rawValue: 0xF0F), NodeID(rawValue: 0x0A0))
        let order = try await learner.requestWork(worker: forger, haveVersion: -1, inline: true)
        #expect(order.status == .sample)
        let weights = try #require(order.weights)
        let parameters = try GPTParameters(config: reference.config, values: weights.values)
        let batch = try WeightRetentionTests.sample(order, config: config, parameters: parameters)
        var forged = batch
        for i in forged.rollouts.indices { forged.rollouts[i].reward = 1 }
        #expect(forged != batch, "the fixture must actually change a reward")

        await #expect(throws: (any Error).self) {
            try await learner.deliver(
                worker: forger, index: order.index, attempt: order.attempt, token: order.token,
                incarnation: order.incarnation, batch: forged)
        }
        var ledger = try await learner.currentLedger()
        #expect(ledger.refused == [.forgedContents: batch.rollouts.count] && ledger.balances)
        #expect(try await learner.stepMetrics().isEmpty, "nothing forged is trained")
        // The forger's honest batch is refused too: it is benched for the rest of the run.
        await #expect(throws: (any Error).self) {
            try await learner.deliver(
                worker: forger, index: order.index, attempt: order.attempt, token: order.token,
                incarnation: order.incarnation, batch: batch)
        }
        ledger = try await learner.currentLedger()
        #expect(ledger.refused == [.forgedContents: 2 * batch.rollouts.count] && ledger.trained == 0)

        // Another worker samples the batch again and it trains.
        let again = try await learner.requestWork(worker: honest, haveVersion: 0, inline: true)
        try #require(
            again.status == .sample && again.index == order.index && again.attempt == order.attempt + 1)
        try await learner.deliver(
            worker: honest, index: again.index, attempt: again.attempt, token: again.token,
            incarnation: again.incarnation,
            batch: WeightRetentionTests.sample(again, config: config, parameters: parameters))
        try await learner.whenLocal { try await $0.waitUntilFinished() }
        ledger = try await learner.currentLedger()
        #expect(ledger.trained == batch.rollouts.count && ledger.lost == batch.rollouts.count)
        #expect(ledger.balances && ledger.inFlight == 0 && ledger.leasesExpired == 0)
    }

    /// A worker that forges with its token, keeps what else it holds until its lease expires and
    /// then behaves honestly used to stall the run for a lease every cycle. Now everything it holds
    /// goes out again at once and it gets no more work: with a lease far longer than the test may run, an
    /// honest worker gets both batches on its next requests and the run ends without one lease
    /// expiring.
    @Test(.timeLimit(.minutes(2)))
    func aForgingWorkerDoesNotStallTrainingForALease() async throws {
        let (config, reference, _) = try tinyRun(steps: 3, maxStaleness: 1)
        let system = ReinActorSystem(
            bus: InMemoryBus(), name: LearnerActor.name, settings: testSettings, logger: quiet)
        defer { Task { await system.shutdown() } }
        let learner = try LearnerActor.named(
            on: system, config: config, reference: reference,
            lease: .init(floor: .seconds(3600), cap: .seconds(3600)), logger: quiet)
        let (forger, honest) = (NodeID(rawValue: 0xF0F), NodeID(rawValue: 0x0A0))
        let parameters = reference
        func sample(_ order: WorkOrder) throws -> RolloutBatch {
            try WeightRetentionTests.sample(order, config: config, parameters: parameters)
        }

        // The forger holds batches 0 and 1 (max_staleness 1) and forges batch 1.
        let held = [
            try await learner.requestWork(worker: forger, haveVersion: 0, inline: false),
            try await learner.requestWork(worker: forger, haveVersion: 0, inline: false),
        ]
        #expect(held.map(\.status) == [.sample, .sample] && held.map(\.index) == [0, 1])
        var forged = try sample(held[1])
        forged.rollouts[0].prompt[0] += 1
        await #expect(throws: RuntimeError.self) {
            try await learner.deliver(
                worker: forger, index: held[1].index, attempt: held[1].attempt, token: held[1].token,
                incarnation: held[1].incarnation, batch: forged)
        }
        // Both are given up at once: counted lost now, not after a lease.
        let size = config.train.promptsPerStep * config.train.groupSize
        var ledger = try await learner.currentLedger()
        #expect(ledger.lost == 2 * size && ledger.inFlight == 0 && ledger.leasesExpired == 0)
        #expect(ledger.refused == [.forgedContents: size] && ledger.balances)
        // It asks for work again, as if honest: refused with a clear error, every time.
        for _ in 0..<2 {
            await #expect(throws: RuntimeError.self) {
                _ = try await learner.requestWork(worker: forger, haveVersion: 0, inline: false)
            }
        }
        // Its honest batch 0 is refused too (and counted).
        let late = try sample(held[0])
        await #expect(throws: RuntimeError.self) {
            try await learner.deliver(
                worker: forger, index: held[0].index, attempt: held[0].attempt, token: held[0].token,
                incarnation: held[0].incarnation, batch: late)
        }
        #expect(try await learner.currentLedger().refused == [.forgedContents: 2 * size])

        // The honest worker gets batches 0 and 1 again on its first two requests (no lease to wait
        // out), then the rest of the run.
        func deliver(_ order: WorkOrder) async throws {
            let weights = try await learner.fetchWeights(version: order.version)
            try await learner.deliver(
                worker: honest, index: order.index, attempt: order.attempt, token: order.token,
                incarnation: order.incarnation,
                batch: WeightRetentionTests.sample(
                    order, config: config,
                    parameters: try GPTParameters(config: reference.config, values: weights.values)))
        }
        var trained = 0
        for index in 0..<2 {
            let order = try await learner.requestWork(worker: honest, haveVersion: 0, inline: false)
            try #require(order.status == .sample && order.index == index && order.attempt == 1)
            try await deliver(order)
            trained += 1
        }
        while true {
            try Task.checkCancellation()  // a cancelled long poll answers `wait` at once
            let order = try await learner.requestWork(worker: honest, haveVersion: 0, inline: false)
            if order.status == .finished { break }
            guard order.status == .sample else { continue }  // the learner is still training
            try await deliver(order)
            trained += 1
        }
        try await learner.whenLocal { try await $0.waitUntilFinished() }
        ledger = try await learner.currentLedger()
        #expect(trained == config.train.steps)
        #expect(ledger.trained == config.train.steps * size && ledger.leasesExpired == 0)
        #expect(ledger.lost == 2 * size && ledger.inFlight == 0 && ledger.balances)
    }
}
