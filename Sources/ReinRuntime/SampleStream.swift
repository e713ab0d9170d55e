import Distributed
import Logging
import Rein
import ReinActors
import ReinTasks
import Synchronization
import ZeroMQ

/// The sampler settings a batch was drawn with: its behaviour log-probs are those of the
/// distribution after temperature and top-k, so they travel with the batch (bytes 88–103 of a
/// sample batch's header frame) and the learner takes only batches drawn with the run's own
/// settings (`train.temperature`, `train.top_k`).
public struct SamplerSettings: Sendable, Hashable, CustomStringConvertible {
    /// The sampling temperature (> 0; 1 samples the policy itself).
    public var temperature: Double
    /// How many of the most likely tokens may be drawn; 0: all of them.
    public var topK: Int

    /// Settings of `temperature` and `topK` (0: no top-k cut).
    public init(temperature: Double, topK: Int) {
        self.temperature = temperature
        self.topK = topK
    }

    /// The settings of a run's training config.
    public init(_ train: TrainConfig) { self.init(temperature: train.temperature, topK: train.topK) }

    public var description: String {
        "temperature \(temperature), top-k \(topK == 0 ? "off" : String(topK))"
    }
}

/// A delivered batch on the sample stream: who sent which assignment, and the rollouts as flat
/// columns. On the wire each column is one frame of raw little-endian elements
/// (``SampleBatchLayout``, <doc:SampleBatchWire>), so a batch is a handful of memcpys rather
/// than a value-by-value encoding of each rollout.
public struct SampleColumns: Sendable, Hashable {
    /// The delivering worker.
    public var worker: NodeID
    /// The batch index assigned.
    public var index: Int
    /// The assignment attempt.
    public var attempt: Int
    /// The incarnation of the learner that made the assignment.
    public var incarnation: UInt64
    /// The assignment's token from the work order (``Rein/AssignmentToken``): the proof that the
    /// batch comes from the worker it was assigned to.
    public var token: AssignmentToken
    /// Rollouts per group.
    public var groupSize: Int
    /// The temperature and top-k the behaviour log-probs were computed under.
    public var sampler: SamplerSettings
    /// Sample ids, one per row.
    public var ids: [UInt64]
    /// Group ids, one per row.
    public var groups: [Int]
    /// Row r's prompt is `prompts[promptOffsets[r]..<promptOffsets[r + 1]]`.
    public var promptOffsets: [Int]
    /// Every row's prompt tokens, concatenated.
    public var prompts: [Int32]
    /// Row r's completion, log-probs and versions span `completionOffsets[r]..<completionOffsets[r + 1]`.
    public var completionOffsets: [Int]
    /// Every row's completion tokens, concatenated.
    public var completions: [Int32]
    /// log μ of every completion token.
    public var behaviourLogProbs: [Float]
    /// The policy version of every completion token.
    public var versions: [Int]
    /// Rewards, one per row.
    public var rewards: [Double]
    /// Outcomes, one per row.
    public var outcomes: [AnswerOutcome]
    /// log π_ref of every completion token, when the worker scored the reference (else empty).
    public var referenceLogProbs: [Float] = []
    /// log π_ref(·|s) rows of every completion position, `referenceWidth` values each (else empty).
    public var referenceRows: [Float] = []
    /// The width of a reference row (the vocabulary), 0 when the reference was not scored.
    public var referenceWidth = 0

    /// Columns of no rows for assignment `index`/`attempt` (with its `token`) by learner
    /// `incarnation`, from `worker` (``SampleBatchLayout/decode(_:limits:)`` fills them in).
    init(
        worker: NodeID, index: Int, attempt: Int, incarnation: UInt64, token: AssignmentToken, groupSize: Int,
        sampler: SamplerSettings
    ) {
        self.sampler = sampler
        self.worker = worker
        self.index = index
        self.attempt = attempt
        self.incarnation = incarnation
        self.token = token
        self.groupSize = groupSize
        ids = []
        groups = []
        promptOffsets = [0]
        prompts = []
        completionOffsets = [0]
        completions = []
        behaviourLogProbs = []
        versions = []
        rewards = []
        outcomes = []
    }

    /// The columns of `batch`, assignment `index`/`attempt` (with its `token`) by learner
    /// `incarnation`, from `worker`, sampled with `sampler` (default: the default run's settings).
    public init(
        _ batch: RolloutBatch, worker: NodeID, index: Int, attempt: Int, incarnation: UInt64 = 0,
        token: AssignmentToken = .none, sampler: SamplerSettings = SamplerSettings(TrainConfig())
    ) {
        self.sampler = sampler
        self.incarnation = incarnation
        self.token = token
        self.worker = worker
        self.index = index
        self.attempt = attempt
        groupSize = batch.groupSize
        let rollouts = batch.rollouts
        ids = rollouts.map(\.id)
        groups = rollouts.map(\.group)
        // Sized once: every column is then filled by appends that never reallocate. Rows are read
        // in place (by index), never copied whole.
        var (promptTokens, tokens) = (0, 0)
        for r in rollouts.indices {
            promptTokens += rollouts[r].prompt.count
            tokens += rollouts[r].completion.count
        }
        promptOffsets = [0]
        promptOffsets.reserveCapacity(rollouts.count + 1)
        prompts = []
        prompts.reserveCapacity(promptTokens)
        completionOffsets = [0]
        completionOffsets.reserveCapacity(rollouts.count + 1)
        completions = []
        completions.reserveCapacity(tokens)
        behaviourLogProbs = []
        behaviourLogProbs.reserveCapacity(tokens)
        versions = []
        versions.reserveCapacity(tokens)
        for r in rollouts.indices {
            prompts += rollouts[r].prompt
            promptOffsets.append(prompts.count)
            completions += rollouts[r].completion
            behaviourLogProbs += rollouts[r].behaviourLogProbs
            versions += rollouts[r].versions
            completionOffsets.append(completions.count)
        }
        rewards = rollouts.map(\.reward)
        outcomes = rollouts.map(\.outcome)
        let scored = rollouts.indices.allSatisfy {
            rollouts[$0].referenceLogProbs?.count == rollouts[$0].completion.count
                && rollouts[$0].referenceRows != nil
        }
        if scored, let first = rollouts.firstIndex(where: { !$0.completion.isEmpty }),
            let rows = rollouts[first].referenceRows?.count
        {
            let width = rows / rollouts[first].completion.count
            if width > 0,
                rollouts.indices.allSatisfy({
                    rollouts[$0].referenceRows?.count == rollouts[$0].completion.count * width
                })
            {
                referenceWidth = width
                referenceLogProbs.reserveCapacity(tokens)
                referenceRows.reserveCapacity(tokens * width)
                for r in rollouts.indices {
                    referenceLogProbs += rollouts[r].referenceLogProbs ?? []
                    referenceRows += rollouts[r].referenceRows ?? []
                }
            }
        }
    }

    /// The batch back.
    /// - Throws: ``RuntimeError`` if the columns are inconsistent.
    public func batch() throws(RuntimeError) -> RolloutBatch {
        let n = ids.count
        guard groups.count == n, rewards.count == n, outcomes.count == n, promptOffsets.count == n + 1,
            completionOffsets.count == n + 1, promptOffsets.first == 0, completionOffsets.first == 0,
            promptOffsets.last == prompts.count,
            completionOffsets.last == completions.count, behaviourLogProbs.count == completions.count,
            versions.count == completions.count, groupSize > 0, n % groupSize == 0,
            zip(promptOffsets, promptOffsets.dropFirst()).allSatisfy({ $0 <= $1 }),
            zip(completionOffsets, completionOffsets.dropFirst()).allSatisfy({ $0 <= $1 }),
            referenceWidth >= 0,
            referenceWidth == 0
                ? referenceLogProbs.isEmpty && referenceRows.isEmpty
                : referenceLogProbs.count == completions.count
                    && referenceRows.count == completions.count * referenceWidth
        else { throw RuntimeError("sample batch \(index) from \(worker): inconsistent columns") }
        let width = referenceWidth
        // Each row's arrays are copied straight out of the columns' storage (no slice, so no
        // reference counting of the columns per row).
        func row<T>(_ column: UnsafeBufferPointer<T>, _ range: Range<Int>) -> [T] {
            Array(UnsafeBufferPointer(rebasing: column[range]))
        }
        let rollouts = prompts.withUnsafeBufferPointer { prompts in
            completions.withUnsafeBufferPointer { completions in
                behaviourLogProbs.withUnsafeBufferPointer { behaviourLogProbs in
                    versions.withUnsafeBufferPointer { versions in
                        referenceLogProbs.withUnsafeBufferPointer { referenceLogProbs in
                            referenceRows.withUnsafeBufferPointer { referenceRows in
                                (0..<n).map { r in
                                    let p = promptOffsets[r]..<promptOffsets[r + 1]
                                    let c = completionOffsets[r]..<completionOffsets[r + 1]
                                    var rollout = Rollout(
                                        id: ids[r], group: groups[r], prompt: row(prompts, p),
                                        completion: row(completions, c),
                                        behaviourLogProbs: row(behaviourLogProbs, c),
                                        versions: row(versions, c),
                                        reward: rewards[r], outcome: outcomes[r])
                                    if width > 0 {
                                        rollout.referenceLogProbs = row(referenceLogProbs, c)
                                        rollout.referenceRows = row(
                                            referenceRows, (c.lowerBound * width)..<(c.upperBound * width))
                                    }
                                    return rollout
                                }
                            }
                        }
                    }
                }
            }
        }
        return RolloutBatch(rollouts: rollouts, groupSize: groupSize)
    }
}

/// The learner's end of the ZeroMQ sample stream: a PULL socket whose batches are handed to the
/// learner as deliveries (with the same checks as ``LearnerActor/deliver(worker:index:attempt:token:incarnation:batch:)``).
final class ZMQSampleSource: SampleSource {
    private let receiver: BulkReceiver
    private let limits: WireLimits
    private let task = Mutex<Task<Void, Never>?>(nil)
    private let logger: Logger

    /// Binds `address`; nothing is delivered before ``attach(to:)``.
    /// - Parameter wire: CURVE security (the PULL is a CURVE server), limits (the frame limit must
    ///   hold the largest sample batch) and the rejection counters.
    init(context: ZMQContext, bind address: String, wire: WireOptions = WireOptions(), logger: Logger) {
        receiver = BulkReceiver(
            context: context, link: .bind(address), pattern: .pull, limits: wire.limits,
            security: wire.security,
            rejections: wire.rejections, logger: logger)
        limits = wire.limits
        self.logger = logger
    }

    /// Where rejected sample messages are counted.
    var rejections: WireRejections { receiver.rejections }

    /// Delivers what arrives to `learner`.
    func attach(to learner: LearnerActor) {
        let receiver = self.receiver
        let (limits, logger) = (self.limits, self.logger)
        let started = Task {
            do {
                for try await messages in receiver {
                    for message in messages {
                        await Self.deliver(message, to: learner, receiver: receiver, limits: limits)
                    }
                }
            } catch {
                logger.warning("sample stream stopped: \(error)")
            }
        }
        task.withLock { $0 = started }
    }

    /// Decodes and delivers one message; a payload that does not decode is counted as
    /// ``WireRejections/badPayload``, a batch the learner refuses as ``WireRejections/refused``
    /// (both logged at most once per second per peer).
    private static func deliver(
        _ message: BulkMessage, to learner: LearnerActor, receiver: BulkReceiver, limits: WireLimits
    ) async {
        let batch: RolloutBatch
        let columns: SampleColumns
        do {
            columns = try SampleBatchLayout.decode(message.frames, limits: limits)
            batch = try columns.batch()
        } catch {
            receiver.reject(message, reason: WireRejections.badPayload, error: error)
            return
        }
        do {
            try await deliverColumns(columns, batch, to: learner)
        } catch {
            receiver.reject(message, reason: WireRejections.refused, error: error)
        }
    }

    /// The bound endpoint (`tcp://127.0.0.1:41234`).
    func endpoint() async -> String { await receiver.endpoint() }

    /// Stops receiving.
    func close() {
        receiver.close()
        task.withLock { $0?.cancel() }
    }
}
