import ReinTasks

/// Checks that a delivered batch is what its assignment asks for, from what the learner knows
/// without running a model: the problems of batch `index` are a pure function of the run
/// (``Trainer/problems(forStep:config:dataset:)``), and the task grades every completion.
///
/// A worker that holds an assignment and its token could otherwise make up rewards, outcomes,
/// prompts or log-probabilities and steer the policy. The audit catches every made-up value it can
/// recompute or bound, sample ids included (those of the assigned index and attempt); what it
/// cannot see is a well-formed batch sampled from other weights (the behaviour and reference
/// log-probabilities are only checked to be log-probabilities).
///
/// Pure and cheap (one grade per rollout and one pass over the floats): the learner runs it on
/// every delivery, through ``RunStateMachine/deliver(worker:index:attempt:token:incarnation:batch:now:audit:)``.
public struct BatchAudit: Sendable {
    /// Samples per prompt.
    public let groupSize: Int
    /// The task that grades completions (and bounds their length).
    public let task: ArithmeticTask
    /// The model's vocabulary size: every token is below it, and a reference row has this many
    /// entries per completion token.
    public let vocab: Int
    /// How far above 0 a log-probability may be (float rounding of a log-softmax); anything
    /// higher is not a log-probability.
    public static let logProbSlack: Float = 1e-4

    private let config: RunConfig
    private let dataset: ArithmeticDataset

    /// An audit of the batches of a run with `config` over `dataset` (of `task`), for a model with
    /// `vocab` tokens (the task tokenizer's by default).
    public init(config: RunConfig, dataset: ArithmeticDataset, task: ArithmeticTask, vocab: Int? = nil) {
        groupSize = config.train.groupSize
        self.task = task
        self.vocab = vocab ?? task.tokenizer.vocabSize
        self.config = config
        self.dataset = dataset
    }

    /// An audit of the batches of a run with `config` (its task and dataset built from
    /// `config.task`).
    /// - Throws: ``ArithmeticTaskConfigError`` if the task configuration is invalid.
    public init(config: RunConfig, vocab: Int? = nil) throws(ArithmeticTaskConfigError) {
        let task = try ArithmeticTask(config: config.task)
        self.init(config: config, dataset: ArithmeticDataset(task: task), task: task, vocab: vocab)
    }

    /// Why `batch`, delivered as batch `index` (attempt `attempt`) assigned with policy `version`,
    /// is not what an honest worker sends (``RefusalReason/forgedContents``), or nil if it is.
    public func check(_ batch: RolloutBatch, index: Int, attempt: Int, version: Int) -> RefusalReason? {
        check(batch, index: index, attempt: attempt, versions: TokenVersionRule(assigned: version))
    }

    /// Why `batch`, delivered as batch `index` (attempt `attempt`) whose token versions must follow
    /// `versions`, is not what an honest worker sends (``RefusalReason/forgedContents``), or nil.
    public func check(_ batch: RolloutBatch, index: Int, attempt: Int, versions: TokenVersionRule)
        -> RefusalReason?
    {
        problem(with: batch, index: index, attempt: attempt, versions: versions) == nil
            ? nil : .forgedContents
    }

    /// What is wrong with `batch` (delivered as batch `index`, attempt `attempt`, assigned with
    /// `version`), as one line; nil if nothing is.
    public func problem(with batch: RolloutBatch, index: Int, attempt: Int, version: Int) -> String? {
        problem(with: batch, index: index, attempt: attempt, versions: TokenVersionRule(assigned: version))
    }

    /// What is wrong with `batch` (delivered as batch `index`, attempt `attempt`, its token
    /// versions bound by `versions`), as one line; nil if nothing is.
    public func problem(with batch: RolloutBatch, index: Int, attempt: Int, versions: TokenVersionRule)
        -> String?
    {
        let expected = Trainer.problems(forStep: index, config: config, dataset: dataset)
        let firstID = Rollout.firstID(index: index, attempt: attempt)
        guard batch.groupSize == groupSize else {
            return "batch \(index) has groups of \(batch.groupSize), expected \(groupSize)"
        }
        guard batch.rollouts.count == expected.count * groupSize else {
            return
                "batch \(index) has \(batch.rollouts.count) rollouts, expected \(expected.count * groupSize)"
        }
        for (row, rollout) in batch.rollouts.enumerated() {
            // Sample ids are the assignment's: `firstID(index, attempt)` + row, as the sampler
            // numbers them (a made-up id could pass one sample off as another in the ledger's
            // and the tracker's records).
            guard rollout.id == firstID + UInt64(row) else {
                return
                    "batch \(index) rollout \(row): sample id \(rollout.id), expected \(firstID + UInt64(row))"
            }
            if let problem = problem(
                with: rollout, expected: expected[row / groupSize], group: row / groupSize, versions: versions
            ) {
                return "batch \(index) rollout \(row): \(problem)"
            }
        }
        return nil
    }

    private func problem(
        with rollout: Rollout, expected: ArithmeticProblem, group: Int, versions rule: TokenVersionRule
    ) -> String? {
        let n = rollout.completion.count
        guard rollout.group == group else { return "group \(rollout.group), expected \(group)" }
        guard rollout.prompt.elementsEqual(expected.prompt.map(Int32.init)) else {
            return "the prompt is not the problem's"
        }
        guard n <= task.maxAnswerTokens else {
            return "\(n) completion tokens, more than the task's \(task.maxAnswerTokens)"
        }
        guard rollout.completion.allSatisfy({ $0 >= 0 && Int($0) < vocab }) else {
            return "a completion token outside the vocabulary of \(vocab)"
        }
        let grade = task.grade(expected, completion: rollout.completion)
        guard grade.length == n else { return "tokens after the end token" }
        guard rollout.reward == grade.reward, rollout.outcome == grade.outcome else {
            return
                "reward \(rollout.reward) (\(rollout.outcome.rawValue)), graded \(grade.reward) (\(grade.outcome.rawValue))"
        }
        guard rollout.versions.count == n else { return "\(rollout.versions.count) versions for \(n) tokens" }
        if let violation = rule.violation(rollout.versions) { return "\(violation)" }
        guard rollout.behaviourLogProbs.count == n, Self.areLogProbs(rollout.behaviourLogProbs) else {
            return "behaviour log-probabilities that are not \(n) log-probabilities"
        }
        if let reference = rollout.referenceLogProbs {
            guard reference.count == n, Self.areLogProbs(reference) else {
                return "reference log-probabilities that are not \(n) log-probabilities"
            }
        }
        if let rows = rollout.referenceRows {
            guard rollout.referenceLogProbs != nil, rows.count == n * vocab, Self.areLogProbs(rows) else {
                return "reference rows that are not \(n) × \(vocab) log-probabilities"
            }
        }
        return nil
    }

    /// Whether every value is finite and at most 0 (within ``logProbSlack``).
    static func areLogProbs(_ values: [Float]) -> Bool {
        values.allSatisfy { $0.isFinite && $0 <= logProbSlack }
    }
}

/// The versions the tokens of one delivered sequence may carry — the audit's typed rule for
/// per-token versions (``BatchAudit`` and ``RunStateMachine`` both apply it).
///
/// Without partial rollouts every token carries the assigned version. With them
/// (`train.partial_rollouts`) a sequence may move to newer weights mid-way, and then: the first
/// token carries the assigned version, versions never decrease, none is newer than the learner's
/// current version, and each is a version whose weights the learner keeps (so the behaviour
/// distribution of every token can be rebuilt, and no token claims a version that never existed).
/// Anything else is refused as ``RefusalReason/forgedContents``.
public struct TokenVersionRule: Sendable, Hashable {
    /// The version the batch was assigned.
    public var assigned: Int
    /// Whether versions may change within a sequence.
    public var partialRollouts: Bool
    /// The learner's current version.
    public var learner: Int
    /// The versions whose weights the learner keeps (every version from the oldest one a batch in
    /// flight was assigned up to ``learner``).
    public var kept: [Int]

    /// The rule for a batch assigned `assigned`: all tokens of that version unless
    /// `partialRollouts`, then non-decreasing from it, up to `learner`, among `kept`.
    public init(assigned: Int, partialRollouts: Bool = false, learner: Int? = nil, kept: [Int]? = nil) {
        self.assigned = assigned
        self.partialRollouts = partialRollouts
        self.learner = learner ?? assigned
        self.kept = kept ?? [assigned]
    }

    /// What is wrong with a sequence whose tokens carry `versions`, or nil if nothing is.
    public func violation(_ versions: [Int]) -> TokenVersionViolation? {
        guard let first = versions.first else { return nil }
        guard first == assigned else { return .firstNotAssigned(first, assigned: assigned) }
        var previous = first
        for (t, v) in versions.enumerated().dropFirst() where v != previous {
            guard partialRollouts else { return .notAssigned(v, at: t, assigned: assigned) }
            guard v > previous else { return .decreasing(v, at: t, after: previous) }
            guard v <= learner else { return .newerThanLearner(v, at: t, learner: learner) }
            guard kept.contains(v) else { return .unknown(v, at: t) }
            previous = v
        }
        return nil
    }
}

/// Why a sequence's token versions break the ``TokenVersionRule``.
public enum TokenVersionViolation: Error, Sendable, Hashable, CustomStringConvertible {
    /// The first token does not carry the assigned version.
    case firstNotAssigned(Int, assigned: Int)
    /// A token carries another version than the assigned one, and partial rollouts are off.
    case notAssigned(Int, at: Int, assigned: Int)
    /// A token's version is older than the token before it.
    case decreasing(Int, at: Int, after: Int)
    /// A token claims a version the learner has not reached.
    case newerThanLearner(Int, at: Int, learner: Int)
    /// A token claims a version whose weights the learner does not keep (never broadcast).
    case unknown(Int, at: Int)

    /// How the learner counts a batch with such a sequence.
    public var reason: RefusalReason { .forgedContents }

    public var description: String {
        switch self {
        case .firstNotAssigned(let v, let assigned):
            "its first token has version \(v), not the assigned \(assigned)"
        case .notAssigned(let v, let t, let assigned):
            "token \(t) has version \(v), not the assigned \(assigned) (partial rollouts are off)"
        case .decreasing(let v, let t, let previous):
            "token \(t) has version \(v), older than the \(previous) before it"
        case .newerThanLearner(let v, let t, let learner):
            "token \(t) has version \(v), newer than the learner's \(learner)"
        case .unknown(let v, let t):
            "token \(t) has version \(v), which the learner does not keep"
        }
    }
}
