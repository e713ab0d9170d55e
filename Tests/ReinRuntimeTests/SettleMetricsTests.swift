import Distributed
import Foundation
import Rein
import ReinActors
import ReinModel
import ReinTestKit
import Testing

@testable import ReinRuntime

/// The end of a run settles `metrics.jsonl` to one record per batch consumed without reading a
/// healthy file back (``LearnerActor/settleMetrics(in:)``).
@Suite("Settling metrics.jsonl at the end of a run")
struct SettleMetricsTests {
    /// A learner of a 2-batch run into `folder` (or none), with both batches trained.
    func trainedLearner(folder: RunFolder?, beforeTraining: () throws -> Void = {}) async throws -> (
        LearnerActor, ReinActorSystem, RunConfig
    ) {
        let (config, reference, _) = try tinyRun(steps: 2, maxStaleness: 0)
        let system = ReinActorSystem(
            bus: InMemoryBus(), name: LearnerActor.name, settings: testSettings, logger: quiet)
        let learner = try LearnerActor.named(
            on: system, config: config, reference: reference, folder: folder, logger: quiet)
        try beforeTraining()
        let worker = NodeID(rawValue: 0x51)
        var have = -1
        for _ in 0..<2 {
            let order = try await learner.requestWork(worker: worker, haveVersion: have, inline: true)
            try #require(order.status == .sample)
            let weights = try #require(order.weights)
            let parameters = try GPTParameters(config: reference.config, values: weights.values)
            have = order.version
            try await learner.deliver(
                worker: worker, index: order.index, attempt: order.attempt, token: order.token,
                incarnation: order.incarnation,
                batch: WeightRetentionTests.sample(order, config: config, parameters: parameters))
        }
        try await learner.whenLocal { try await $0.waitUntilFinished() }
        return (learner, system, config)
    }

    func settle(_ learner: LearnerActor, in folder: RunFolder) async throws -> Int {
        try #require(await learner.whenLocal { try $0.settleMetrics(in: folder) })
    }

    @Test(.timeLimit(.minutes(2))) func aHealthyFileIsKeptExtraLinesAreCutAndAGapThrows() async throws {
        let folder = try TestKit.temporaryRunFolder(prefix: "rein-settle")
        let (learner, system, _) = try await trainedLearner(folder: folder)
        defer { Task { await system.shutdown() } }
        let streamed = try folder.metrics()
        #expect(streamed.map(\.step) == [1, 2])
        #expect(try await settle(learner, in: folder) == 2)
        #expect(try folder.lineCount(of: .metrics) == 2)

        // Lines past the batches consumed (a record written twice) are cut.
        try folder.appendMetrics(streamed[1])
        #expect(try folder.lineCount(of: .metrics) == 3)
        #expect(try await settle(learner, in: folder) == 2)
        #expect(try folder.metrics().map(\.step) == [1, 2])

        // A missing record is an error naming the file, not a shorter run.
        try folder.rewrite([streamed[0]], as: .metrics)
        await #expect {
            try await settle(learner, in: folder)
        } throws: { error in
            "\(error)".contains("has 1 records, the learner consumed 2 batches")
        }
    }

    @Test(.timeLimit(.minutes(2))) func afterAFailedAppendTheFileIsReadBackAndTheFailureReported()
        async throws
    {
        let folder = try TestKit.temporaryRunFolder(prefix: "rein-settle-failed")
        // metrics.jsonl cannot be opened for appending: every line of the run fails.
        let (learner, system, _) = try await trainedLearner(folder: folder) {
            try? FileManager.default.removeItem(atPath: folder.file(.metrics))
            try FileManager.default.createDirectory(
                atPath: folder.file(.metrics), withIntermediateDirectories: false)
        }
        defer { Task { await system.shutdown() } }
        // As many lines as batches, one of them torn: only a learner that knows an append failed
        // reads the file back and finds it.
        try FileManager.default.removeItem(atPath: folder.file(.metrics))
        try folder.rewrite([StepMetrics(step: 1, version: 1)], as: .metrics)
        let torn =
            try String(contentsOfFile: folder.file(.metrics), encoding: .utf8) + #"{"step": 2, "vers"# + "\n"
        try RunFolder.writeAtomically(Data(torn.utf8), to: folder.file(.metrics))
        #expect(try folder.lineCount(of: .metrics) == 2)
        await #expect {
            try await settle(learner, in: folder)
        } throws: { error in
            "\(error)".contains("line 2")
        }
    }

    @Test(.timeLimit(.minutes(2))) func aLearnerWithoutAFolderWritesTheMetricsItKept() async throws {
        let (learner, system, _) = try await trainedLearner(folder: nil)
        defer { Task { await system.shutdown() } }
        let folder = try TestKit.temporaryRunFolder(prefix: "rein-settle-none")
        #expect(try await settle(learner, in: folder) == 2)
        #expect(try folder.metrics().map(\.step) == [1, 2])
    }
}
