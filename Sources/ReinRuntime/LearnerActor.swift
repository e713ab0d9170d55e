import Distributed
import Foundation
import Logging
import Rein
import ReinActors
import ReinModel
import ReinTasks

/// The learner as a distributed actor: hands out batch indices to rollout workers, admits the
/// batches they deliver under `max_staleness`, trains them in index order and keeps the sample
/// ledger.
///
/// Batch `s` is a pure function of (seed, `s`, weights version): its prompts, sampling seed and
/// sample ids are those of step `s` of the single-process ``Rein/Trainer``. Index `s` is assigned
/// only while `s - consumed <= max_staleness` (`consumed`: batches trained or dropped so far), so
/// with `max_staleness: 0` the run is synchronous and on-policy and equals the single-process run.
/// A batch whose worker dies before delivering it is counted lost and its index assigned again.
public distributed actor LearnerActor {
    public typealias ActorSystem = ReinActorSystem

    /// The well-known name the learner is registered under on its node.
    public static let name = "learner"

    private struct Assignment {
        var worker: NodeID
        var attempt: Int
        var version: Int
        var count: Int
    }

    private let config: RunConfig
    /// The model and optimizer; touched only by the training task (see ``trainLoop()``).
    private let core: LearnerCore
    /// The policy version after the last completed step.
    private var version = 0
    /// The weights of ``version``.
    private var current: GPTParameters
    /// Whether the training task is running.
    private var training = false
    /// The error that stopped training, rethrown by ``isFinished()``.
    private var failure: RuntimeError?
    private let logger: Logger
    private let batchSize: Int
    private let broadcaster: WeightBroadcaster?
    /// Batches to train (or drop) before the run is over: `train.steps`, or fewer after ``drain()``.
    private var end: Int
    private var ledger = RuntimeLedger()
    private var nextFresh = 0
    private var retry: [Int] = []
    private var attempts: [Int: Int] = [:]
    private var assigned: [Int: Assignment] = [:]
    private var delivered: [Int: (batch: RolloutBatch, version: Int)] = [:]
    private var consumed = 0
    private var metrics: [StepMetrics] = []
    private var workers: Set<NodeID> = []
    /// Recent weights by version, oldest first (for lag injection).
    private var ring: [(version: Int, parameters: GPTParameters)]
    /// Workers told that the run is over.
    private var released: Set<NodeID> = []
    private var fetches = 0
    /// Where workers push sample batches (a ``SampleSink``), if anywhere.
    private var samplesEndpoint: String?
    private let clock = ContinuousClock()
    /// When the first worker joined (the start of the learner's working time).
    private var firstJoin: ContinuousClock.Instant?
    /// When the last batch was consumed.
    private var lastConsumed: ContinuousClock.Instant?
    /// Time spent in learner steps.
    private var busy = Duration.zero

    /// A learner starting from `reference` (also the KL reference) that trains `config.train.steps`
    /// batches.
    public init(
        actorSystem: ReinActorSystem, config: RunConfig, reference: GPTParameters,
        broadcaster: WeightBroadcaster? = nil, logger: Logger
    ) throws {
        self.actorSystem = actorSystem
        self.broadcaster = broadcaster
        self.config = config
        self.logger = logger
        self.end = config.train.steps
        self.batchSize = config.train.promptsPerStep * config.train.groupSize
        self.core = LearnerCore(
            try Learner(
                config: config.train, policy: reference, reference: reference, threads: config.threads))
        self.current = reference
        self.ring = [(0, reference)]
    }

    /// A learner registered on `system` under the well-known ``name``, where workers resolve it.
    public static func named(
        on system: ReinActorSystem, config: RunConfig, reference: GPTParameters,
        broadcaster: WeightBroadcaster? = nil, logger: Logger
    ) throws -> LearnerActor {
        try system.withName(name) {
            try LearnerActor(
                actorSystem: system, config: config, reference: reference, broadcaster: broadcaster,
                logger: logger)
        }
    }

    /// A worker joins (or rejoins): the current weights and version, and where new versions are
    /// broadcast (if they are).
    public distributed func join(worker: NodeID) -> JoinReply {
        workers.insert(worker)
        if firstJoin == nil { firstJoin = clock.now }
        logger.info("worker \(worker) joined at version \(version)")
        return JoinReply(
            weights: PolicyWeights(version: version, values: current.values),
            broadcast: broadcaster?.endpoint, keepVersions: config.train.injectLag + 2,
            samples: samplesEndpoint)
    }

    /// The weights of `version`, if the learner still has them (the current version, or one kept
    /// for lag injection): for workers that missed a broadcast.
    public distributed func fetchWeights(version wanted: Int) throws -> PolicyWeights {
        fetches += 1
        if wanted == version { return PolicyWeights(version: version, values: current.values) }
        guard let kept = ring.last(where: { $0.version == wanted }) else {
            throw RuntimeError(
                "weights of version \(wanted) are no longer kept (learner at \(version))")
        }
        return PolicyWeights(version: wanted, values: kept.parameters.values)
    }

    /// Seconds spent training and seconds from the first join to the last batch consumed.
    public distributed func utilisation() -> LearnerUtilisation {
        let wall = firstJoin.flatMap { start in lastConsumed.map { $0 - start } } ?? .zero
        return LearnerUtilisation(busySeconds: seconds(busy), wallSeconds: seconds(wall))
    }

    /// Tells joining workers to push their batches to `endpoint` (a ``SampleSink`` attached to
    /// this learner) instead of delivering them by call.
    public distributed func acceptSamples(at endpoint: String) { samplesEndpoint = endpoint }

    /// Weight fetches so far (broadcasts missed by workers).
    public distributed func fetchCount() -> Int { fetches }

    /// The next piece of work for `worker`, whose weights are at `haveVersion`.
    /// With `inline` false the order never carries weights (the worker gets them from the
    /// broadcast, or ``fetchWeights(version:)``).
    public distributed func requestWork(worker: NodeID, haveVersion: Int, inline: Bool = true) -> WorkOrder {
        guard consumed < end else {
            released.insert(worker)
            return WorkOrder(status: .finished)
        }
        let candidate: Int
        if let index = retry.min() {
            candidate = index
        } else if nextFresh < end {
            candidate = nextFresh
        } else {
            return WorkOrder(status: .wait)  // everything assigned; wait for the end or a loss
        }
        guard candidate - consumed <= aheadLimit else { return WorkOrder(status: .wait) }
        if candidate == nextFresh { nextFresh += 1 } else { retry.removeAll { $0 == candidate } }
        let attempt = attempts[candidate, default: 0]
        attempts[candidate] = attempt + 1
        let sampling = samplingWeights()
        assigned[candidate] = Assignment(
            worker: worker, attempt: attempt, version: sampling.version, count: batchSize)
        ledger.produced += batchSize
        ledger.inFlight += batchSize
        let weights =
            haveVersion == sampling.version || !inline
            ? nil : PolicyWeights(version: sampling.version, values: sampling.parameters.values)
        return WorkOrder(
            status: .sample, index: candidate, attempt: attempt, version: sampling.version, weights: weights)
    }

    /// How far past the last trained batch indices may be handed out: `max_staleness` minus the
    /// lag injected on purpose (so injected lag alone never gets a batch dropped).
    private var aheadLimit: Int { max(0, config.train.maxStaleness - config.train.injectLag) }

    /// The weights to sample with: the newest kept version at least `inject_lag` versions older
    /// than the learner (as ``Rein/Trainer`` does).
    private func samplingWeights() -> (version: Int, parameters: GPTParameters) {
        let target = version - config.train.injectLag
        return ring.last(where: { $0.version <= target }) ?? ring[0]
    }

    /// Keeps the current weights in the ring and trims what lag injection can no longer use.
    private func remember() {
        guard config.train.injectLag > 0 else {
            ring = [(version, current)]
            return
        }
        ring.append((version, current))
        let oldestNeeded = version - config.train.injectLag
        while ring.count > 1, ring[1].version <= oldestNeeded { ring.removeFirst() }
    }

    /// Whether batch `index` (attempt `attempt`) is assigned to `worker` now, i.e. whether
    /// ``deliver(worker:index:attempt:batch:)`` would take it (the sample stream refuses others
    /// before they reach it, counted and rate-limited).
    public distributed func expects(worker: NodeID, index: Int, attempt: Int) -> Bool {
        guard let assignment = assigned[index] else { return false }
        return assignment.worker == worker && assignment.attempt == attempt
    }

    /// `worker` delivers batch `index` (attempt `attempt`); trains every batch now ready in index order.
    public distributed func deliver(worker: NodeID, index: Int, attempt: Int, batch: RolloutBatch)
        async throws
    {
        guard let assignment = assigned[index], assignment.worker == worker, assignment.attempt == attempt
        else {
            // Its batch was given up as lost (and counted so) and reassigned: never trained.
            logger.warning("late batch \(index) attempt \(attempt) from \(worker) ignored")
            return
        }
        guard batch.rollouts.count == assignment.count else {
            throw RuntimeError(
                "batch \(index) has \(batch.rollouts.count) samples, expected \(assignment.count)")
        }
        assigned[index] = nil
        delivered[index] = (batch, assignment.version)
        if !training {
            training = true
            Task { await self.trainLoop() }
        }
    }

    /// Trains (or drops) delivered batches in index order while the next one is there. The step
    /// itself runs off the actor, so workers' calls are answered while the learner computes.
    private func trainLoop() async {
        defer { training = false }
        while let next = delivered.removeValue(forKey: consumed) {
            let batch = next.batch
            let n = batch.rollouts.count
            let lag = version - next.version
            var step = StepMetrics(step: consumed + 1, version: version)
            step.reward = batch.rollouts.reduce(0) { $0 + $1.reward } / Double(n)
            step.accuracy = Double(batch.rollouts.count(where: { $0.outcome == .correct })) / Double(n)
            step.responseLength = Double(batch.tokenCount) / Double(n)
            step.lagMean = Double(lag)
            step.lagMax = lag
            if lag > config.train.maxStaleness {
                ledger.dropped["stale", default: 0] += n
                step.dropped = n
                logger.warning("dropped \(n) samples of batch \(consumed) with lag \(lag) > max_staleness")
            } else {
                let t0 = clock.now
                let outcome = await core.step(batch)
                busy += clock.now - t0
                switch outcome {
                case .failure(let error):
                    failure = RuntimeError("learner step of batch \(consumed) failed: \(error)")
                    delivered[consumed] = next  // still in flight: the run fails with the error
                    return
                case .success(let (learned, parameters, newVersion)):
                    ledger.trained += n
                    step.learner = learned
                    version = newVersion
                    current = parameters
                }
            }
            ledger.inFlight -= n
            step.version = version
            actorSystem.policyVersion = UInt64(version)
            metrics.append(step)
            consumed += 1
            lastConsumed = clock.now
            remember()
            if let broadcaster, step.learner != nil {
                do {
                    try await broadcaster.publish(PolicyWeights(version: version, values: current.values))
                } catch {
                    logger.warning("weight broadcast of version \(version) failed: \(error)")
                }
            }
        }
    }

    /// Counts the batches `worker` holds as lost and makes their indices available again.
    public distributed func workerLost(_ worker: NodeID) {
        workers.remove(worker)
        for (index, assignment) in assigned where assignment.worker == worker {
            assigned[index] = nil
            ledger.inFlight -= assignment.count
            ledger.lost += assignment.count
            retry.append(index)
            logger.warning("worker \(worker) lost with batch \(index): \(assignment.count) samples lost")
        }
    }

    /// The sample ledger now.
    public distributed func currentLedger() -> RuntimeLedger { ledger }

    /// The policy version now.
    public distributed func currentVersion() -> Int { version }

    /// The current weights and version.
    public distributed func currentWeights() -> PolicyWeights {
        PolicyWeights(version: version, values: current.values)
    }

    /// Metrics of every batch trained or dropped so far, in index order.
    public distributed func stepMetrics() -> [StepMetrics] { metrics }

    /// Whether every batch of the run has been trained or dropped.
    /// - Throws: ``RuntimeError`` if a learner step failed.
    public distributed func isFinished() throws -> Bool {
        if let failure { throw failure }
        return consumed >= end && !training
    }

    /// Stops handing out new batch indices: the run ends once the batches already handed out are
    /// trained (or lost and resampled). For SIGTERM.
    public distributed func drain() {
        if nextFresh < end { logger.notice("draining: no new batches after \(nextFresh)") }
        end = min(end, nextFresh)
    }

    /// Gives up on everything still in flight (after a drain timed out): assigned batches count
    /// lost, delivered ones that could not be trained in order count dropped (`abandoned`); the
    /// run ends here.
    public distributed func abandonInFlight() {
        for (index, assignment) in assigned {
            ledger.inFlight -= assignment.count
            ledger.lost += assignment.count
            logger.warning("abandoned batch \(index) assigned to \(assignment.worker)")
        }
        for (_, waiting) in delivered {
            ledger.inFlight -= waiting.batch.rollouts.count
            ledger.dropped["abandoned", default: 0] += waiting.batch.rollouts.count
        }
        assigned = [:]
        delivered = [:]
        retry = []
        end = min(end, consumed)
    }

    /// Whether every worker still joined has been told that the run is over.
    public distributed func allWorkersReleased() -> Bool { workers.isSubset(of: released) }

    /// Workers currently joined.
    public distributed func workerCount() -> Int { workers.count }
}

/// The `Learner` with exclusive access by one training task at a time: ``LearnerActor`` starts at
/// most one ``LearnerActor`` training loop, and nothing else touches the learner.
final class LearnerCore: @unchecked Sendable {
    private let learner: Learner

    init(_ learner: Learner) { self.learner = learner }

    /// One learner step on a thread of its own (it is long and CPU-bound): the metrics, the new
    /// weights and version, or the error.
    func step(_ batch: RolloutBatch) async -> Result<(LearnerStepMetrics, GPTParameters, Int), any Error> {
        await withCheckedContinuation { continuation in
            let thread = Thread { [self] in
                let result = Result { () throws -> (LearnerStepMetrics, GPTParameters, Int) in
                    let learned = try learner.step(batch)
                    return (learned, learner.model.parameters, learner.version)
                }
                continuation.resume(returning: result)
            }
            thread.name = "rein-learner-step"
            thread.stackSize = 8 << 20
            thread.start()
        }
    }
}
