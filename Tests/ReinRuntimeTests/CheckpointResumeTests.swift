import Distributed
import Foundation
import Logging
import Rein
import ReinActors
import ReinModel
import ReinRuntime
import ReinTasks
import ReinTestKit
import Synchronization
import Testing

/// Keeps every log message (to check what a load said).
final class LogCapture: Sendable {
    private let lines = Mutex<[String]>([])

    struct Handler: LogHandler {
        let capture: LogCapture
        var logLevel: Logger.Level = .trace
        var metadata: Logger.Metadata = [:]
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) { capture.lines.withLock { $0.append("\(event.level): \(event.message)") } }
    }

    var logger: Logger { Logger(label: "rein.capture") { [self] _ in Handler(capture: self) } }
    var text: String { lines.withLock { $0.joined(separator: "\n") } }
}

/// Flips one byte in the middle of `path`.
func flipByte(in path: String) throws {
    var data = try Data(contentsOf: URL(fileURLWithPath: path))
    data[data.count / 2] ^= 0x5A
    try data.write(to: URL(fileURLWithPath: path))
}

/// Cuts `path` to half its length.
func truncate(_ path: String) throws {
    let data = try Data(contentsOf: URL(fileURLWithPath: path))
    try data.prefix(data.count / 2).write(to: URL(fileURLWithPath: path))
}

/// The files of a directory and their bytes.
func snapshot(_ directory: String) throws -> [String: Data] {
    var files: [String: Data] = [:]
    for name in try FileManager.default.contentsOfDirectory(atPath: directory) {
        files[name] = try Data(contentsOf: URL(fileURLWithPath: directory + "/" + name))
    }
    return files
}

@Suite("Learner checkpoints and resume")
struct CheckpointResumeTests {
    /// A synchronous 4-batch run checkpointing every 2 batches: `checkpoint/` holds the end,
    /// `checkpoint.prev/` the state after batch 2.
    func checkpointedRun(injectLag: Int = 0) async throws -> (
        RunConfig, GPTParameters, RunFolder, DistributedRunResult
    ) {
        var (config, reference, folder) = try tinyRun(steps: 4, maxStaleness: injectLag, injectLag: injectLag)
        config.train.checkpointEvery = 2
        let result = try await DistributedTrainer(
            config: config, reference: reference, folder: folder, workers: 2, settings: testSettings,
            logger: quiet
        ).run()
        return (config, reference, folder, result)
    }

    /// With `inject_lag` 2 the lag-injection ring holds three versions, all of which the checkpoint keeps.
    @Test(arguments: [0, 2])
    func theCheckpointHoldsTheLearnersStateAndARunResumedFromItContinuesExactly(injectLag: Int) async throws {
        let (config, reference, folder, result) = try await checkpointedRun(injectLag: injectLag)
        let last = try #require(try LearnerCheckpoint.load(from: folder, logger: quiet))
        #expect(last.state.version == 4 && last.state.consumed == 4)
        #expect(last.policy.values == result.weights.values)
        #expect(last.state.ledger == result.ledger)
        // Metrics are streamed to the run folder, not copied into every checkpoint.
        #expect(last.state.metrics.isEmpty)
        let streamed = try folder.metrics()
        #expect(try streamed.map(comparable) == result.metrics().map(comparable))
        #expect(last.state.reference == ReferenceIdentity(reference, source: config.train.reference))

        // Continue from the checkpoint after batch 2 in a new folder holding it and the whole
        // metrics file (lines past the checkpoint are work the resumed learner redoes): the same
        // run, exactly.
        let (_, _, resumed) = try tinyRun()
        try FileManager.default.copyItem(
            atPath: folder.file("checkpoint.prev"), toPath: resumed.file("checkpoint"))
        try FileManager.default.copyItem(
            atPath: folder.file("metrics.jsonl"), toPath: resumed.file("metrics.jsonl"))
        let middle = try #require(try LearnerCheckpoint.load(from: resumed, logger: quiet))
        #expect(middle.state.version == 2 && middle.state.consumed == 2)
        #expect(middle.state.ring == (injectLag == 0 ? [2] : [0, 1, 2]))
        #expect(try result.metrics().map(\.lagMax) == (injectLag == 0 ? [0, 0, 0, 0] : [0, 1, 2, 2]))
        // With injected lag, workers sample up to `inject_lag` batches ahead: those in flight at
        // the checkpoint count lost on resume and are sampled again, identically.
        #expect(middle.state.ledger.trained == 32)
        #expect(injectLag > 0 || middle.state.ledger.inFlight == 0)
        let continued = try await DistributedTrainer(
            config: config, reference: reference, folder: resumed, workers: 2, settings: testSettings,
            resume: middle, logger: quiet
        ).run()
        #expect(try continued.metrics().map(comparable) == result.metrics().map(comparable))
        #expect(continued.weights == result.weights)
        var expected = result.ledger
        expected.produced += middle.state.ledger.inFlight
        expected.lost += middle.state.ledger.inFlight
        #expect(continued.ledger == expected)
    }

    @Test func aCorruptedOrTruncatedNewestCheckpointFallsBackToThePreviousWithAWarning() async throws {
        let (_, _, folder, _) = try await checkpointedRun()
        for damage in [flipByte(in:), truncate(_:)] {
            let (_, _, copy) = try tinyRun()
            for name in ["checkpoint", "checkpoint.prev"] {
                try FileManager.default.copyItem(atPath: folder.file(name), toPath: copy.file(name))
            }
            try damage(copy.file("checkpoint/optimizer.safetensors"))
            let capture = LogCapture()
            let loaded = try #require(try LearnerCheckpoint.load(from: copy, logger: capture.logger))
            #expect(loaded.state.consumed == 2, "the previous checkpoint (after batch 2)")
            #expect(capture.text.contains("newest checkpoint unusable"), "\(capture.text)")
            #expect(capture.text.contains("checkpoint/optimizer.safetensors"), "\(capture.text)")
            #expect(capture.text.contains("using the previous good one"), "\(capture.text)")
        }
        // A save interrupted between the two renames leaves only checkpoint.prev/.
        let (_, _, interrupted) = try tinyRun()
        try FileManager.default.copyItem(
            atPath: folder.file("checkpoint.prev"), toPath: interrupted.file("checkpoint.prev"))
        let capture = LogCapture()
        #expect(try LearnerCheckpoint.load(from: interrupted, logger: capture.logger)?.state.consumed == 2)
        #expect(capture.text.contains("is missing"), "\(capture.text)")
    }

    @Test func bothCheckpointsCorruptedIsAClearErrorAndNothingIsOverwritten() async throws {
        let (_, _, folder, _) = try await checkpointedRun()
        try flipByte(in: folder.file("checkpoint/policy.safetensors"))
        try truncate(folder.file("checkpoint.prev/state.json"))
        let before = try [snapshot(folder.file("checkpoint")), snapshot(folder.file("checkpoint.prev"))]
        #expect {
            _ = try LearnerCheckpoint.load(from: folder, logger: quiet)
        } throws: { error in
            let text = "\(error)"
            return error is CheckpointError && text.contains("no usable checkpoint")
                && text.contains("checkpoint/policy.safetensors has checksum")
                && text.contains("checkpoint.prev/state.json has") && text.contains("nothing was overwritten")
        }
        let after = try [snapshot(folder.file("checkpoint")), snapshot(folder.file("checkpoint.prev"))]
        #expect(before == after)
    }

    @Test func aSaveReplacesAnUnusableNewestCheckpointButKeepsThePreviousGoodOne() async throws {
        let (_, _, folder, _) = try await checkpointedRun()
        let good = try #require(try LearnerCheckpoint.load(from: folder, logger: quiet))
        try flipByte(in: folder.file("checkpoint/state.json"))
        let previous = try snapshot(folder.file("checkpoint.prev"))
        try good.save(to: folder)
        #expect(try snapshot(folder.file("checkpoint.prev")) == previous, "the damaged one is not rotated in")
        #expect(try LearnerCheckpoint.load(from: folder, logger: quiet)?.state.consumed == 4)
    }

    @Test func aLedgerWrittenBeforeRefusedExistedStillDecodes() throws {
        let old = #"{"dropped":{"stale":16},"inFlight":0,"lost":16,"produced":64,"trained":32}"#
        // Read through the run folder's one decoder, which reads those camelCase keys too.
        let ledger = try RunCoding.decoder().decode(RuntimeLedger.self, from: Data(old.utf8))
        #expect(ledger.refused.isEmpty && ledger.balances && ledger.droppedTotal == 16)
        var refused = ledger
        refused.refused[.previousLearner] = 16
        let again = try RunCoding.decoder().decode(
            RuntimeLedger.self, from: try RunCoding.encoder().encode(refused))
        #expect(again == refused && again.summary.hasSuffix("refused on delivery: previous learner 16"))
    }

    /// One checkpoint format for every mode: `rein train` checkpoints after two batches, the
    /// distributed learner continues from it to the end — the same run as four single-process
    /// steps — and its final checkpoint resumes in the single-process trainer.
    @Test func aSingleProcessCheckpointResumesADistributedRunAndTheOtherWayRound() async throws {
        let (config, reference, folder) = try tinyRun(steps: 4, maxStaleness: 0)
        let whole = try Trainer(config: config, reference: reference, folder: folder, logger: quiet)
        var expected: [StepMetrics] = []
        for _ in 0..<config.train.steps { expected.append(try whole.runStep()) }

        let (_, _, half) = try tinyRun()
        let first = try Trainer(config: config, reference: reference, folder: half, logger: quiet)
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        var lines = ""
        for _ in 0..<2 {
            lines += String(decoding: try encoder.encode(try first.runStep()), as: UTF8.self) + "\n"
        }
        try first.saveCheckpoint()
        try half.write(Data(lines.utf8), to: "metrics.jsonl")
        let checkpoint = try #require(try LearnerCheckpoint.load(from: half, logger: quiet))
        #expect(checkpoint.state.consumed == 2 && checkpoint.state.version == 2)
        let continued = try await DistributedTrainer(
            config: config, reference: reference, folder: half, workers: 2, settings: testSettings,
            resume: checkpoint, logger: quiet
        ).run()
        #expect(try continued.metrics().map(comparable) == expected.map(comparable))
        #expect(continued.weights.values == whole.learner.model.parameters.values)
        #expect(continued.ledger == SampleLedger(produced: 64, trained: 64))

        let back = try Trainer(config: config, reference: reference, folder: half, logger: quiet)
        try back.resume(
            from: try #require(
                try CheckpointStore(folder: half).load(kind: Trainer.checkpointKind, logger: quiet)))
        #expect(back.step == 4 && back.learner.version == 4 && back.ledger == continued.ledger)
        #expect(back.learner.model.parameters.values == whole.learner.model.parameters.values)
        #expect(back.learner.optimizer.m == whole.learner.optimizer.m)
    }

    @Test func aCheckpointOfAnotherReferenceIsRefused() async throws {
        let (config, reference, folder, _) = try await checkpointedRun()
        let checkpoint = try #require(try LearnerCheckpoint.load(from: folder, logger: quiet))
        var other = reference
        other.values[0] += 1
        let system = ReinActorSystem(
            bus: InMemoryBus(), name: "learner", settings: testSettings, logger: quiet)
        defer { Task { await system.shutdown() } }
        #expect(throws: RuntimeError.self) {
            _ = try LearnerActor(
                actorSystem: system, config: config, reference: other, resume: checkpoint, logger: quiet)
        }
    }

    /// The crucial property across a learner restart: a batch assigned by the learner before it
    /// crashed and delivered to the restarted one is refused and counted, never trained — even
    /// when it names the same index, attempt, worker and version as a current assignment.
    @Test func aBatchAssignedBeforeTheLearnerRestartedIsRefusedNeverTrained() async throws {
        var (config, reference, folder) = try tinyRun(steps: 6, maxStaleness: 1)
        config.train.checkpointEvery = 1
        let task = try ArithmeticTask(config: config.task)
        let dataset = ArithmeticDataset(task: task)
        let sampler = RolloutSampler(
            task: task, config: reference.config, temperature: config.train.temperature,
            topK: config.train.topK,
            threads: 1)
        let worker = NodeID(rawValue: 77)
        func sample(_ order: WorkOrder, with parameters: GPTParameters) throws -> RolloutBatch {
            try sampler.sample(
                Trainer.problems(forStep: order.index, config: config, dataset: dataset),
                groupSize: config.train.groupSize, parameters: parameters, version: order.version,
                seed: Trainer.samplingSeed(forStep: order.index, seed: config.seed),
                firstID: WorkOrder.firstID(index: order.index, attempt: order.attempt))
        }
        func assign(_ learner: LearnerActor) async throws -> WorkOrder {
            let order = try await learner.requestWork(worker: worker, haveVersion: -1)
            #expect(order.status == .sample)
            return order
        }
        func trainOne(_ learner: LearnerActor) async throws {
            let order = try await assign(learner)
            let weights = try #require(order.weights)
            let batch = try sample(
                order, with: try GPTParameters(config: reference.config, values: weights.values))
            let before = try await learner.stepMetrics().count
            try await learner.deliver(
                worker: worker, index: order.index, attempt: order.attempt, token: order.token,
                incarnation: order.incarnation,
                batch: batch)
            #expect(
                try await eventually(within: .seconds(20)) {
                    try await learner.stepMetrics().count == before + 1
                })
        }

        // The first learner trains batch 0 (checkpoint: batch 1 next, version 1), then batch 1,
        // then assigns batch 2 at version 2 and crashes with it in flight.
        let bus = InMemoryBus()
        let first = ReinActorSystem(bus: bus, name: "learner-1", settings: testSettings, logger: quiet)
        let learner1 = try LearnerActor(
            actorSystem: first, config: config, reference: reference, folder: folder, logger: quiet)
        try await trainOne(learner1)
        #expect(
            await eventually(within: .seconds(20)) {
                (try? LearnerCheckpoint.load(from: folder, logger: quiet))??.state.consumed == 1
            })
        let checkpoint = try #require(try LearnerCheckpoint.load(from: folder, logger: quiet))
        try await trainOne(learner1)
        let oldOrder = try await assign(learner1)
        #expect(oldOrder.index == 2 && oldOrder.version == 2 && oldOrder.attempt == 0)
        // Its weights at version 2: the batch is sampled with version-2 weights of the crashed learner.
        let oldBatch = try sample(
            oldOrder,
            with: try GPTParameters(config: reference.config, values: try #require(oldOrder.weights).values))
        await first.shutdown()

        // The restarted learner resumes at version 1 and reaches batch 2 (version 2) again.
        let second = ReinActorSystem(bus: bus, name: "learner-2", settings: testSettings, logger: quiet)
        defer { Task { await second.shutdown() } }
        let learner2 = try LearnerActor(
            actorSystem: second, config: config, reference: reference, folder: folder, resume: checkpoint,
            logger: quiet)
        #expect(learner2.incarnation != learner1.incarnation)
        #expect(try await learner2.currentVersion() == 1)
        try await trainOne(learner2)
        let newOrder = try await assign(learner2)
        #expect(newOrder.index == 2 && newOrder.version == 2 && newOrder.attempt == oldOrder.attempt)

        // The old batch matches the new assignment in everything but the incarnation: refused.
        try await learner2.deliver(
            worker: worker, index: oldOrder.index, attempt: oldOrder.attempt, token: oldOrder.token,
            incarnation: oldOrder.incarnation,
            batch: oldBatch)
        try await Task.sleep(for: .milliseconds(300))
        #expect(try await learner2.stepMetrics().count == 2, "the stale batch was not trained")
        let ledger = try await learner2.currentLedger()
        #expect(ledger.refused == [.previousLearner: 16])
        #expect(ledger.balances)

        // The batch of the current assignment is trained, with a lag within max_staleness.
        let fresh = try sample(
            newOrder,
            with: try GPTParameters(config: reference.config, values: try #require(newOrder.weights).values))
        try await learner2.deliver(
            worker: worker, index: newOrder.index, attempt: newOrder.attempt, token: newOrder.token,
            incarnation: newOrder.incarnation,
            batch: fresh)
        #expect(try await eventually(within: .seconds(20)) { try await learner2.stepMetrics().count == 3 })
        let metrics = try await learner2.stepMetrics()
        #expect(metrics.map(\.version) == [1, 2, 3])
        #expect(metrics.allSatisfy { $0.learner != nil && $0.lagMax <= config.train.maxStaleness })
        let final = try await learner2.currentLedger()
        #expect(final.trained == 3 * 16 && final.balances && final.refused == [.previousLearner: 16])
    }
}
