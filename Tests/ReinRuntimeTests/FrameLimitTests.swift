import Foundation
import Rein
import ReinActors
import ReinModel
import ReinRuntime
import ReinTasks
import Testing

/// The inbound frame limit of a run's nodes is derived from the run, not a fixed 16 MiB: every
/// legitimate frame fits, and nothing much bigger does.
@Suite("Frame limits derived from the run")
struct FrameLimitTests {
    /// The largest batch the run can produce: every row a one-token prompt and a completion that
    /// fills the context, with the reference scored (a row of `vocab` log-probs per token).
    static func largestBatch(_ config: RunConfig, model: GPTConfig) -> RolloutBatch {
        let rows = config.train.promptsPerStep * config.train.groupSize
        let length = model.context - 1
        let rollouts = (0..<rows).map { r in
            var rollout = Rollout(
                id: UInt64.max - UInt64(r), group: Int.max, prompt: [Int32(model.vocab - 1)],
                completion: Array(repeating: Int32(model.vocab - 1), count: length),
                behaviourLogProbs: Array(repeating: -.greatestFiniteMagnitude, count: length),
                versions: Array(repeating: Int.max, count: length), reward: -.greatestFiniteMagnitude,
                outcome: AnswerOutcome.allCases.max { $0.rawValue.utf8.count < $1.rawValue.utf8.count }!)
            rollout.referenceLogProbs = Array(repeating: -1, count: length)
            rollout.referenceRows = Array(repeating: -1, count: length * model.vocab)
            return rollout
        }
        return RolloutBatch(rollouts: rollouts, groupSize: config.train.groupSize)
    }

    /// Issue 19: a learner's bound sockets kept 64 connections whatever the run, so the 65th
    /// worker was refused; they keep `runtime.max_workers` plus the operator's connections.
    @Test(arguments: [1, 64, 256, 1000])
    func boundSocketsKeepAConnectionPerWorkerAndTheOperators(workers: Int) {
        var config = RunConfig()
        config.runtime.maxWorkers = workers
        let model = config.gptConfig(vocab: 16)
        #expect(
            WireLimits.forRun(config, model: model).maxConnections
                == workers + RuntimeConfig.operatorConnections)
    }

    @Test(arguments: [false, true])
    func everyLegitimateFrameOfARunFitsItsLimit(defaultModel: Bool) throws {
        var (config, reference, _) = try tinyRun(steps: 1)
        var model = reference.config
        if defaultModel {
            config = RunConfig()
            model = config.gptConfig(vocab: try ArithmeticTask(config: config.task).tokenizer.vocabSize)
        }
        let limits = WireLimits.forRun(config, model: model)
        let encoder = BinaryEncoder()
        // The worker's largest inbound frame: the join reply, policy and reference weights.
        let weights = PolicyWeights(
            version: .max, values: Array(repeating: 1, count: model.parameterCount))
        let join = try encoder.encode(
            JoinReply(
                weights: weights, broadcast: "tcp://[2001:db8::1]:65535", keepVersions: .max,
                samples: "tcp://[2001:db8::1]:65535", reference: weights))
        #expect(join.count <= limits.maxFrameBytes)
        // The learner's: a sample batch, on the stream or as a deliver argument.
        let batch = Self.largestBatch(config, model: model)
        let frames = SampleBatchLayout.frames(
            SampleColumns(
                batch, worker: .random(), index: .max, attempt: .max, incarnation: .max,
                token: .random()))
        // All the frames of the batch together, so also the largest of them.
        let columns = frames.flatMap(\.bytes)
        let argument = try encoder.encode(batch)
        let bound = SampleColumns.maximumEncodedBytes(
            rows: batch.rollouts.count, context: model.context, vocab: model.vocab)
        #expect(
            columns.count <= bound && argument.count <= bound,
            "\(columns.count), \(argument.count) > \(bound)")
        #expect(max(join.count, columns.count, argument.count) <= limits.maxFrameBytes)
        // And the limit is what the run needs plus the 1 MiB margin, not more.
        #expect(limits.maxFrameBytes <= max(join.count, bound) + (1 << 20))
        if defaultModel {
            #expect(limits.maxFrameBytes < WireLimits.default.maxFrameBytes, "smaller than the fixed 16 MiB")
        }
    }
}
