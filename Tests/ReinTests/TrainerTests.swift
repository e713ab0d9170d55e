import Foundation
import Logging
import ReinKL
import ReinModel
import ReinTasks
import ReinTestKit
import Testing

@testable import Rein

/// A tiny run as the trainer tests use it (default step count for the learning-rate schedule).
func tinyRun(injectLag: Int = 0, maxStaleness: Int = 4) throws -> (RunConfig, GPTParameters, RunFolder) {
    try TestKit.tinyRun(steps: RunConfig().train.steps, maxStaleness: maxStaleness, injectLag: injectLag)
}

@Suite("Single-process trainer")
struct TrainerTests {
    let logger = Logger(label: "test")

    @Test func lagInjectionSamplesWithTheWeightsLVersionsOld() throws {
        let (config, reference, folder) = try tinyRun(injectLag: 2)
        let trainer = try Trainer(config: config, reference: reference, folder: folder, logger: logger)
        var snapshots: [Int: GPTParameters] = [0: reference]
        for step in 0..<6 {
            let versionBefore = trainer.learner.version
            let (version, weights) = trainer.samplingWeights()
            #expect(version == max(0, versionBefore - 2), "step \(step)")
            #expect(weights.values == snapshots[version]?.values)
            // The behaviour log-probs the sampler records are those of exactly those weights.
            let batch = try trainer.sampler.sample(
                trainer.problems(forStep: step), groupSize: 4, parameters: weights, version: version, seed: 7,
                firstID: 0)
            #expect(batch.rollouts.allSatisfy { $0.versions.allSatisfy { $0 == version } })
            let scorer = GPTModel(parameters: weights, threads: 1)
            let (tokens, length) = Learner.pack(batch.rollouts)
            let out = try scorer.forward(
                TokenBatch(
                    tokens: tokens, batch: batch.rollouts.count, length: length,
                    lengths: batch.rollouts.map(Learner.sequenceLength)))
            let fresh = Learner.completionValues(out.logProbs, rows: batch.rollouts, positions: length - 1)
            let recorded = batch.rollouts.flatMap(\.behaviourLogProbs)
            for (a, b) in zip(fresh, recorded) { #expect(abs(a - b) < 1e-4) }
            let metrics = try trainer.runStep()
            #expect(metrics.lagMax == min(step, 2))
            snapshots[trainer.learner.version] = trainer.learner.model.parameters
        }
        #expect(trainer.ledger.balances && trainer.ledger.trained == 6 * 16)
    }

    @Test func samplesOlderThanMaxStalenessAreDroppedAndCounted() throws {
        // inject_lag 2 > max_staleness 0 (a configuration validation refuses; set past it here):
        // once the learner is past version 0, every batch is sampled with a version too old to train.
        var (config, reference, folder) = try tinyRun(injectLag: 0, maxStaleness: 0)
        config.train.injectLag = 2
        let trainer = try Trainer(config: config, reference: reference, folder: folder, logger: logger)
        let first = try trainer.runStep()
        #expect(first.dropped == 0 && first.lagMax == 0 && trainer.learner.version == 1)
        for _ in 0..<2 {
            let metrics = try trainer.runStep()
            #expect(metrics.dropped == 16 && metrics.lagMax == 1 && metrics.learner == nil)
        }
        #expect(trainer.learner.version == 1)
        #expect(trainer.ledger == SampleLedger(produced: 48, trained: 16, dropped: [.stale: 32]))
        #expect(trainer.ledger.balances)
    }

    @Test func resumingFromACheckpointReproducesTheNextStepExactly() throws {
        let (config, reference, folder) = try tinyRun(injectLag: 1)
        let a = try Trainer(config: config, reference: reference, folder: folder, logger: logger)
        for _ in 0..<3 { _ = try a.runStep() }
        try a.saveCheckpoint()
        let next = try a.runStep()
        let b = try Trainer(config: config, reference: reference, folder: folder, logger: logger)
        try b.resume(
            from: try #require(
                try CheckpointStore(folder: folder).load(kind: Trainer.checkpointKind, logger: logger)))
        #expect(b.step == 3 && b.learner.version == 3)
        let replay = try b.runStep()
        #expect(replay.reward == next.reward)
        #expect(replay.learner?.pgLoss == next.learner?.pgLoss)
        #expect(b.learner.model.parameters.values == a.learner.model.parameters.values)
        #expect(b.learner.optimizer.m == a.learner.optimizer.m)
    }

    /// Checkpoints of the kinds written before the run checkpoint was shared by every mode still
    /// resume: the single-process trainer's (`step`, and a bare count of dropped samples) and the
    /// distributed learner's.
    @Test(arguments: ["single-process trainer", "distributed learner"])
    func aCheckpointOfAFormerKindStillResumes(kind: String) throws {
        let (config, reference, folder) = try tinyRun(injectLag: 1)
        let a = try Trainer(config: config, reference: reference, folder: folder, logger: logger)
        for _ in 0..<3 { _ = try a.runStep() }
        try a.saveCheckpoint()
        let next = try a.runStep()
        let store = CheckpointStore(folder: folder)
        var files = try #require(try store.load(kind: Trainer.checkpointKind, logger: logger)).files
        if kind == "single-process trainer" {
            files["state.json"] = Data(
                #"{"ledger":{"dropped":0,"produced":48,"trained":48},"ring":[2,3],"step":3,"version":3}"#.utf8
            )
        }
        try store.save(files, kind: kind)
        let b = try Trainer(config: config, reference: reference, folder: folder, logger: logger)
        try b.resume(from: try #require(try store.load(kind: Trainer.checkpointKind, logger: logger)))
        #expect(b.step == 3 && b.learner.version == 3 && b.ledger == SampleLedger(produced: 48, trained: 48))
        let replay = try b.runStep()
        #expect(replay.reward == next.reward && replay.lagMax == next.lagMax)
        #expect(b.learner.model.parameters.values == a.learner.model.parameters.values)
    }

    @Test func checkpointsAreWrittenAtomicallyAndReplaced() throws {
        let (config, reference, folder) = try tinyRun()
        let trainer = try Trainer(config: config, reference: reference, folder: folder, logger: logger)
        _ = try trainer.runStep()
        try trainer.saveCheckpoint()
        _ = try trainer.runStep()
        try trainer.saveCheckpoint()
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.path)
        #expect(files.filter { $0.hasPrefix(".") }.isEmpty, "no staging leftovers: \(files)")
        let state = try JSONDecoder().decode(
            LearnerState.self,
            from: Data(contentsOf: URL(fileURLWithPath: folder.file("checkpoint/state.json"))))
        #expect(state.consumed == 2 && state.version == 2)
        #expect(state.reference == ReferenceIdentity(reference, source: config.train.reference))
        let (policy, metadata) = try Checkpoint.load(from: folder.file("checkpoint/policy.safetensors"))
        #expect(policy.values == trainer.learner.model.parameters.values)
        #expect(metadata[Checkpoint.policyVersionKey] == "2")
    }
}
