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
        let worker = system.node
        let order = try await learner.requestWork(worker: worker, haveVersion: -1, inline: true)
        #expect(order.status == .sample)
        let weights = try #require(order.weights)
        let honest = try WeightRetentionTests.sample(
            order, config: config,
            parameters: try GPTParameters(config: reference.config, values: weights.values))
        var forged = honest
        for i in forged.rollouts.indices { forged.rollouts[i].reward = 1 }
        #expect(forged != honest, "the fixture must actually change a reward")

        await #expect(throws: (any Error).self) {
            try await learner.deliver(
                worker: worker, index: order.index, attempt: order.attempt, token: order.token,
                incarnation: order.incarnation, batch: forged)
        }
        var ledger = try await learner.currentLedger()
        #expect(ledger.refused == [.forgedContents: honest.rollouts.count] && ledger.balances)
        #expect(try await learner.stepMetrics().isEmpty, "nothing forged is trained")

        try await learner.deliver(
            worker: worker, index: order.index, attempt: order.attempt, token: order.token,
            incarnation: order.incarnation, batch: honest)
        #expect(await eventually(within: .seconds(60)) { (try? await learner.isFinished()) == true })
        ledger = try await learner.currentLedger()
        #expect(ledger.trained == honest.rollouts.count && ledger.balances)
    }
}
