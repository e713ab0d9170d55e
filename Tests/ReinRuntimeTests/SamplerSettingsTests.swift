import Foundation
import Rein
import ReinActors
import ReinModel
import Testing
import ZeroMQ

@testable import ReinRuntime

/// A batch's behaviour log-probs are those of the sampler settings it was drawn with, so the
/// learner takes only batches drawn with the run's own `train.temperature` and `train.top_k`.
@Suite("Sampler settings on the sample stream")
struct SamplerSettingsTests {
    @Test(.timeLimit(.minutes(2)))
    func aBatchSampledWithOtherSettingsIsRefusedAndTheRightOneTrains() async throws {
        let (config, reference, _) = try tinyRun(steps: 1, maxStaleness: 0)
        let context = try ZMQContext()
        let system = try ReinActorSystem(
            context: context,
            configuration: .init(name: LearnerActor.name, bind: "tcp://127.0.0.1:*"),
            settings: testSettings, logger: quiet)
        let learner = try LearnerActor.named(on: system, config: config, reference: reference, logger: quiet)
        let source = ZMQSampleSource(context: context, bind: "tcp://127.0.0.1:*", logger: quiet)
        source.attach(to: learner)
        defer { source.close() }
        let worker = NodeID.random()
        let sender = try BulkSender(
            context: context, node: worker, link: .connect(await source.endpoint()), sendTimeout: .seconds(10)
        )
        defer { sender.close() }

        let order = try await learner.requestWork(worker: worker, haveVersion: -1, inline: true)
        let weights = try #require(order.weights)
        let batch = try WeightRetentionTests.sample(
            order, config: config,
            parameters: try GPTParameters(config: reference.config, values: weights.values))
        let run = SamplerSettings(config.train)
        func push(_ sampler: SamplerSettings) async throws {
            let columns = SampleColumns(
                batch, worker: worker, index: order.index, attempt: order.attempt,
                incarnation: order.incarnation, token: order.token, sampler: sampler)
            try await sender.send(SampleBatchLayout.frames(columns), policyVersion: 0)
        }
        for (n, other) in [
            SamplerSettings(temperature: run.temperature * 2, topK: run.topK),
            SamplerSettings(temperature: run.temperature, topK: run.topK + 3),
        ].enumerated() {
            try await push(other)
            #expect(
                await eventually { source.rejections.count(WireRejections.refused) == n + 1 },
                "\(other) is refused on the stream")
        }
        #expect(try await learner.stepMetrics().isEmpty, "nothing sampled with other settings trained")
        #expect(try await learner.currentLedger().inFlight == 16, "the assignment is still out")

        try await push(run)
        #expect(try await eventually(within: .seconds(60)) { try await learner.stepMetrics().count == 1 })
        #expect(try await learner.currentLedger().balances)
        await system.shutdown()
    }

    @Test func theJoinReplyCarriesTheRunConfigurationAsJSON() async throws {
        let (config, reference, _) = try tinyRun(steps: 1, maxStaleness: 0)
        let system = ReinActorSystem(
            bus: InMemoryBus(), name: "learner", settings: testSettings, logger: quiet)
        let learner = try LearnerActor.named(on: system, config: config, reference: reference, logger: quiet)
        let reply = try await learner.join(worker: NodeID.random())
        let json = try #require(reply.config)
        #expect(try RunCoding.decoder().decode(RunConfig.self, from: Data(json.utf8)) == config)
        await system.shutdown()
    }
}
