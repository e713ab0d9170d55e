/// The seeded, disjoint training and held-out problem sets of a task.
///
/// Both splits are drawn from one ``TaskRandom`` stream of ``ArithmeticTaskConfig/seed``: first
/// the held-out problems, then the training problems, each by ``ArithmeticTask/randomProblem(using:)``
/// and redrawn whenever it is already in either split. Hence:
/// - the same configuration gives the same splits, in the same order, on every platform;
/// - no problem is in both splits, and neither split repeats a problem;
/// - the held-out split does not depend on `train_size`, and a larger `train_size` extends a
///   smaller one (it is a prefix), so runs that differ only in training size evaluate on the
///   same problems.
public struct ArithmeticDataset: Sendable {
    /// The task the problems belong to.
    public let task: ArithmeticTask
    /// ``ArithmeticTaskConfig/trainSize`` distinct problems for pretraining and RL prompts.
    public let train: [ArithmeticProblem]
    /// ``ArithmeticTaskConfig/heldOutSize`` distinct problems for evaluation, none in ``train``.
    public let heldOut: [ArithmeticProblem]

    /// Draws the splits of `task` (fast: about a microsecond per problem in release builds).
    public init(task: ArithmeticTask) {
        let config = task.config
        var random = TaskRandom(seed: config.seed, stream: 1)
        var seen = Set<ProblemKey>(minimumCapacity: config.heldOutSize + config.trainSize)
        func draw(_ count: Int) -> [ArithmeticProblem] {
            var problems: [ArithmeticProblem] = []
            problems.reserveCapacity(count)
            while problems.count < count {
                let key = task.randomOperands(using: &random)
                if seen.insert(key).inserted {
                    problems.append(task.problem(key.lhs, key.operation, key.rhs))
                }
            }
            return problems
        }
        self.task = task
        self.heldOut = draw(config.heldOutSize)
        self.train = draw(config.trainSize)
    }

    /// The first `count` held-out problems (all of them if `count` is nil or larger): a fixed,
    /// random subset for quick evaluations.
    public func heldOut(prefix count: Int?) -> ArraySlice<ArithmeticProblem> {
        heldOut.prefix(count ?? heldOut.count)
    }

    /// The last `count` held-out problems (all of them if `count` is larger): a validation set
    /// for decisions such as when to stop pretraining, disjoint from ``heldOut(prefix:)`` as long
    /// as the two counts add up to at most ``ArithmeticTaskConfig/heldOutSize``.
    public func heldOut(suffix count: Int) -> ArraySlice<ArithmeticProblem> {
        heldOut.suffix(count)
    }

    /// Supervised examples of every training problem, in split order.
    public var trainExamples: [SupervisedExample] { train.map(\.supervisedExample) }

    /// An endless, seeded stream of padded minibatches of training examples for pretraining.
    public func supervisedBatches(batchSize: Int, seed: UInt64) -> SupervisedBatcher {
        SupervisedBatcher(
            examples: trainExamples, batchSize: batchSize, padID: task.tokenizer.pad, seed: seed)
    }

    /// An endless, seeded stream of training problems for RL prompts (see ``EpochSampler``).
    public func trainProblems(seed: UInt64) -> EpochSampler<ArithmeticProblem> {
        EpochSampler(train, seed: seed)
    }
}
