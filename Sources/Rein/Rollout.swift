import ReinTasks

/// One sampled completion of one prompt, as a rollout worker produces it and the learner consumes
/// it: plain values, so it can cross a process boundary unchanged.
public struct Rollout: Sendable, Hashable, Codable {
    /// Unique id of the sample (for the sample ledger).
    public var id: UInt64
    /// Samples of the same prompt share a group id; the GRPO baseline is taken within a group.
    public var group: Int
    /// The problem's prompt tokens.
    public var prompt: [Int32]
    /// Generated tokens that count (up to and including the first end token).
    public var completion: [Int32]
    /// log μ(y_t | s_t) of each completion token under the sampling distribution actually used.
    public var behaviourLogProbs: [Float]
    /// The policy version that produced each completion token.
    public var versions: [Int]
    /// The task's reward.
    public var reward: Double
    /// How the completion ended.
    public var outcome: AnswerOutcome
    /// log π_ref(y_t | s_t) of each completion token, when the sampler scored the reference
    /// (``RolloutSampler`` with a reference): the learner then skips its own reference forward.
    public var referenceLogProbs: [Float]?
    /// log π_ref(· | s_t) over the vocabulary at each completion position (completion.count ×
    /// vocab, row after row), with ``referenceLogProbs``: for the learner's exact KL metric.
    public var referenceRows: [Float]?

    public init(
        id: UInt64, group: Int, prompt: [Int32], completion: [Int32], behaviourLogProbs: [Float],
        versions: [Int], reward: Double, outcome: AnswerOutcome
    ) {
        self.id = id
        self.group = group
        self.prompt = prompt
        self.completion = completion
        self.behaviourLogProbs = behaviourLogProbs
        self.versions = versions
        self.reward = reward
        self.outcome = outcome
    }

    /// The first sample id of batch `index`, attempt `attempt`, in every launch mode (ids stay
    /// unique when a lost batch is sampled again; attempt 0 of step `s` starts at `s << 20`).
    public static func firstID(index: Int, attempt: Int) -> UInt64 {
        UInt64(index) << 20 | UInt64(attempt) << 16
    }

    /// The oldest version among the completion's tokens.
    public var oldestVersion: Int { versions.min() ?? 0 }
}

/// A learner's unit of work: whole groups of rollouts (`groupSize` consecutive rollouts per group).
public struct RolloutBatch: Sendable, Hashable, Codable {
    public var rollouts: [Rollout]
    public var groupSize: Int

    public init(rollouts: [Rollout], groupSize: Int) {
        precondition(groupSize > 0 && rollouts.count % groupSize == 0, "a batch holds whole groups")
        self.rollouts = rollouts
        self.groupSize = groupSize
    }

    /// Completion tokens in the batch.
    public var tokenCount: Int { rollouts.reduce(0) { $0 + $1.completion.count } }
}
