import Distributed
import Foundation
import Logging
import Rein
import ReinActors
import ReinKL
import ReinModel
import ReinRuntime
import ReinTasks
import ReinTestKit
import ReinTracker
import Testing
import ZeroMQ

let quiet = TestKit.quiet

/// Generous heartbeats (``TestKit/runtimeSettings``).
let testSettings = TestKit.runtimeSettings

/// A tiny run (see ``TestKit/tinyRun(steps:maxStaleness:injectLag:)``).
func tinyRun(steps: Int = 4, maxStaleness: Int = 0, injectLag: Int = 0) throws -> (
    RunConfig, GPTParameters, RunFolder
) {
    try TestKit.tinyRun(steps: steps, maxStaleness: maxStaleness, injectLag: injectLag)
}

/// The metrics of `config`'s run as the single-process ``Trainer`` trains it: what every launch
/// mode must reproduce.
func singleProcessMetrics(config: RunConfig, reference: GPTParameters, folder: RunFolder) throws
    -> [StepMetrics]
{
    let trainer = try Trainer(config: config, reference: reference, folder: folder, logger: quiet)
    return try (0..<config.train.steps).map { _ in try trainer.runStep() }
}

/// The metrics that must match exactly between launch modes (not timings).
func comparable(_ m: StepMetrics) -> [Double] {
    let l = m.learner
    return [
        Double(m.step), Double(m.version), m.reward, m.accuracy, m.responseLength, m.lagMean,
        Double(m.dropped),
        l?.pgLoss ?? .nan, l?.klLoss ?? .nan, l?.gradNorm ?? .nan, l?.entropy ?? .nan, l?.ratioMax ?? .nan,
    ]
}

@Suite("Distributed trainer, one process")
struct DistributedTrainerTests {
    @Test func theStalenessTrackerObservesTheDistributedLearner() async throws {
        var (config, reference, folder) = try tinyRun(steps: 6, maxStaleness: 2, injectLag: 1)
        config.train.trackerEvery = 1
        // The tiny random policy earns no reward (no policy-gradient signal) and the KL gradient
        // is zero at θ = π_ref, so without weight decay θ would never move: nothing to measure.
        config.train.weightDecay = 0.5
        let result = try await DistributedTrainer(
            config: config, reference: reference, folder: folder, workers: 2, transport: .inMemory,
            settings: testSettings, logger: quiet
        ).run()
        let records = try StalenessTracker.readRecords(in: folder)
        #expect(records.map(\.step) == Array(1...6))
        for (record, step) in zip(records, try result.metrics()) {
            // The tracker saw the batch the learner trained, at the lag it trained it with.
            #expect(record.lagHistogram.map(\.lag) == [step.lagMax], "step \(step.step)")
            #expect(record.sequences == 16)
            for bucket in record.buckets {
                for bias in bucket.implementations
                where ["k2_loss_sgw_token", "k3_loss_w_token"].contains(bias.id) {
                    #expect(bias.relativeError < 1e-9, "\(bias.id) at lag \(bucket.lag)")
                }
            }
            #expect((record.selection?.trained.count ?? 0) > 0)
        }
        // Injected lag 1: the learner trains stale batches, and the naive k2 loss is biased there.
        let stale = records.flatMap(\.buckets).filter { $0.lag > 0 }
        #expect(!stale.isEmpty)
        #expect(
            stale.contains { $0.implementations.contains { $0.id == "k2_loss" && $0.relativeError > 1e-6 } })
    }

    @Test(arguments: DistributedTrainer.Transport.allCases)
    func synchronousRunEqualsTheSingleProcessTrainer(transport: DistributedTrainer.Transport) async throws {
        let (config, reference, folder) = try tinyRun(steps: 4, maxStaleness: 0)
        let trainer = try Trainer(config: config, reference: reference, folder: folder, logger: quiet)
        var expected: [StepMetrics] = []
        for _ in 0..<config.train.steps { expected.append(try trainer.runStep()) }

        let (_, _, folder2) = try tinyRun()
        let result = try await DistributedTrainer(
            config: config, reference: reference, folder: folder2, workers: 3, transport: transport,
            settings: testSettings,
            logger: quiet
        ).run()
        #expect(try result.metrics().count == expected.count)
        for (a, b) in zip(try result.metrics(), expected) {
            #expect(comparable(a) == comparable(b), "step \(b.step)")
        }
        #expect(result.weights.values == trainer.learner.model.parameters.values)
        #expect(result.weights.version == config.train.steps)
        var ledger = RuntimeLedger()
        ledger.produced = 4 * 16
        ledger.trained = 4 * 16
        #expect(result.ledger == ledger)
        let written = try #require(try folder2.ledger(RuntimeLedger.self))
        #expect(written == ledger)
    }

    @Test(
        "Injected lag samples with older weights exactly as the single-process trainer, paced or not",
        arguments: PacingMode.allCases)
    func injectedLagSamplesWithOlderWeightsExactlyAsTheSingleProcessTrainer(pacing: PacingMode) async throws {
        var (config, reference, folder) = try tinyRun(steps: 5, maxStaleness: 2, injectLag: 2)
        config.runtime.pacing = pacing
        let trainer = try Trainer(config: config, reference: reference, folder: folder, logger: quiet)
        var expected: [StepMetrics] = []
        for _ in 0..<config.train.steps { expected.append(try trainer.runStep()) }
        #expect(expected.map(\.lagMax) == [0, 1, 2, 2, 2])

        let (_, _, folder2) = try tinyRun()
        let result = try await DistributedTrainer(
            config: config, reference: reference, folder: folder2, workers: 2, settings: testSettings,
            logger: quiet
        ).run()
        #expect(try result.metrics().map(comparable) == expected.map(comparable))
        #expect(result.weights.values == trainer.learner.model.parameters.values)
    }

    /// Over ZeroMQ (`inproc`, the transport code of multi-process runs), each delivery mode ends with
    /// the single-process trainer's weights, a balanced ledger and the weights by the path it
    /// names: `orders` publishes nothing and every batch after the first carries its version;
    /// `broadcast` (and `auto`, with 2 workers) publishes every version and no order carries one.
    @Test(arguments: WeightDeliveryMode.allCases)
    func eachWeightDeliveryTrainsTheSingleProcessRunByItsOwnPath(mode: WeightDeliveryMode) async throws {
        var (config, reference, folder) = try tinyRun(steps: 4, maxStaleness: 0)
        config.runtime.weightDelivery = mode
        let trainer = try Trainer(config: config, reference: reference, folder: folder, logger: quiet)
        for _ in 0..<config.train.steps { _ = try trainer.runStep() }

        let (_, _, folder2) = try tinyRun()
        let result = try await DistributedTrainer(
            config: config, reference: reference, folder: folder2, workers: 2, transport: .inproc,
            settings: testSettings, logger: quiet
        ).run()
        #expect(result.weights.values == trainer.learner.model.parameters.values)
        #expect(result.ledger.balances && result.ledger.trained == 4 * 16 && result.ledger.inFlight == 0)
        let deliveries = result.deliveries
        switch mode {
        case .orders:
            // Batch s ≥ 1 is sampled with version s, which no worker holds before its order.
            #expect(deliveries.broadcasts == 0 && deliveries.fetches == 0)
            #expect(deliveries.inOrders >= config.train.steps - 1)
        case .broadcast, .auto:
            #expect(deliveries.broadcasts == config.train.steps)
            #expect(deliveries.inOrders == 0)
        }
    }

    @Test(arguments: PacingMode.allCases)
    func asynchronousRunTrainsEveryBatchWithinTheStalenessBound(pacing: PacingMode) async throws {
        var (config, reference, folder) = try tinyRun(steps: 6, maxStaleness: 2)
        config.runtime.pacing = pacing
        let result = try await DistributedTrainer(
            config: config, reference: reference, folder: folder, workers: 2, settings: testSettings,
            logger: quiet
        ).run()
        #expect(try result.metrics().count == 6)
        #expect(try result.metrics().allSatisfy { $0.lagMax <= 2 && $0.learner != nil })
        #expect(result.ledger.balances && result.ledger.trained == 6 * 16 && result.ledger.inFlight == 0)
    }
}

@Suite("Learner and workers over ZeroMQ")
struct ZMQRuntimeTests {
    @Test func learnerAndTwoWorkersOverLoopbackTCPMatchTheSingleProcessTrainer() async throws {
        let (config, reference, folder) = try tinyRun(steps: 3, maxStaleness: 0)
        let expected = try singleProcessMetrics(config: config, reference: reference, folder: folder)

        let context = try ZMQContext()
        let learnerSystem = try ReinActorSystem(
            context: context, configuration: .init(name: "learner", bind: "tcp://127.0.0.1:*"),
            settings: testSettings, logger: quiet)
        let endpoint = try #require(learnerSystem.endpoint)
        let workerSystems = try (0..<2).map {
            try ReinActorSystem(
                context: context, configuration: .init(name: "worker-\($0)"), settings: testSettings,
                logger: quiet)
        }
        let learner = try LearnerActor.named(
            on: learnerSystem, config: config, reference: reference, logger: quiet)
        let (_, _, folder2) = try tinyRun()
        let result = try await withThrowingTaskGroup(of: DistributedRunResult?.self) { group in
            for system in workerSystems {
                group.addTask {
                    try await runWorker(
                        on: system, learnerAddress: endpoint, config: config, gpt: reference.config,
                        logger: quiet)
                    return nil
                }
            }
            group.addTask {
                try await serveLearner(learner, on: learnerSystem, folder: folder2, logger: quiet)
            }
            var result: DistributedRunResult?
            for try await value in group { result = result ?? value }
            return result
        }
        for system in workerSystems + [learnerSystem] { await system.shutdown() }
        let run = try #require(result)
        #expect(try run.metrics().map(comparable) == expected.map(comparable))
        #expect(run.ledger.balances && run.ledger.trained == 3 * 16 && run.ledger.produced == 3 * 16)
        #expect(FileManager.default.fileExists(atPath: folder2.file("ledger.json")))
    }
}
