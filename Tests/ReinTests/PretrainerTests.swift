import Foundation
import ReinModel
import ReinTasks
import Testing

@testable import Rein

@Suite("Pretrainer")
struct PretrainerTests {
    /// A tiny run on 1-digit addition: every problem fits a 16-token context.
    func tinyRun(steps: Int, evalEvery: Int, target: Double = 0, extra: Int = 0) -> RunConfig {
        var config = RunConfig()
        config.threads = 1
        config.model.context = 16
        config.model.dModel = 16
        config.model.layers = 1
        config.model.heads = 2
        config.task = ArithmeticTaskConfig(operations: [.add], maxDigits: 1, trainSize: 60, heldOutSize: 40)
        config.pretrain.steps = steps
        config.pretrain.extraSteps = extra
        config.pretrain.batchSize = 8
        config.pretrain.evalEvery = evalEvery
        config.pretrain.evalSize = 20
        config.pretrain.validationSize = 20
        config.pretrain.targetAccuracy = target
        return config
    }

    @Test("Stop rule: validates every eval_every steps and after the last; stops only at the target")
    func stopRule() {
        let rule = PretrainStopRule(steps: 10, evalEvery: 4, targetAccuracy: 0.6)
        #expect((1...10).filter(rule.validates(after:)) == [4, 8, 10])
        #expect(PretrainStopRule(steps: 10, evalEvery: 0, targetAccuracy: 0).validates(after: 10))
        #expect(!PretrainStopRule(steps: 10, evalEvery: 0, targetAccuracy: 0).validates(after: 5))
        #expect(rule.reachedTarget(0.6))
        #expect(rule.reachedTarget(0.9))
        #expect(!rule.reachedTarget(0.59))
        #expect(!rule.reachedTarget(nil))
        #expect(!PretrainStopRule(steps: 10, evalEvery: 4, targetAccuracy: 0).reachedTarget(1))
        // Past the schedule, short of the target: validation at the end of each phase.
        let extended = PretrainStopRule(steps: 10, evalEvery: 4, targetAccuracy: 0.6, extraSteps: 5)
        #expect(extended.maxSteps == 15)
        #expect((1...15).filter(extended.validates(after:)) == [4, 8, 10, 12, 15])
        #expect(PretrainStopRule(steps: 10, evalEvery: 4, targetAccuracy: 0, extraSteps: 5).maxSteps == 10)
    }

    @Test("run reports every step, validates on schedule and runs every step when the target is not reached")
    func runsToTheEnd() throws {
        let config = tinyRun(steps: 6, evalEvery: 4, target: 1)
        let trainer = try Pretrainer(config: config, task: try ArithmeticTask(config: config.task))
        var seen: [PretrainProgress] = []
        let outcome = try trainer.run { seen.append($0) }
        #expect(seen.map(\.step) == Array(1...6))
        #expect(seen.filter { $0.validationAccuracy != nil }.map(\.step) == [4, 6])
        #expect(seen.allSatisfy { $0.loss.isFinite && $0.loss > 0 })
        #expect(outcome.steps == 6 && trainer.stepsTaken == 6)
        #expect(!outcome.reachedTarget)
        #expect(outcome.validationAccuracy == seen.last?.validationAccuracy)
    }

    @Test("Short of the target after the schedule, it takes the extra steps at the floor rate, then stops")
    func extraStepsShortOfTheTarget() throws {
        let config = tinyRun(steps: 6, evalEvery: 4, target: 1, extra: 3)
        let trainer = try Pretrainer(config: config, task: try ArithmeticTask(config: config.task))
        var seen: [PretrainProgress] = []
        let outcome = try trainer.run { seen.append($0) }
        #expect(seen.map(\.step) == Array(1...9))
        #expect(seen.filter { $0.validationAccuracy != nil }.map(\.step) == [4, 6, 8, 9])
        #expect(outcome.steps == 9 && !outcome.reachedTarget)
    }

    @Test("Validation problems are the held-out split's last ones, disjoint from the reported ones")
    func validationSplit() throws {
        let config = tinyRun(steps: 1, evalEvery: 0)
        let trainer = try Pretrainer(config: config, task: try ArithmeticTask(config: config.task))
        let evaluated = Set(trainer.dataset.heldOut(prefix: config.pretrain.evalSize))
        let validation = Set(trainer.dataset.heldOut(suffix: config.pretrain.validationSize))
        #expect(evaluated.count == 20 && validation.count == 20)
        #expect(evaluated.isDisjoint(with: validation))
        #expect(try trainer.validate(count: 20).n == 20)
    }

    @Test("Config: eval and validation problems must both fit in the held-out split to pretrain")
    func validationMustFit() throws {
        var config = tinyRun(steps: 1, evalEvery: 0)
        try config.validatePretrainSplits()
        config.pretrain.validationSize = 21
        try config.validate()  // fine-tuning runs need not satisfy it
        #expect(throws: ConfigError.self) { try config.validatePretrainSplits() }
        do {
            try config.validatePretrainSplits()
        } catch {
            #expect(error.path == "pretrain.validation_size")
        }
        #expect(throws: ConfigError.self) {
            try Pretrainer(config: config, task: try ArithmeticTask(config: config.task))
        }
        config.pretrain.validationSize = 20
        config.pretrain.targetAccuracy = 1.5
        #expect(throws: ConfigError(path: "pretrain.target_accuracy", "must be in [0, 1] (0 = off), got 1.5"))
        {
            try config.validate()
        }
    }

    @Test("A reference trained on another task is refused; the same task or no task entry passes")
    func referenceTask() throws {
        let config = tinyRun(steps: 1, evalEvery: 0)
        let trainer = try Pretrainer(config: config, task: try ArithmeticTask(config: config.task))
        let path = FileManager.default.temporaryDirectory.appendingPathComponent(
            "rein-pretrainer-\(UUID().uuidString).safetensors"
        ).path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try trainer.save(to: path)
        let (_, metadata) = try Checkpoint.load(from: path)
        try checkReferenceTask(metadata: metadata, path: path, task: config.task)
        #expect(throws: ReferenceTaskMismatch.self) {
            try checkReferenceTask(metadata: metadata, path: path, task: .multiply)
        }
        do {
            try checkReferenceTask(metadata: metadata, path: path, task: .multiply)
        } catch {
            #expect(error.description.contains(path))
            #expect(error.description.contains("operations mul"))
        }
        var untagged = metadata
        untagged[checkpointTaskKey] = nil
        try checkReferenceTask(metadata: untagged, path: path, task: .multiply)
        untagged[checkpointTaskKey] = "not json"
        #expect(throws: ReferenceTaskMismatch.self) {
            try checkReferenceTask(metadata: untagged, path: path, task: config.task)
        }
    }
}
