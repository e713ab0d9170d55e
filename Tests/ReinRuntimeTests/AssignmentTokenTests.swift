import Distributed
import Foundation
import Rein
import ReinActors
import ReinModel
import Testing
import ZeroMQ

@testable import ReinRuntime

/// The sample stream trusts nothing in a batch but its assignment token: a peer that can reach
/// the learner's sample PULL socket and knows a real assignment's worker, index, attempt and
/// incarnation still cannot have its batch trained.
@Suite("Assignment tokens on the sample stream")
struct AssignmentTokenTests {
    @Test(.timeLimit(.minutes(2)))
    func aBatchWithTheRightAssignmentButNoTokenIsRefusedCountedAndTrainingGoesOn() async throws {
        let (config, reference, _) = try tinyRun(steps: 2, maxStaleness: 0)
        let context = try ZMQContext()
        let system = try ReinActorSystem(
            context: context,
            configuration: .init(name: LearnerActor.name, bind: "tcp://127.0.0.1:*"),
            settings: testSettings, logger: quiet)
        let learner = try LearnerActor.named(on: system, config: config, reference: reference, logger: quiet)
        let sink = ZMQSampleSource(context: context, bind: "tcp://127.0.0.1:*", logger: quiet)
        sink.attach(to: learner)
        let samples = await sink.endpoint()
        defer { sink.close() }

        // A peer with no part in the run pushes to the sample socket.
        let hostile = try BulkSender(
            context: context, node: .random(), link: .connect(samples), sendTimeout: .seconds(10))
        defer { hostile.close() }
        func push(_ columns: SampleColumns, from sender: BulkSender) async throws {
            try await sender.send(SampleBatchLayout.frames(columns), policyVersion: 0)
        }

        let worker = NodeID.random()
        for step in 0..<2 {
            let order = try await learner.requestWork(worker: worker, haveVersion: -1, inline: true)
            #expect(order.status == .sample && order.index == step)
            let weights = try #require(order.weights)
            let batch = try WeightRetentionTests.sample(
                order, config: config,
                parameters: try GPTParameters(config: reference.config, values: weights.values))
            // The forger knows the worker, index, attempt and incarnation: everything but the token.
            let refusedBefore = sink.rejections.count(WireRejections.refused)
            for forged in [AssignmentToken.none, .random()] {
                try await push(
                    SampleColumns(
                        batch, worker: worker, index: order.index, attempt: order.attempt,
                        incarnation: order.incarnation, token: forged), from: hostile)
            }
            #expect(
                await eventually { sink.rejections.count(WireRejections.refused) == refusedBefore + 2 },
                "both forgeries are refused on the stream")
            var ledger = try await learner.currentLedger()
            #expect(ledger.refused == [.wrongToken: 2 * 16 * (step + 1)] && ledger.balances)
            #expect(ledger.inFlight == 16, "the assignment is still out with its worker")
            #expect(try await learner.stepMetrics().count == step, "no forged batch trained")

            // The worker's own batch, with the token of its order, trains.
            let honest = try BulkSender(
                context: context, node: worker, link: .connect(samples), sendTimeout: .seconds(10))
            try await push(
                SampleColumns(
                    batch, worker: worker, index: order.index, attempt: order.attempt,
                    incarnation: order.incarnation, token: order.token), from: honest)
            #expect(
                try await eventually(within: .seconds(60)) {
                    try await learner.stepMetrics().count == step + 1
                })
            honest.close()
            ledger = try await learner.currentLedger()
            #expect(ledger.trained == 16 * (step + 1) && ledger.balances)
        }
        #expect(try await learner.isFinished())
        await system.shutdown()
    }
}
