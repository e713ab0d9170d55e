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
///
/// The training split is a ``ProblemList``: it keeps each problem's operands and operation only
/// (24 bytes) and builds the ``ArithmeticProblem`` when it is read, so a process holding a dataset
/// (every rollout worker) does not keep two token arrays per training problem.
public struct ArithmeticDataset: Sendable {
    /// The task the problems belong to.
    public let task: ArithmeticTask
    /// ``ArithmeticTaskConfig/trainSize`` distinct problems for pretraining and RL prompts.
    public let train: ProblemList
    /// ``ArithmeticTaskConfig/heldOutSize`` distinct problems for evaluation, none in ``train``.
    public let heldOut: [ArithmeticProblem]

    /// Draws the splits of `task` (fast: about a microsecond per problem in release builds).
    public init(task: ArithmeticTask) {
        let config = task.config
        var random = TaskRandom(seed: config.seed, stream: 1)
        var seen = Set<ProblemKey>(minimumCapacity: config.heldOutSize + config.trainSize)
        func draw(_ count: Int) -> [ProblemKey] {
            var keys: [ProblemKey] = []
            keys.reserveCapacity(count)
            while keys.count < count {
                let key = task.randomOperands(using: &random)
                if seen.insert(key).inserted { keys.append(key) }
            }
            return keys
        }
        self.task = task
        self.heldOut = draw(config.heldOutSize).map { task.problem($0.lhs, $0.operation, $0.rhs) }
        self.train = ProblemList(task: task, keys: draw(config.trainSize))
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
        EpochSampler(Array(train), seed: seed)
    }
}

/// Problems of one task stored compactly: each as its operands and operation (24 bytes), its ``ArithmeticProblem`` (text and token arrays, a few hundred bytes on the heap)
/// built by ``ArithmeticTask/problem(_:_:_:)`` each time it is read. Reading is cheap (a few
/// hundred nanoseconds); collect a list into an array where problems are read many times.
public struct ProblemList: RandomAccessCollection, Sendable, Equatable {
    private let task: ArithmeticTask
    private let keys: [ProblemKey]

    init(task: ArithmeticTask, keys: [ProblemKey]) {
        self.task = task
        self.keys = keys
    }

    public var startIndex: Int { keys.startIndex }
    public var endIndex: Int { keys.endIndex }

    /// The problem at `position`, built from its operands.
    public subscript(position: Int) -> ArithmeticProblem {
        let key = keys[position]
        return task.problem(key.lhs, key.operation, key.rhs)
    }

    /// Bytes of the list's own storage (its keys), not counting the task.
    public var storageBytes: Int { keys.capacity * MemoryLayout<ProblemKey>.stride }

    /// Same problems in the same order (of the same task configuration).
    public static func == (a: ProblemList, b: ProblemList) -> Bool {
        a.keys == b.keys && a.task == b.task
    }
}
