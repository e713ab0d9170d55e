import Distributed
import Foundation
import Logging
import Rein
import ReinActors
import ReinModel
import ReinTasks
import ReinTracker

/// The learner as a distributed actor: hands out batch indices to rollout workers, admits the
/// batches they deliver under `max_staleness`, trains them in index order and keeps the sample
/// ledger.
///
/// Batch `s` is a pure function of (seed, `s`, weights version): its prompts, sampling seed and
/// sample ids are those of step `s` of the single-process ``Rein/Trainer``. Index `s` is assigned
/// only while `s - consumed <= max_staleness` (`consumed`: batches trained or dropped so far), so
/// with `max_staleness: 0` the run is synchronous and on-policy and equals the single-process run.
/// A batch whose worker dies before delivering it is counted lost and its index assigned again.
///
/// With a run folder, the learner checkpoints every `train.checkpoint_every` batches and at the
/// end of the run (``checkpoint()``); a learner made from a ``LearnerCheckpoint`` continues that
/// run: same version numbering, metrics and ledger (samples in flight at the checkpoint count
/// lost). Every work order names the learner's *incarnation* (its node id): a batch assigned by an
/// earlier incarnation — a learner that crashed and was restarted — is refused on delivery and
/// counted in ``RuntimeLedger/refused``, never trained.
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
    /// Where checkpoints go (none without a folder).
    private let folder: RunFolder?
    /// The reference the run trains against (recorded in checkpoints).
    private let referenceIdentity: ReferenceIdentity
    /// π_ref's weights (the staleness tracker's reference rows).
    private let referenceWeights: GPTParameters
    /// The staleness tracker (`train.tracker_every` > 0): one line of `tracker.jsonl` in the run
    /// folder every `tracker_every` batches, before they are trained.
    private let tracker: StalenessTracker?
    /// Trained versus dropped samples, for the tracker's selection skew.
    private var selection = SelectionAccumulator()
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
    /// Metrics of the batches consumed, when there is no run folder. With one, each batch's line
    /// is appended to `metrics.jsonl` as it is consumed and nothing is kept in memory (a long run
    /// would otherwise grow the learner by every step's metrics).
    private var metrics: [StepMetrics] = []
    private var workers: Set<NodeID> = []
    /// Recent weights by version, oldest first (for lag injection).
    private var ring: [(version: Int, parameters: GPTParameters)]
    /// Workers told that the run is over.
    private var released: Set<NodeID> = []
    private var fetches = 0
    /// The checkpoint being written, if any (the next one waits for it).
    private var pendingWrite: Task<Void, any Error>?
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
    /// batches — or, given a checkpoint, continuing the run that wrote it.
    ///
    /// - Parameters:
    ///   - folder: where to write checkpoints (every `train.checkpoint_every` batches and on
    ///     ``checkpoint()``); `nil`: none.
    ///   - resume: a checkpoint of this run to continue from.
    /// - Throws: ``RuntimeError`` if `resume` was trained against another reference or model.
    public init(
        actorSystem: ReinActorSystem, config: RunConfig, reference: GPTParameters,
        broadcaster: WeightBroadcaster? = nil, folder: RunFolder? = nil, resume: LearnerCheckpoint? = nil,
        logger: Logger
    ) throws {
        self.actorSystem = actorSystem
        self.broadcaster = broadcaster
        self.config = config
        self.folder = folder
        self.logger = logger
        self.end = config.train.steps
        self.batchSize = config.train.promptsPerStep * config.train.groupSize
        let identity = ReferenceIdentity(reference, source: config.train.reference)
        self.referenceIdentity = identity
        self.referenceWeights = reference
        self.tracker = Self.makeTracker(config, logger: logger)
        guard let resume else {
            if let folder {
                try folder.write(Data(), to: RunFile.metrics.rawValue)
                try folder.remove(.tracker)
            }
            self.core = LearnerCore(
                try Learner(
                    config: config.train, policy: reference, reference: reference, threads: config.threads))
            self.current = reference
            self.ring = [(0, reference)]
            return
        }
        let state = resume.state
        guard state.reference.parameters == identity.parameters, state.reference.fnv1a64 == identity.fnv1a64
        else {
            throw RuntimeError(
                "the checkpoint was trained against reference \(state.reference), this learner has \(identity)"
            )
        }
        guard resume.policy.config == reference.config, resume.ring.count == state.ring.count,
            resume.ring.allSatisfy({ $0.config == reference.config })
        else {
            throw RuntimeError("the checkpoint's model does not match the reference's \(reference.config)")
        }
        let learner = try Learner(
            config: config.train, policy: resume.policy, reference: reference, threads: config.threads)
        try learner.restore(optimizer: resume.optimizer, version: state.version)
        self.core = LearnerCore(learner)
        self.version = state.version
        self.current = resume.policy
        self.ring =
            state.ring.isEmpty ? [(state.version, resume.policy)] : Array(zip(state.ring, resume.ring))
        self.consumed = state.consumed
        self.nextFresh = state.consumed
        self.attempts = state.attempts
        if let folder {
            try Self.continueMetrics(in: folder, consumed: state.consumed, checkpointed: state.metrics)
        } else {
            self.metrics = state.metrics
        }
        var ledger = state.ledger
        // Whatever was handed out then belongs to the incarnation that wrote the checkpoint: its
        // batches are refused if they ever arrive, so they count lost and their indices are
        // assigned again.
        ledger.lost += ledger.inFlight
        ledger.inFlight = 0
        self.ledger = ledger
        actorSystem.policyVersion = UInt64(state.version)
        logger.notice(
            """
            resumed at batch \(state.consumed), policy version \(state.version) (checkpoint of incarnation \
            \(FNV1a64.hex(state.incarnation))); \(state.ledger.inFlight) samples in flight then count lost; \
            ledger: \(ledger.summary)
            """)
    }

    /// A learner registered on `system` under the well-known ``name``, where workers resolve it.
    public static func named(
        on system: ReinActorSystem, config: RunConfig, reference: GPTParameters,
        broadcaster: WeightBroadcaster? = nil, folder: RunFolder? = nil, resume: LearnerCheckpoint? = nil,
        logger: Logger
    ) throws -> LearnerActor {
        try system.withName(name) {
            try LearnerActor(
                actorSystem: system, config: config, reference: reference, broadcaster: broadcaster,
                folder: folder, resume: resume, logger: logger)
        }
    }

    /// This learner's incarnation: its node id, new with every process (and every restart).
    public nonisolated var incarnation: UInt64 { id.node.rawValue }

    /// A worker joins (or rejoins): the current weights and version, and where new versions are
    /// broadcast (if they are).
    public distributed func join(worker: NodeID) -> JoinReply {
        // A worker that joins again (it lost us for a while) will not deliver what it held.
        releaseAssignments(of: worker, reason: "rejoined")
        workers.insert(worker)
        if firstJoin == nil { firstJoin = clock.now }
        logger.info("worker \(worker) joined at version \(version)")
        return JoinReply(
            weights: PolicyWeights(version: version, values: current.values),
            broadcast: broadcaster?.endpoint, keepVersions: config.train.injectLag + 2,
            samples: samplesEndpoint, reference: PolicyWeights(version: 0, values: referenceWeights.values))
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
            status: .sample, index: candidate, attempt: attempt, version: sampling.version, weights: weights,
            incarnation: incarnation)
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

    /// Keeps the current weights in the ring and trims what neither lag injection nor a batch still
    /// out with a worker can use: a worker that missed the broadcast of its order's version fetches
    /// it (``fetchWeights(version:)``), so that version is kept until the batch is back or lost
    /// (at most `max_staleness` + 1 versions).
    private func remember() {
        ring.append((version, current))
        // Versions still sampling or waiting to be trained stay (the tracker needs their weights).
        let outstanding = assigned.values.map(\.version).min() ?? version
        let waiting = delivered.values.map(\.version).min() ?? version
        let oldestNeeded = min(version - config.train.injectLag, outstanding, waiting)
        while ring.count > 1, ring[1].version <= oldestNeeded { ring.removeFirst() }
    }

    /// Whether batch `index` (attempt `attempt`) is assigned to `worker` now, i.e. whether
    /// ``deliver(worker:index:attempt:incarnation:batch:)`` would take it if it came from this
    /// incarnation (the sample stream refuses others before they reach it, counted and rate-limited).
    public distributed func expects(worker: NodeID, index: Int, attempt: Int) -> Bool {
        guard let assignment = assigned[index] else { return false }
        return assignment.worker == worker && assignment.attempt == attempt
    }

    /// `worker` delivers batch `index` (attempt `attempt`, assigned by learner incarnation
    /// `incarnation`); trains every batch now ready in index order.
    ///
    /// A batch assigned by an earlier incarnation of the learner (before a restart), or given up
    /// as lost and reassigned, is refused: counted in ``RuntimeLedger/refused``, never trained.
    public distributed func deliver(
        worker: NodeID, index: Int, attempt: Int, incarnation: UInt64, batch: RolloutBatch
    ) async throws {
        guard incarnation == self.incarnation else {
            ledger.refused["previous learner", default: 0] += batch.rollouts.count
            logger.warning(
                """
                refused batch \(index) attempt \(attempt) from \(worker): assigned by learner incarnation \
                \(FNV1a64.hex(incarnation)), before a restart
                """)
            return
        }
        guard let assignment = assigned[index], assignment.worker == worker, assignment.attempt == attempt
        else {
            // Its batch was given up as lost (and counted so) and reassigned: never trained.
            ledger.refused["late", default: 0] += batch.rollouts.count
            logger.warning("late batch \(index) attempt \(attempt) from \(worker) refused")
            return
        }
        guard batch.rollouts.allSatisfy({ $0.versions.allSatisfy { $0 == assignment.version } }) else {
            throw RuntimeError(
                "batch \(index) from \(worker) was not sampled with version \(assignment.version) as assigned"
            )
        }
        guard batch.rollouts.count == assignment.count else {
            throw RuntimeError(
                "batch \(index) has \(batch.rollouts.count) samples, expected \(assignment.count)")
        }
        assigned[index] = nil
        delivered[index] = (batch, assignment.version)
        startTraining()
    }

    /// Starts the training task unless it runs (or a checkpoint is being written).
    private func startTraining() {
        guard !training, delivered[consumed] != nil else { return }
        training = true
        Task { await self.trainLoop() }
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
                selection.addDropped(batch)
                ledger.dropped["stale", default: 0] += n
                step.dropped = n
                logger.warning("dropped \(n) samples of batch \(consumed) with lag \(lag) > max_staleness")
            } else {
                selection.addTrained(batch)
                if let tracker, tracker.shouldObserve(step: consumed + 1) {
                    await observe(batch, sampledBy: next.version, with: tracker)
                }
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
            record(step)
            attempts[consumed] = nil  // only batches not yet consumed can be assigned again
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
            let every = config.train.checkpointEvery
            if every > 0, consumed % every == 0, consumed < end { startCheckpoint() }
        }
    }

    /// The staleness tracker `config` asks for, if any (top-k sampling has no softmax μ to compare).
    private static func makeTracker(_ config: RunConfig, logger: Logger) -> StalenessTracker? {
        let t = config.train
        guard t.trackerEvery > 0 else { return nil }
        guard t.topK == 0 else {
            logger.notice("staleness tracker off: top_k sampling is not a softmax of the logits")
            return nil
        }
        do {
            return try StalenessTracker(
                every: t.trackerEvery, parameterEvery: t.trackerParameterEvery, logger: logger)
        } catch {
            logger.warning("staleness tracker off: \(error)")
            return nil
        }
    }

    /// Runs the staleness tracker on `batch` (about to be trained; sampled by `sampledBy`) on the
    /// learner's thread and appends its record to `tracker.jsonl`. Failures are logged, never
    /// stop training.
    private func observe(_ batch: RolloutBatch, sampledBy: Int, with tracker: StalenessTracker) async {
        let step = consumed + 1
        let kept = ring.map { (version: $0.version, parameters: $0.parameters) }
        let (policy, reference, version) = (current, referenceWeights, self.version)
        let selection = self.selection.summary
        let (temperature, threads) = (config.train.temperature, config.threads)
        let parameterSpace = tracker.shouldCompareParameters(step: step)
        let outcome = await core.observe(threads: threads) { scratch in
            var record = try tracker.observe(
                step: step, batch: batch, version: version, policy: policy, reference: reference,
                behaviour: { wanted in kept.last(where: { $0.version == wanted })?.parameters },
                temperature: temperature, threads: threads, scratch: scratch, parameterSpace: parameterSpace)
            record.selection = selection
            return try StalenessTracker.jsonLine(record)
        }
        do {
            let line = try outcome.get()
            try folder?.append(line: line, to: "tracker.jsonl")
        } catch {
            logger.warning(
                "staleness tracker failed at step \(step) (batch sampled by version \(sampledBy)): \(error)")
        }
    }

    /// Takes a checkpoint of the current state and writes it into the run folder (if the learner
    /// has one) on a thread of its own, after any write still in progress; training goes on
    /// meanwhile. Only the training task (between steps) or ``checkpoint()`` (when nothing
    /// trains) call it, so the optimizer state is read while no step changes it.
    @discardableResult
    private func startCheckpoint() -> Task<Void, any Error>? {
        guard let folder else { return nil }
        let state = LearnerState(
            version: version, consumed: consumed, attempts: attempts.filter { $0.key >= consumed },
            // Metrics are streamed to metrics.jsonl; a resume keeps its first `consumed` lines.
            ledger: ledger, metrics: [], ring: ring.map { $0.version }, incarnation: incarnation,
            reference: referenceIdentity)
        let checkpoint = LearnerCheckpoint(
            state: state, policy: current, optimizer: core.optimizerState(), ring: ring.map { $0.parameters })
        let previous = pendingWrite
        let logger = self.logger
        let write = Task {
            _ = await previous?.result
            do {
                try await onThread("rein-learner-checkpoint") { try checkpoint.save(to: folder) }
                logger.info("checkpoint at batch \(state.consumed), policy version \(state.version)")
            } catch {
                logger.error("checkpoint at batch \(state.consumed) failed: \(error)")
                throw error
            }
        }
        pendingWrite = write
        return write
    }

    /// Writes a checkpoint now (the end of a run, or a graceful stop): call it once nothing trains.
    /// - Throws: ``RuntimeError`` if training is still running, or the write failed.
    public distributed func checkpoint() async throws {
        guard !training else { throw RuntimeError("cannot checkpoint while a batch is training") }
        try await startCheckpoint()?.value
    }

    /// Counts the batches `worker` holds as lost and makes their indices available again.
    private func releaseAssignments(of worker: NodeID, reason: String) {
        for (index, assignment) in assigned where assignment.worker == worker {
            assigned[index] = nil
            ledger.inFlight -= assignment.count
            ledger.lost += assignment.count
            retry.append(index)
            logger.warning("worker \(worker) \(reason) with batch \(index): \(assignment.count) samples lost")
        }
    }

    /// Counts the batches `worker` holds as lost and makes their indices available again.
    public distributed func workerLost(_ worker: NodeID) {
        workers.remove(worker)
        releaseAssignments(of: worker, reason: "lost")
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
    /// - Throws: ``RuntimeError`` if `metrics.jsonl` cannot be read back.
    public distributed func stepMetrics() throws -> [StepMetrics] {
        guard let folder else { return metrics }
        return try Self.readMetrics(in: folder, count: consumed)
    }

    /// Appends `step` to `metrics.jsonl` (or keeps it, without a run folder).
    private func record(_ step: StepMetrics) {
        guard let folder else {
            metrics.append(step)
            return
        }
        do {
            try folder.appendMetrics(step)
        } catch {
            // The run goes on; the end of the run reports the gap when it reads the file back.
            logger.error("could not append the metrics of batch \(step.step): \(error)")
        }
    }

    /// The first `count` records of `metrics.jsonl`.
    static func readMetrics(in folder: RunFolder, count: Int) throws -> [StepMetrics] {
        let all = try folder.metrics()
        guard all.count >= count else {
            throw RuntimeError(
                "\(folder.file(.metrics)) has \(all.count) records, the learner consumed \(count) batches")
        }
        return Array(all.prefix(count))
    }

    /// On resume: `metrics.jsonl` keeps the records of the `consumed` batches the checkpoint
    /// covers (lines written after it are work the resumed learner does again). A checkpoint
    /// written before metrics were streamed carries them itself (`checkpointed`): the file is
    /// rewritten from those.
    static func continueMetrics(in folder: RunFolder, consumed: Int, checkpointed: [StepMetrics]) throws {
        if checkpointed.count == consumed, consumed > 0 {
            try folder.rewrite(checkpointed, as: .metrics)
        } else {
            try folder.keep(first: consumed, of: .metrics, as: StepMetrics.self)
        }
    }

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
    /// The staleness tracker's model (made on first use; only ``observe(threads:_:)`` touches it).
    private var scratch: GPTModel?

    init(_ learner: Learner) { self.learner = learner }

    /// The optimizer state (never called while ``step(_:)`` runs: see ``LearnerActor``).
    func optimizerState() -> SafeTensors { learner.optimizer.encode() }

    /// Runs `body` with the tracker's scratch model on a thread of its own (between learner steps).
    func observe<T: Sendable>(threads: Int, _ body: @escaping @Sendable (GPTModel) throws -> T) async
        -> Result<T, any Error>
    {
        await withCheckedContinuation { continuation in
            let thread = Thread { [self] in
                let model = scratch ?? GPTModel(parameters: learner.model.parameters, threads: threads)
                scratch = model
                continuation.resume(returning: Result { try body(model) })
            }
            thread.name = "rein-tracker"
            thread.stackSize = 8 << 20
            thread.start()
        }
    }

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

/// Runs `body` on a thread of its own (file writes and hashing would block a thread of the shared
/// cooperative pool, which heartbeats need).
func onThread<T: Sendable>(_ name: String, _ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread { continuation.resume(with: Result { try body() }) }
        thread.name = name
        thread.start()
    }
}
