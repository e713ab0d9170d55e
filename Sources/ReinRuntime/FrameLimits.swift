import Rein
import ReinActors
import ReinModel

extension SampleColumns {
    /// An upper bound of the bytes a batch of `rows` rollouts of a model with `context` positions
    /// and `vocab` token ids encodes to — as the frames of ``SampleBatchLayout`` on the sample
    /// stream (their total, so also the largest of them), or as the
    /// `RolloutBatch` argument of a `deliver` call: every row's prompt and completion within the
    /// context, every completion token with its log-prob, version, reference log-prob and
    /// reference row (`vocab` floats), plus the per-row fields and their keys.
    public static func maximumEncodedBytes(rows: Int, context: Int, vocab: Int) -> Int {
        let perToken = 4 + 4 + 4 + 8 + 4 + 4 * vocab  // prompt or completion, μ, version, π_ref, row
        let perRow = 512 + context * perToken  // ids, groups, offsets, reward, outcome, keys
        return (64 << 10) + rows * perRow
    }
}

extension WireLimits {
    /// The limits of every inbound socket of a run's learner and workers: a frame may be as large
    /// as the largest legitimate one — a join reply (the policy and reference weights,
    /// ``forWeights(parameterCount:)``) or a sample batch of the run
    /// (``SampleColumns/maximumEncodedBytes(rows:context:vocab:)``) — plus 1 MiB of headers and
    /// envelope, rather than a fixed size. Bound sockets keep `runtime.max_workers` connections
    /// plus ``Rein/RuntimeConfig/operatorConnections``.
    public static func forRun(_ config: RunConfig, model: GPTConfig) -> WireLimits {
        var limits = WireLimits.forWeights(parameterCount: model.parameterCount)
        let batch = SampleColumns.maximumEncodedBytes(
            rows: config.train.promptsPerStep * config.train.groupSize, context: model.context,
            vocab: model.vocab)
        limits.maxFrameBytes = max(limits.maxFrameBytes, batch + (1 << 20))
        limits.maxConnections = config.runtime.maxWorkers + RuntimeConfig.operatorConnections
        return limits
    }
}
