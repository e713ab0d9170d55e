import Distributed
import Foundation
import Logging
import Rein
import ReinActors
import ReinModel
import ReinTracker
import Synchronization
import Testing

@testable import ReinRuntime

@Suite("Partial rollouts, one process")
struct PartialRolloutRunTests {
    /// Two workers on the in-memory bus. Whoever samples batch 0 holds its delivery until batch 1
    /// is out (so batch 1 is assigned version 0); batch 1's worker is offered version 1 as soon as
    /// the learner has it (a test hook instead of the broadcast), from its first token on — the
    /// sampler takes it once every row has drawn a token. No timing is assumed: each step waits
    /// for the event it needs.
    @Test func aBatchMovesToNewWeightsMidSequenceAndTheLedgerBalances() async throws {
        let (base, reference, folder) = try tinyRun(steps: 3, maxStaleness: 2)
        let config = {
            var config = base
            config.train.partialRollouts = true
            config.runtime.pacing = .bound
            config.train.trackerEvery = 1
            config.train.weightDecay = 0.5  // θ moves even without reward, so versions differ
            return config
        }()
        let bus = InMemoryBus()
        let learnerSystem = ReinActorSystem(
            bus: bus, name: LearnerActor.name, settings: testSettings, logger: quiet)
        let learner = try LearnerActor.named(
            on: learnerSystem, config: config, reference: reference, folder: folder, logger: quiet)
        let batchOneOut = Atomic<Bool>(false)
        let hook: PartialWeightsHook = { index, version in
            guard index == 1 else { return nil }
            batchOneOut.store(true, ordering: .sequentiallyConsistent)
            _ = await eventually { ((try? await learner.currentVersion()) ?? 0) > version }
            let newer = try await learner.fetchWeights(version: version + 1)
            let parameters = try GPTParameters(config: reference.config, values: newer.values)
            return ScheduledWeights([
                (from: 0, weights: VersionedParameters(version: newer.version, parameters: parameters))
            ])
        }
        let hold: @Sendable (Int) async -> Void = { index in
            if index == 0 { _ = await eventually { batchOneOut.load(ordering: .sequentiallyConsistent) } }
        }
        let workerSystems = (0..<2).map {
            ReinActorSystem(bus: bus, name: "worker-\($0)", settings: testSettings, logger: quiet)
        }
        let result = try await withThrowingTaskGroup(of: DistributedRunResult?.self) { group in
            for system in workerSystems {
                group.addTask {
                    let worker = try RolloutWorkerActor(
                        actorSystem: system, config: config, gpt: reference.config, logger: quiet)
                    let peer = try await system.connect(to: LearnerActor.name)
                    let remote = try LearnerActor.resolve(
                        id: .wellKnown(LearnerActor.name, on: peer.node), using: system)
                    try await worker.whenLocal {
                        try await $0.run(learner: remote, beforeDelivery: hold, partialWeights: hook)
                    }
                    return nil
                }
            }
            group.addTask {
                try await serveLearner(learner, on: learnerSystem, folder: folder, logger: quiet)
            }
            var result: DistributedRunResult?
            for try await value in group { result = result ?? value }
            return result
        }
        for system in workerSystems + [learnerSystem] { await system.shutdown() }
        let run = try #require(result)
        try run.ledger.check(final: true)
        #expect(run.ledger.trained == 3 * 16 && run.ledger.produced == run.ledger.trained)
        let metrics = try run.metrics()
        #expect(metrics.map(\.versionSpanMax) == [0, 1, 0])
        // Batch 1 trained at version 1: its first tokens are one version old, the rest current.
        #expect(metrics[1].lagMax == 1 && metrics[1].lagMean > 0 && metrics[1].lagMean < 1)
        let records = try StalenessTracker.readRecords(in: folder)
        let mixed = try #require(records.first { $0.step == 2 })
        #expect(mixed.versionSpans?.contains { $0.span == 1 && $0.sequences > 0 } == true)
        #expect(Set(mixed.lagHistogram.map(\.lag)) == [0, 1])
        // The tracker rebuilt μ per token from each token's version: the logged behaviour
        // log-probs are those of the weights each token was tagged with.
        #expect(mixed.maxBehaviourLogProbError < 1e-4)
        for bucket in mixed.buckets {
            for bias in bucket.implementations
            where ["k2_loss_sgw_token", "k3_loss_w_token"].contains(bias.id) {
                #expect(bias.relativeError < 1e-9, "\(bias.id) at lag \(bucket.lag)")
            }
        }
    }
}

@Suite("Partial rollouts: the broadcast's weights on offer")
struct BroadcastWeightsTests {
    @Test func onlyVersionsArrivingWhileTheBatchSamplesAreOffered() async throws {
        let gpt = GPTConfig(vocab: 7, context: 8, dModel: 8, layers: 1, heads: 2)
        let values = { (seed: UInt64) in try GPTParameters(config: gpt, seed: seed).values }
        let channels = InMemoryBulkChannels(logger: quiet)
        let publisher = try channels.publisher(node: .random(), bind: "inproc://weights")
        let subscriber = channels.subscriber(endpoint: "inproc://weights", keep: 2, expectedCount: nil)
        defer { subscriber.close() }
        #expect(subscriber.newest() == nil)
        try await publisher.publish(PolicyWeights(version: 3, values: try values(3)))
        #expect(subscriber.newest()?.version == 3)
        // A batch assigned version 3 (or 2, with 3 already here): 3 is not offered.
        for assigned in [2, 3] {
            #expect(BroadcastWeights(subscriber, gpt: gpt, assigned: assigned).offer(position: 0) == nil)
        }
        let source = BroadcastWeights(subscriber, gpt: gpt, assigned: 3)
        try await publisher.publish(PolicyWeights(version: 4, values: try values(4)))
        let offer = try #require(source.offer(position: 5))
        let four = try values(4)
        #expect(offer.version == 4 && offer.parameters.values == four)
        // Weights that do not fit the model are never offered.
        try await publisher.publish(PolicyWeights(version: 5, values: [1, 2, 3]))
        #expect(source.offer(position: 6) == nil)
    }
}
