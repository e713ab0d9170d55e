import Foundation
import ReinModel
import ReinTasks

/// Supervised pretraining of the reference policy π_ref: next-token cross-entropy on the answer
/// tokens (and the end token) of task examples.
public final class Pretrainer {
    public let config: RunConfig
    public let task: ArithmeticTask
    public let dataset: ArithmeticDataset
    public let model: GPTModel
    private var optimizer: AdamW
    private let schedule: LRSchedule
    private var batches: SupervisedBatcher
    private let evaluator: RolloutSampler

    public init(config: RunConfig, task: ArithmeticTask) throws {
        try config.validatePretrainSplits()
        self.config = config
        self.task = task
        self.dataset = ArithmeticDataset(task: task)
        let gpt = config.gptConfig(vocab: task.tokenizer.vocabSize)
        let parameters = try GPTParameters(config: gpt, seed: config.seed)
        self.model = GPTModel(parameters: parameters, threads: config.threads)
        let p = config.pretrain
        self.optimizer = AdamW(
            layout: parameters.layout,
            config: AdamWConfig(beta2: Float(p.beta2), weightDecay: Float(p.weightDecay)),
            threads: config.threads)
        self.schedule = LRSchedule(
            maxLR: Float(p.lr), minLR: Float(p.minLR), warmupSteps: p.warmupSteps, totalSteps: p.steps)
        self.batches = dataset.supervisedBatches(batchSize: p.batchSize, seed: config.seed)
        self.evaluator = RolloutSampler(
            task: task, config: gpt, temperature: 1, topK: 0, threads: config.threads)
    }

    /// One optimizer step; returns the mean cross-entropy (nats per answer token) before the step.
    public func step() throws -> Double {
        let batch = batches.next()
        let tokens = try TokenBatch(
            tokens: batch.int32Tokens, batch: batch.rows, length: batch.length, lengths: batch.lengths)
        let out = try model.forward(tokens)
        let mask = batch.targetMask
        let count = max(1, mask.count(where: { $0 }))
        var loss = 0.0
        var dLogProbs = [Float](repeating: 0, count: mask.count)
        for i in mask.indices where mask[i] {
            loss -= Double(out.logProbs[i])
            dLogProbs[i] = -1 / Float(count)
        }
        model.zeroGradients()
        try model.backward(dLogProbs: dLogProbs)
        var grads = model.gradients
        _ = clipGradientNorm(&grads, maxNorm: Float(config.pretrain.gradClip))
        optimizer.step(params: &model.parameters.values, grads: grads, lr: schedule(optimizer.stepCount))
        return loss / Double(count)
    }

    /// Optimizer steps taken so far.
    public var stepsTaken: Int { optimizer.stepCount }

    /// Runs ``step()`` until greedy accuracy on the validation problems (the last
    /// `pretrain.validation_size` held-out problems, disjoint from the first `pretrain.eval_size`
    /// that ``evaluate(count:)`` reports) reaches `pretrain.target_accuracy`, for at most
    /// `pretrain.steps` and then, short of the target, at most `pretrain.extra_steps` more at
    /// `pretrain.min_lr` (see ``PretrainStopRule``). Validation runs every `pretrain.eval_every`
    /// steps and at the end of each phase. `report` sees every step (with the validation accuracy
    /// on the steps that have one).
    public func run(report: (PretrainProgress) throws -> Void) throws -> PretrainOutcome {
        let p = config.pretrain
        let rule = PretrainStopRule(
            steps: p.steps, evalEvery: p.evalEvery, targetAccuracy: p.targetAccuracy, extraSteps: p.extraSteps)
        var validation: Double?
        while stepsTaken < rule.maxSteps {
            var progress = PretrainProgress(step: stepsTaken + 1, loss: try step())
            if rule.validates(after: progress.step) {
                progress.validationAccuracy = try validate(count: p.validationSize).accuracy
                validation = progress.validationAccuracy
            }
            try report(progress)
            if rule.reachedTarget(progress.validationAccuracy) {
                return PretrainOutcome(
                    steps: progress.step, validationAccuracy: validation, reachedTarget: true)
            }
        }
        return PretrainOutcome(steps: stepsTaken, validationAccuracy: validation, reachedTarget: false)
    }

    /// Greedy accuracy on the last `count` held-out problems (the validation set of ``run(report:)``).
    public func validate(count: Int) throws -> EvaluationResult {
        try evaluator.evaluate(dataset.heldOut(suffix: count), parameters: model.parameters)
    }

    /// Greedy accuracy on the first `count` held-out problems.
    public func evaluate(count: Int) throws -> EvaluationResult {
        try evaluator.evaluate(dataset.heldOut(prefix: count), parameters: model.parameters)
    }

    /// Sampled (temperature 1) accuracy on the first `count` held-out problems.
    public func evaluateSampled(count: Int, seed: UInt64) throws -> EvaluationResult {
        try evaluator.evaluate(
            dataset.heldOut(prefix: count), parameters: model.parameters, temperature: 1, seed: seed)
    }

    /// Saves the current weights as the reference checkpoint (with tokenizer, task and version 0).
    public func save(to path: String) throws {
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        }
        let file = Checkpoint.encode(
            model.parameters, metadata: try checkpointMetadata(task: task, version: 0))
        try RunFolder.writeAtomically(to: path) { try file.write(to: $0) }
    }
}

/// When ``Pretrainer/run(report:)`` measures validation accuracy and when it stops.
///
/// The schedule's `steps`, then — only with a target, and only while it is not reached — up to
/// `extraSteps` more (the learning rate stays at its floor after the cosine). The default task is
/// learnt in a sudden jump: seed 1 of the default configuration jumps at step ~2,900 of 3,000 with
/// oneDNN's kernels and the baseline GELU, and had not jumped by step 3,000 with the AVX2 GELU
/// (54.4% held-out), so a recipe without the extra steps gave a weak reference on some machines.
public struct PretrainStopRule: Sendable, Hashable {
    /// Optimizer steps of the schedule.
    public var steps: Int
    /// Validate every this many steps (0: only at the end of each phase).
    public var evalEvery: Int
    /// Stop once a validation accuracy is at least this (0: never stop early).
    public var targetAccuracy: Double
    /// Steps past `steps` while the target is not reached (ignored without a target).
    public var extraSteps: Int

    public init(steps: Int, evalEvery: Int, targetAccuracy: Double, extraSteps: Int = 0) {
        (self.steps, self.evalEvery, self.targetAccuracy) = (steps, evalEvery, targetAccuracy)
        self.extraSteps = targetAccuracy > 0 ? extraSteps : 0
    }

    /// The most optimizer steps.
    public var maxSteps: Int { steps + extraSteps }

    /// Whether validation runs after optimizer step `step` (1-based): every `evalEvery` steps, and
    /// after the schedule's last step and the very last one.
    public func validates(after step: Int) -> Bool {
        step == steps || step == maxSteps || (evalEvery > 0 && step % evalEvery == 0)
    }

    /// Whether a validation accuracy (nil: none measured at this step) ends the run.
    public func reachedTarget(_ accuracy: Double?) -> Bool {
        guard targetAccuracy > 0, let accuracy else { return false }
        return accuracy >= targetAccuracy
    }
}

/// One step of ``Pretrainer/run(report:)``.
public struct PretrainProgress: Sendable, Hashable {
    /// Optimizer steps taken (1-based: the step just finished).
    public var step: Int
    /// Mean cross-entropy of the step's batch, before the update (nats per answer token).
    public var loss: Double
    /// Greedy accuracy on the validation problems, on the steps that measure it.
    public var validationAccuracy: Double?
}

/// How ``Pretrainer/run(report:)`` ended.
public struct PretrainOutcome: Sendable, Hashable {
    /// Optimizer steps taken.
    public var steps: Int
    /// The last validation accuracy measured (nil if none was).
    public var validationAccuracy: Double?
    /// Whether it stopped because validation accuracy reached `pretrain.target_accuracy`.
    public var reachedTarget: Bool
}

/// The metadata key of the task a checkpoint was trained on (JSON of ``ArithmeticTaskConfig``).
public let checkpointTaskKey = "task"

/// Checks that a reference checkpoint was trained on `task`: a policy trained on one task and
/// fine-tuned on another would run without an error and mean nothing. A checkpoint without a task
/// entry (not written by Rein's pretrainer or trainer) passes.
public func checkReferenceTask(
    metadata: [String: String], path: String, task: ArithmeticTaskConfig
) throws(ReferenceTaskMismatch) {
    guard let json = metadata[checkpointTaskKey] else { return }
    guard let stored = try? JSONDecoder().decode(ArithmeticTaskConfig.self, from: Data(json.utf8)) else {
        throw ReferenceTaskMismatch(path: path, stored: json, expected: task)
    }
    guard stored == task else { throw ReferenceTaskMismatch(path: path, stored: json, expected: task) }
}

/// A reference checkpoint trained on another task than the run's.
public struct ReferenceTaskMismatch: Error, CustomStringConvertible, Equatable {
    /// The checkpoint.
    public var path: String
    /// Its task entry, as stored.
    public var stored: String
    /// The run's task.
    public var expected: ArithmeticTaskConfig

    public var description: String {
        let operations = expected.operations.map(\.rawValue).joined(separator: ",")
        return
            "reference \(path) was trained on another task (\(stored)) than this run's "
            + "(operations \(operations), digits \(expected.minDigits)...\(expected.maxDigits)); "
            + "pretrain one for this task (same config and --task)"
    }
}

/// The metadata Rein writes into every policy checkpoint.
func checkpointMetadata(task: ArithmeticTask, version: Int) throws -> [String: String] {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    return [
        Checkpoint.tokenizerKey: task.tokenizer.jsonDescription,
        Checkpoint.policyVersionKey: "\(version)",
        checkpointTaskKey: String(decoding: try encoder.encode(task.config), as: UTF8.self),
    ]
}
