import Distributed
import Foundation
import Logging
import Rein
import ReinActors
import ReinModel
import ReinTasks
import ReinTracker

/// The learner as a distributed actor: a thin shell around the run's ``Rein/RunStateMachine``.
///
/// The machine takes every decision of the run — which batch index a worker gets and with which
/// weights (exact lag injection), admission under `max_staleness`, the work leases, which weight
/// versions to keep, refusals, the ledger and each step's metrics — exactly as it does for the
/// single-process ``Rein/Trainer``. This actor turns messages into the machine's events and its
/// decisions into replies; it holds the weights, the model (trained on a thread of its own, so
/// workers are answered meanwhile), the broadcast and the run folder's files.
///
/// Batch `s` is a pure function of (seed, `s`, weights version): its prompts, sampling seed and
/// sample ids are those of step `s` of the single-process trainer, so with `max_staleness: 0` the
/// run equals the single-process run. A batch whose worker dies, rejoins or lets its lease expire
/// is counted lost and handed out again; lease expiry is a task sleeping until the earliest
/// deadline, re-armed whenever that deadline changes.
///
/// With a run folder, the learner checkpoints every `train.checkpoint_every` batches and at the
/// end of the run (``checkpoint()``); checkpoint writes coalesce (at most one in flight, the newest
/// state wins). A learner made from a ``Rein/LearnerCheckpoint`` continues that run as a new
/// *incarnation* (its node id): batches assigned before the restart are refused on delivery and
/// counted in ``Rein/SampleLedger/refused``, never trained.
public distributed actor LearnerActor {
    public typealias ActorSystem = ReinActorSystem
    /// The run's decisions, with workers named by node.
    public typealias Machine = RunStateMachine<NodeID>

    /// The well-known name the learner is registered under on its node.
    public static let name = "learner"

    private let config: RunConfig
    /// `config` as JSON (``Rein/RunCoding``), for the join reply.
    private let configJSON: String?
    /// Where checkpoints go (none without a folder).
    private let folder: RunFolder?
    /// The reference the run trains against (recorded in checkpoints).
    private let referenceIdentity: ReferenceIdentity
    /// π_ref's weights (the staleness tracker's reference rows).
    private let referenceWeights: GPTParameters
    /// The staleness tracker and its selection-skew counts.
    private var tracking: LearnerTracking
    /// The model and optimizer; touched only by the training task (see ``trainLoop()``).
    private let core: LearnerCore
    /// Every decision of the run.
    private var machine: Machine
    /// The weights of the versions the machine keeps (the current one included), by version.
    private var weights: [Int: GPTParameters]
    /// Whether the training task is running.
    private var training = false
    /// The error that stopped training, rethrown by ``isFinished()``.
    private var failure: RuntimeError?
    private let logger: Logger
    private let broadcaster: (any BulkPublisher)?
    /// Metrics of the batches consumed, when there is no run folder. With one, each batch's line
    /// is appended to `metrics.jsonl` as it is consumed and nothing is kept in memory (a long run
    /// would otherwise grow the learner by every step's metrics).
    private var metrics: [StepMetrics] = []
    /// Lines of `metrics.jsonl` that could not be appended (the end of the run then reads the file
    /// back to find the gap or the torn line).
    private var failedAppends = 0
    private var workers: Set<NodeID> = []
    /// Workers told that the run is over.
    private var released: Set<NodeID> = []
    /// Whether each new version goes on the broadcast and each order carries weights, and what
    /// went by which path.
    private var delivery: WeightDelivery
    private var fetches = 0
    /// Writes checkpoints one at a time, newest first (none without a folder).
    private let checkpoints: CoalescingWriter<LearnerCheckpoint>?
    /// Where workers push sample batches (a ``SampleSource``), if anywhere.
    private var samplesEndpoint: String?
    private let clock = ContinuousClock()
    /// The origin of the times given to the machine.
    private let origin: ContinuousClock.Instant
    /// The task sleeping until ``leaseDeadline`` to expire leases.
    private var leaseTimer: Task<Void, Never>?
    /// The deadline ``leaseTimer`` sleeps until.
    private var leaseDeadline: Duration?
    /// When the first worker joined (the start of the learner's working time).
    private var firstJoin: ContinuousClock.Instant?
    /// When the last batch was consumed.
    private var lastConsumed: ContinuousClock.Instant?
    /// Time spent in learner steps.
    private var busy = Duration.zero
    /// The held-out evaluation of every `train.eval_every` steps (none: no evaluation).
    private let evaluator: HeldOutEvaluator?
    /// Told of every step's metrics once they are recorded (the console's progress line).
    private let onStep: (@Sendable (StepMetrics) -> Void)?
    /// Whether this learner continues a run past its first step (from a checkpoint).
    private let continues: Bool
    /// Records the run's metrics (swift-metrics) as batches are consumed and workers come and go.
    private var observer = LearnerMetrics()
    /// Checks every delivered batch's contents against the task (prompts, rewards, versions,
    /// log-probs): a worker cannot steer the run with made-up rewards.
    private let audit: BatchAudit
    /// Wakes the waits on the run's progress: ``waitUntilFinished()`` and
    /// ``waitUntilWorkersReleased(until:)`` (held work requests wait on ``work``).
    private let changes = Wakeups()
    /// Held work requests (``requestWork(worker:haveVersion:inline:)``): woken as many at a time as
    /// batches can go out, not all on every change (hundreds per trained batch at 256 workers).
    private let work = Wakeups()
    /// ``requestWork(worker:haveVersion:inline:)`` calls so far.
    private var workRequests = 0
    /// Orders handed out after holding their request (``heldOrderCount()``).
    private var heldOrders = 0
    /// The worker whose delivery of each batch index was accepted (until it is trained).
    private var deliveredBy: [Int: NodeID] = [:]
    /// What was trained from each worker, with the name it joined under.
    private var contributions: [NodeID: WorkerContribution] = [:]

    /// A learner starting from `reference` (also the KL reference) that trains `config.train.steps`
    /// batches — or, given a checkpoint, continuing the run that wrote it.
    ///
    /// - Parameters:
    ///   - folder: where to write checkpoints (every `train.checkpoint_every` batches and on
    ///     ``checkpoint()``); `nil`: none.
    ///   - resume: a checkpoint of this run to continue from.
    ///   - lease: how long a worker may hold a batch.
    ///   - evaluator: evaluates the policy every `train.eval_every` steps (before the last) into
    ///     the step's `eval_greedy` / `eval_sampled`, as the single-process run does.
    ///   - onStep: told of every step's metrics once recorded.
    /// - Throws: ``RuntimeError`` if `resume` was trained against another reference or model.
    public init(
        actorSystem: ReinActorSystem, config: RunConfig, reference: GPTParameters,
        broadcaster: (any BulkPublisher)? = nil, folder: RunFolder? = nil, resume: LearnerCheckpoint? = nil,
        lease: Machine.LeasePolicy = .init(), evaluator: HeldOutEvaluator? = nil,
        onStep: (@Sendable (StepMetrics) -> Void)? = nil, logger: Logger
    ) throws {
        self.actorSystem = actorSystem
        self.evaluator = evaluator
        self.onStep = onStep
        self.continues = (resume?.state.consumed ?? 0) > 0
        let incarnation = self.id.node.rawValue
        self.broadcaster = broadcaster
        self.delivery = WeightDelivery(config)
        self.config = config
        self.configJSON = (try? RunCoding.encoder().encode(config)).map {
            String(decoding: $0, as: UTF8.self)
        }
        self.audit = try BatchAudit(config: config, vocab: reference.config.vocab)
        self.folder = folder
        self.logger = logger
        self.origin = clock.now
        let identity = ReferenceIdentity(reference, source: config.train.reference)
        self.referenceIdentity = identity
        self.referenceWeights = reference
        self.tracking = LearnerTracking(config, logger: logger)
        self.checkpoints = folder.map { folder in
            CoalescingWriter(name: "rein-learner-checkpoint") { checkpoint in
                do {
                    try checkpoint.save(to: folder)
                    logger.info(
                        "checkpoint at batch \(checkpoint.state.consumed), policy version \(checkpoint.state.version)"
                    )
                } catch {
                    logger.error("checkpoint at batch \(checkpoint.state.consumed) failed: \(error)")
                    throw error
                }
            }
        }
        let settings = Machine.Settings(config, lease: lease)
        guard let resume else {
            if let folder {
                try folder.write(Data(), to: RunFile.metrics.rawValue)
                try folder.remove(.tracker)
            }
            self.core = LearnerCore(
                try Learner(
                    config: config.train, policy: reference, reference: reference, threads: config.threads))
            self.weights = [0: reference]
            self.machine = Machine(settings: settings, incarnation: incarnation)
            return
        }
        let state = resume.state
        do {
            try state.check(reference: identity)
        } catch {
            throw RuntimeError(error.description)
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
        var weights = Dictionary(zip(state.ring, resume.ring), uniquingKeysWith: { _, last in last })
        weights[state.version] = resume.policy
        self.weights = weights
        if let folder {
            try Self.continueMetrics(in: folder, consumed: state.consumed, checkpointed: state.metrics)
        } else {
            self.metrics = state.metrics
        }
        // Whatever was handed out then belongs to the incarnation that wrote the checkpoint: its
        // batches are refused if they ever arrive, so they count lost and are handed out again.
        let restored = Machine(settings: settings, restoring: state.snapshot, incarnation: incarnation)
        self.machine = restored
        actorSystem.policyVersion = UInt64(state.version)
        logger.notice(
            """
            resumed at batch \(state.consumed), policy version \(state.version) (checkpoint of incarnation \
            \(FNV1a64.hex(state.incarnation))); \(state.ledger.inFlight) samples in flight then count lost; \
            ledger: \(restored.ledger.summary)
            """)
    }

    /// A learner registered on `system` under the well-known ``name``, where workers resolve it.
    public static func named(
        on system: ReinActorSystem, config: RunConfig, reference: GPTParameters,
        broadcaster: (any BulkPublisher)? = nil, folder: RunFolder? = nil, resume: LearnerCheckpoint? = nil,
        lease: Machine.LeasePolicy = .init(), evaluator: HeldOutEvaluator? = nil,
        onStep: (@Sendable (StepMetrics) -> Void)? = nil, logger: Logger
    ) throws -> LearnerActor {
        try system.withName(name) {
            try LearnerActor(
                actorSystem: system, config: config, reference: reference, broadcaster: broadcaster,
                folder: folder, resume: resume, lease: lease, evaluator: evaluator, onStep: onStep,
                logger: logger)
        }
    }

    /// This learner's incarnation: its node id, new with every process (and every restart).
    public nonisolated var incarnation: UInt64 { id.node.rawValue }

    /// The machine's clock: time since this learner was made.
    private var now: Duration { clock.now - origin }

    /// The policy version now.
    private var version: Int { machine.version }

    /// The run's sampler settings: the sample stream takes only batches drawn with them.
    var samplerSettings: SamplerSettings { SamplerSettings(config.train) }

    /// The current weights.
    private var current: GPTParameters { weights[machine.version] ?? referenceWeights }

    /// A worker joins (or rejoins): the current weights and version, and where new versions are
    /// broadcast (if they are).
    public distributed func join(worker: NodeID) -> JoinReply {
        let worker = ReinActorSystem.actingNode(claimed: worker)  // a remote caller is itself
        // A worker that joins again (it lost us for a while) will not deliver what it held.
        log(machine.workerLost(worker), "rejoined")
        workers.insert(worker)
        if machine.workerJoined(worker) {
            logger.info("\(config.runtime.minWorkers) workers joined: handing out work")
            changed()  // the workers waiting for the quorum ask again
        }
        if contributions[worker] == nil {
            contributions[worker] = WorkerContribution(
                node: worker.description, name: ReinActorSystem.caller?.name ?? "local")
        }
        observer.membership(workers: workers.count, ledger: machine.ledger)
        if firstJoin == nil { firstJoin = clock.now }
        logger.info("worker \(worker) joined at version \(version)")
        return JoinReply(
            weights: PolicyWeights(version: version, values: current.values),
            broadcast: delivery.subscribes ? broadcaster?.endpoint : nil,
            keepVersions: config.train.injectLag + 2,
            samples: samplesEndpoint, reference: PolicyWeights(version: 0, values: referenceWeights.values),
            config: configJSON)
    }

    /// The weights of `version`, if the learner still has them (the current version, or one kept
    /// for lag injection): for workers that missed a broadcast.
    public distributed func fetchWeights(version wanted: Int) throws -> PolicyWeights {
        fetches += 1
        observer.delivered(weightsBy: .fetch)
        guard let kept = weights[wanted] else {
            throw RuntimeError(
                "weights of version \(wanted) are no longer kept (learner at \(version))")
        }
        return PolicyWeights(version: wanted, values: kept.values)
    }

    /// Seconds spent training and seconds from the first join to the last batch consumed.
    public distributed func utilisation() -> LearnerUtilisation {
        let wall = firstJoin.flatMap { start in lastConsumed.map { $0 - start } } ?? .zero
        return LearnerUtilisation(
            busySeconds: seconds(busy), wallSeconds: seconds(wall), stepCPUSeconds: core.stepCPUSeconds)
    }

    /// Tells joining workers to push their batches to `endpoint` (a ``SampleSource`` attached to
    /// this learner) instead of delivering them by call.
    public distributed func acceptSamples(at endpoint: String) { samplesEndpoint = endpoint }

    /// New weights delivered so far, by path: versions broadcast, orders that carried weights,
    /// fetches.
    public distributed func weightDeliveries() -> WeightDeliveryCounts {
        var counts = delivery.counts
        counts.fetches = fetches
        return counts
    }

    /// Weight fetches so far (broadcasts missed by workers).
    public distributed func fetchCount() -> Int { fetches }

    /// The next piece of work for `worker`, whose weights are at `haveVersion`.
    /// The order carries the weights of its version when the worker holds another one and either
    /// asked for them (`inline`: it has no broadcast subscription) or the version is not on the
    /// broadcast (`runtime.weight_delivery` `orders`, or `auto` beyond a few workers: see
    /// ``Rein/WeightDelivery``); otherwise the worker gets them from the broadcast, or
    /// ``fetchWeights(version:)``.
    ///
    /// A long poll: while there is nothing to hand out, the call suspends until there is (or the run
    /// is over), for at most half the call timeout, and only then answers `wait`.
    /// - Throws: ``RuntimeError`` if `worker` gets no more work in this run (it delivered forged
    ///   contents).
    public distributed func requestWork(worker: NodeID, haveVersion: Int, inline: Bool = true) async throws
        -> WorkOrder
    {
        let worker = ReinActorSystem.actingNode(claimed: worker)  // a remote caller is itself
        workRequests += 1
        let deadline = clock.now + workHold
        var decision = machine.requestWork(worker: worker, now: now)
        let held = if case .wait = decision { true } else { false }
        let joined = workers.contains(worker)
        var hold: Wakeups.Deadline?  // one timer for the whole long poll
        defer { hold.map(work.release) }
        while case .wait = decision, clock.now < deadline, !Task.isCancelled {
            if hold == nil { hold = work.deadline(deadline) }
            // Only this actor notifies: nothing changes between the decision and this read.
            await work.wait(after: work.generation, deadline: hold!)
            // A worker lost while it waited gets nothing more: its call has no one to answer, and
            // a batch assigned to it now would wait for its lease to expire.
            guard !joined || workers.contains(worker) else {
                passOnWake()
                break
            }
            decision = machine.requestWork(worker: worker, now: now)
            if case .wait = decision { passOnWake() }  // benched: the batch is someone else's
        }
        if case .refused = decision { passOnWake() }
        switch decision {
        case .finished:
            released.insert(worker)
            changed()
            return WorkOrder(status: .finished)
        case .wait:
            return WorkOrder(status: .wait)
        case .refused(let reason):
            throw RuntimeError("worker \(worker) gets no more work in this run (\(reason.rawValue))")
        case .sample(let assignment):
            if held { heldOrders += 1 }
            armLeaseTimer()
            let carries = delivery.order(version: assignment.version, have: haveVersion, inline: inline)
            if carries { observer.delivered(weightsBy: .order) }
            let weights =
                carries
                ? self.weights[assignment.version].map {
                    PolicyWeights(version: assignment.version, values: $0.values)
                } : nil
            return WorkOrder(
                status: .sample, index: assignment.index, attempt: assignment.attempt,
                version: assignment.version,
                weights: weights, incarnation: incarnation, token: assignment.token)
        }
    }

    /// Whether batch `index` (attempt `attempt`) is assigned to `worker` now, i.e. whether
    /// ``deliver(worker:index:attempt:token:incarnation:batch:)`` would take it if it came from this
    /// incarnation with the assignment's token (the sample stream refuses others before they reach
    /// it, counted and rate-limited).
    public distributed func expects(worker: NodeID, index: Int, attempt: Int) -> Bool {
        let worker = ReinActorSystem.actingNode(claimed: worker)  // a remote caller is itself
        return machine.expects(worker: worker, index: index, attempt: attempt)
    }

    /// `worker` delivers batch `index` (attempt `attempt`, with the work order's `token`, assigned
    /// by learner incarnation `incarnation`); trains every batch now ready in index order.
    ///
    /// A batch assigned by an earlier incarnation of the learner (before a restart), given up as
    /// lost (its worker was lost, or its lease expired) or delivered twice is refused: counted in
    /// ``Rein/SampleLedger/refused``, never trained.
    /// - Throws: ``RuntimeError`` if the batch is not what was assigned, or does not carry the
    ///   assignment's token (a forgery: also counted as refused, `wrong token`).
    public distributed func deliver(
        worker: NodeID, index: Int, attempt: Int, token: AssignmentToken, incarnation: UInt64,
        batch: RolloutBatch
    ) async throws {
        let worker = ReinActorSystem.actingNode(claimed: worker)  // a remote caller is itself
        let forgedBefore = machine.hasForged(worker)
        switch machine.deliver(
            worker: worker, index: index, attempt: attempt, token: token, incarnation: incarnation,
            batch: batch, now: now, audit: audit)
        {
        case .accepted:
            deliveredBy[index] = worker
            armLeaseTimer()
            startTraining()
            changed()
        case .refused(.wrongToken):
            // Not logged here: the sample stream logs it rate-limited, a caller gets the error.
            throw RuntimeError("batch \(index) attempt \(attempt) does not carry its assignment's token")
        case .refused(.forgedContents):
            // Counted in the ledger; logged once per worker, when it is benched (a forger could
            // resend at will).
            if !forgedBefore {
                logger.warning(
                    "worker \(worker) delivered forged contents for batch \(index): benched for the rest of the run; what it held goes out again"
                )
                armLeaseTimer()
                changed()  // the indices it held can be handed out again
            }
            throw RuntimeError(
                forgedBefore
                    ? "batch \(index) attempt \(attempt) from \(worker): refused, it delivered forged contents before"
                    : "batch \(index) attempt \(attempt) from \(worker): contents fail the task's audit")
        case .refused(let reason):
            logger.warning(
                "refused batch \(index) attempt \(attempt) from \(worker) (\(reason.rawValue); incarnation \(FNV1a64.hex(incarnation)))"
            )
        case .invalid(let problem):
            throw RuntimeError("\(problem) (from \(worker))")
        }
    }

    /// Something changed: wakes the waits on the run, and as many held work requests as batches
    /// can go out now (every one once the run is over: they answer `finished`).
    private func changed() {
        changes.notify()
        if let assignable = machine.assignableCount {
            work.notify(first: assignable)
        } else {
            work.notify()
        }
    }

    /// A woken work request that takes nothing hands its wake to the next held one, if a batch
    /// can still go out.
    private func passOnWake() {
        if let assignable = machine.assignableCount {
            if assignable > 0 { work.notify(first: 1) }
        } else {
            work.notify()
        }
    }

    /// Sleeps until the earliest lease deadline, then expires what is due (re-armed whenever the
    /// earliest deadline changes; no task while nothing is out).
    private func armLeaseTimer() {
        let deadline = machine.nextLeaseDeadline
        guard deadline != leaseDeadline else { return }
        leaseTimer?.cancel()
        leaseDeadline = deadline
        guard let deadline else {
            leaseTimer = nil
            return
        }
        let wake = origin + deadline
        leaseTimer = Task { [clock] in
            do {
                try await Task.sleep(until: wake, clock: clock)
            } catch {
                return  // cancelled: re-armed for another deadline
            }
            guard !Task.isCancelled else { return }
            self.leasesDue()
        }
    }

    private func leasesDue() {
        leaseDeadline = nil
        log(machine.expireLeases(now: now), "let its lease expire")
        armLeaseTimer()
        changed()
    }

    /// Logs batches given up.
    private func log(_ losses: [Machine.Loss], _ what: String) {
        for loss in losses {
            logger.warning(
                "worker \(loss.worker) \(what) with batch \(loss.index): \(loss.count) samples lost")
        }
        if !losses.isEmpty {
            armLeaseTimer()
            changed()  // their indices can be handed out again
        }
    }

    /// Starts the training task unless it runs.
    private func startTraining() {
        guard !training else { return }
        training = true
        Task { await self.trainLoop() }
    }

    /// Trains (or drops) delivered batches in index order while the next one is there. The step
    /// itself runs off the actor, so workers' calls are answered while the learner computes.
    private func trainLoop() async {
        defer {
            training = false
            changed()
        }
        while let decision = machine.nextBatch() {
            switch decision {
            case .dropped(let step, let order):
                deliveredBy[order.index] = nil
                tracking.selection.addDropped(order.batch)
                logger.warning(
                    "dropped \(step.dropped) samples of batch \(order.index) with lag \(order.lag) > max_staleness"
                )
                record(await evaluated(step), of: order)
            case .train(let order):
                tracking.selection.addTrained(order.batch)
                if tracking.shouldObserve(step: order.index + 1) {
                    await tracking.observe(
                        order, version: version, policy: current, reference: referenceWeights, kept: weights,
                        config: config, core: core, folder: folder, logger: logger)
                }
                let t0 = clock.now
                let outcome = await core.step(order.batch)
                busy += clock.now - t0
                switch outcome {
                case .failure(let error):
                    failure = RuntimeError("learner step of batch \(order.index) failed: \(error)")
                    machine.trainingFailed(order)  // still in flight: the run fails with the error
                    return
                case .success(let (learned, parameters, newVersion)):
                    let lookahead = machine.pacer.lookahead
                    let step = machine.trained(order, learner: learned, version: newVersion)
                    if let worker = deliveredBy.removeValue(forKey: order.index) {
                        contributions[worker, default: WorkerContribution(node: worker.description, name: "")]
                            .batches += 1
                        contributions[worker]?.samples += order.batch.rollouts.count
                    }
                    if let paced = machine.pacer.lookahead, paced != lookahead {
                        let (latency, step) = (machine.pacer.latency ?? 0, machine.pacer.stepTime ?? 0)
                        logger.debug(
                            "pacing: \(paced) batch(es) ahead (sampling \(Int(latency * 1000)) ms, learner step \(Int(step * 1000)) ms)"
                        )
                    }
                    weights[newVersion] = parameters
                    let kept = Set(machine.keptVersions)
                    for stale in weights.keys.filter({ !kept.contains($0) }) { weights[stale] = nil }
                    delivery.keep(kept)
                    // Decided now: orders handed out from here on leave a published version to the
                    // broadcast.
                    let publishes =
                        broadcaster != nil
                        && delivery.trained(version: newVersion, subscribers: workers.count)
                    actorSystem.policyVersion = UInt64(newVersion)
                    record(await evaluated(step), of: order)
                    if publishes, let broadcaster {
                        observer.delivered(weightsBy: .broadcast)
                        do {
                            try await broadcaster.publish(
                                PolicyWeights(version: newVersion, values: parameters.values))
                        } catch {
                            delivery.publishFailed(version: newVersion)
                            logger.warning("weight broadcast of version \(newVersion) failed: \(error)")
                        }
                    }
                }
            }
            lastConsumed = clock.now
            changed()
            let every = config.train.checkpointEvery
            if every > 0, machine.consumed % every == 0, machine.consumed < machine.end {
                await startCheckpoint()
            }
        }
    }

    /// Hands a checkpoint of the current state to the coalescing writer (it is written on a thread
    /// of its own after the write in flight, unless a newer one replaces it first); training goes
    /// on meanwhile. Only the training task (between steps) or ``checkpoint()`` (when nothing
    /// trains) call it, so the optimizer state is read while no step changes it.
    private func startCheckpoint() async {
        guard let checkpoints else { return }
        let snapshot = machine.snapshot()
        let ring = snapshot.ring  // the versions a restart can use (not those of batches in flight)
        let state = LearnerState(
            // Metrics are streamed to metrics.jsonl; a resume keeps its first `consumed` lines.
            snapshot, metrics: [], reference: referenceIdentity)
        let checkpoint = LearnerCheckpoint(
            state: state, policy: current, optimizer: core.optimizerState(),
            ring: ring.map { weights[$0] ?? current })
        await checkpoints.submit(checkpoint)
    }

    /// Writes a checkpoint now (the end of a run, or a graceful stop): call it once nothing trains.
    /// - Throws: ``RuntimeError`` if training is still running, or the write failed.
    public distributed func checkpoint() async throws {
        guard !training else { throw RuntimeError("cannot checkpoint while a batch is training") }
        await startCheckpoint()
        try await checkpoints?.flush()
    }

    /// Counts the batches `worker` holds as lost and makes their indices available again.
    public distributed func workerLost(_ worker: NodeID) {
        workers.remove(worker)
        log(machine.workerLost(worker), "lost")
        observer.membership(workers: workers.count, ledger: machine.ledger)
        changed()
    }

    /// The sample ledger now.
    public distributed func currentLedger() -> RuntimeLedger { machine.ledger }

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
        return try Self.readMetrics(in: folder, count: machine.consumed)
    }

    /// `step` with the held-out evaluation of the current policy when `train.eval_every` asks
    /// for one after it (not after the last step: the end of the run evaluates that one).
    private func evaluated(_ step: StepMetrics) async -> StepMetrics {
        let (every, done) = (config.train.evalEvery, machine.consumed)
        guard let evaluator, every > 0, done % every == 0, done < config.train.steps else { return step }
        var step = step
        do {
            let evaluation = try await evaluator.evaluation(of: current, afterStep: done)
            step.evalGreedy = evaluation.greedy.accuracy
            step.evalSampled = evaluation.sampled?.accuracy
        } catch {
            logger.warning("held-out evaluation after step \(done) failed: \(error)")
        }
        return step
    }

    /// The policy the run starts from (π_ref), unless this learner continues a run past its first
    /// step: what `eval-start.json` evaluates.
    func startingPolicy() -> GPTParameters? { continues ? nil : referenceWeights }

    /// Appends `step` (of the batch of `order`) to `metrics.jsonl` (or keeps it, without a run
    /// folder), records it in the run's metrics, then tells `onStep`.
    private func record(_ step: StepMetrics, of order: Machine.TrainOrder) {
        defer { onStep?(step) }
        let working = firstJoin.map { seconds(clock.now - $0) } ?? 0
        observer.consumed(
            step, order: order, ledger: machine.ledger,
            busyFraction: working > 0 ? seconds(busy) / working : 0)
        guard let folder else {
            metrics.append(step)
            return
        }
        do {
            try folder.appendMetrics(step)
        } catch {
            // The run goes on; the end of the run reports the gap when it reads the file back.
            failedAppends += 1
            logger.error("could not append the metrics of batch \(step.step): \(error)")
        }
    }

    /// Makes `target`'s `metrics.jsonl` hold exactly one record per batch consumed (in index
    /// order), and returns how many: the end of a run.
    ///
    /// A learner that streamed into `target` and never failed to append only counts the file's
    /// lines: a run of 100,000 batches is not read back into memory. After a failed append, or
    /// if the file holds more lines than batches, its first records are decoded (a torn or
    /// missing line throws) and the file is rewritten with them. A learner without a run folder
    /// writes the metrics it kept.
    /// - Throws: ``RuntimeError`` if the file has fewer records than batches consumed;
    ///   ``Rein/RunFolderError`` if it cannot be read or written.
    func settleMetrics(in target: RunFolder) throws -> Int {
        let consumed = machine.consumed
        guard let folder, folder.path == target.path else {
            try target.rewrite(metrics, as: .metrics)
            return metrics.count
        }
        if failedAppends == 0 {
            let lines = try folder.lineCount(of: .metrics)
            if lines == consumed { return consumed }
            guard lines > consumed else { throw Self.missingRecords(lines, consumed: consumed, in: folder) }
        }
        try folder.keep(first: consumed, of: .metrics, as: StepMetrics.self)
        return consumed
    }

    /// The first `count` records of `metrics.jsonl`.
    static func readMetrics(in folder: RunFolder, count: Int) throws -> [StepMetrics] {
        let all = try folder.metrics()
        guard all.count >= count else { throw missingRecords(all.count, consumed: count, in: folder) }
        return Array(all.prefix(count))
    }

    /// `metrics.jsonl` holds `records` lines for `consumed` batches (an append failed).
    static func missingRecords(_ records: Int, consumed: Int, in folder: RunFolder) -> RuntimeError {
        RuntimeError(
            "\(folder.file(.metrics)) has \(records) records, the learner consumed \(consumed) batches")
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
        return machine.isFinished && !training
    }

    /// Stops handing out new batch indices: the run ends once the batches already handed out are
    /// trained (or lost and resampled). For SIGTERM.
    public distributed func drain() {
        if let end = machine.drain() { logger.notice("draining: no new batches after \(end)") }
        changed()
    }

    /// Gives up on everything still in flight (after a drain timed out): assigned batches count
    /// lost, delivered ones that could not be trained in order count dropped (`abandoned`); the
    /// run ends here.
    public distributed func abandonInFlight() {
        log(machine.abandonInFlight(), "was abandoned")
        changed()
    }

    /// Whether every worker still joined has been told that the run is over.
    public distributed func allWorkersReleased() -> Bool { workers.isSubset(of: released) }

    /// Workers currently joined.
    public distributed func workerCount() -> Int { workers.count }

    /// ``requestWork(worker:haveVersion:inline:)`` calls so far (a waiting worker must not spin).
    public distributed func workRequestCount() -> Int { workRequests }

    /// Work orders handed out after holding the request: when it came, nothing could go out
    /// (training behind by the pacing bound, everything handed out, or the quorum not joined).
    public distributed func heldOrderCount() -> Int { heldOrders }

    /// The batches and samples trained from each worker that joined (`workers.json`).
    public distributed func workerContributions() -> WorkerContributions {
        WorkerContributions(
            workers: contributions.values.sorted { ($0.name, $0.node) < ($1.name, $1.node) })
    }

    /// How long ``requestWork(worker:haveVersion:inline:)`` holds a worker that has nothing to do:
    /// half the call timeout, so the answer comes well before the worker's call times out.
    private var workHold: Duration { actorSystem.settings.callTimeout / 2 }

    /// Returns once every batch of the run is trained or dropped; suspends meanwhile.
    /// - Throws: ``RuntimeError`` if a learner step failed; `CancellationError` if cancelled.
    public func waitUntilFinished() async throws {
        while true {
            let seen = changes.generation
            if try isFinished() { return }
            try Task.checkCancellation()
            await changes.wait(after: seen)
        }
    }

    /// Returns once every joined worker has been told that the run is over, or at `deadline`.
    public func waitUntilWorkersReleased(until deadline: ContinuousClock.Instant) async {
        while clock.now < deadline, !Task.isCancelled {
            let seen = changes.generation
            if allWorkersReleased() { return }
            await changes.wait(after: seen, until: deadline)
        }
    }
}

extension LearnerActor: CallerChecked {
    /// ``requestWork(worker:haveVersion:inline:)`` as the actor system names a method (for
    /// ``ReinActors/ReinActorSystem/answerTimes(of:)``).
    public static let requestWorkMethod = "requestWork(worker:haveVersion:inline:)"

    /// Workers (peers that connected to the learner) may join, get work and weights, and deliver;
    /// everything else — the run's controls and its state — is for this process only. Methods
    /// that name a worker act on the calling worker's own node (``ReinActorSystem/caller``).
    public static let allowedCallers: [String: CallerRoles] = [
        "join(worker:)": [.worker, .localOperator],
        requestWorkMethod: [.worker, .localOperator],
        "fetchWeights(version:)": [.worker, .localOperator],
        "deliver(worker:index:attempt:token:incarnation:batch:)": [.worker, .localOperator],
        "expects(worker:index:attempt:)": .localOperator,
        "utilisation()": .localOperator,
        "acceptSamples(at:)": .localOperator,
        "fetchCount()": .localOperator,
        "weightDeliveries()": .localOperator,
        "checkpoint()": .localOperator,
        "workerLost(_:)": .localOperator,
        "currentLedger()": .localOperator,
        "currentVersion()": .localOperator,
        "currentWeights()": .localOperator,
        "stepMetrics()": .localOperator,
        "isFinished()": .localOperator,
        "drain()": .localOperator,
        "abandonInFlight()": .localOperator,
        "allWorkersReleased()": .localOperator,
        "workerCount()": .localOperator,
        "workRequestCount()": .localOperator,
        "heldOrderCount()": .localOperator,
        "workerContributions()": .localOperator,
    ]
}
