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
        self.config = config
        self.task = task
        self.dataset = ArithmeticDataset(task: task)
        let gpt = config.gptConfig(vocab: task.tokenizer.vocabSize)
        let parameters = try GPTParameters(config: gpt, seed: config.seed)
        self.model = GPTModel(parameters: parameters, threads: config.threads)
        let p = config.pretrain
        self.optimizer = AdamW(
            layout: parameters.layout, config: AdamWConfig(weightDecay: Float(p.weightDecay)),
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
        try RunFolder.writeAtomically(Data(file.serialized()), to: path)
    }
}

/// The metadata Rein writes into every policy checkpoint.
func checkpointMetadata(task: ArithmeticTask, version: Int) throws -> [String: String] {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    return [
        Checkpoint.tokenizerKey: task.tokenizer.jsonDescription,
        Checkpoint.policyVersionKey: "\(version)",
        "task": String(decoding: try encoder.encode(task.config), as: UTF8.self),
    ]
}
