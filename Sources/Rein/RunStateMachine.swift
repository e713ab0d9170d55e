import ReinTasks

/// Every decision of a training run, as a synchronous value: events in, decisions out.
///
/// The single-process ``Trainer`` and the distributed `LearnerActor` are shells around this one
/// machine (as swift-nio's `NIOAsyncWriter` is a locking shell around a pure state machine): they
/// hold the model, the weights, the threads, the messages and the files, and ask the machine what
/// to do. The machine holds no weights, reads no clock (time comes in as event parameters: a
/// ``Duration`` since an origin the shell picks) and does no I/O. It owns
///
/// - batch-index hand-out and retries: index `s` fixes step `s`'s prompts, seed and sample ids;
///   an index whose batch is lost is handed out again with the next attempt number;
/// - admission under `max_staleness`: index `s` goes out only while sampling it now cannot make it
///   staler than `max_staleness` when it is trained (``Settings/aheadLimit``); a batch whose lag
///   is above that anyway is dropped;
/// - pacing (``Settings/pacing``): with ``PacingMode/auto`` the ``Pacer`` it owns limits the
///   hand-out further to the lookahead that keeps the learner busy, from the sampling latencies
///   measured on delivery and the learner step times reported with ``trained(_:learner:version:)``;
/// - exact lag injection: batch `s` is sampled with the newest kept version at most `inject_lag`
///   versions older than the version expected to train it — exactly `inject_lag` once the run is
///   that old, in every launch mode;
/// - which weight versions the shell must keep (``keptVersions``);
/// - work leases: an assignment expires at a deadline derived from measured sampling time
///   (``LeasePolicy``); an expired lease counts the batch lost and hands it out again, and a late
///   delivery after expiry is refused and counted;
/// - benching: a worker that let a lease expire gets no new work until it delivers that late batch
///   (with its token and, given a ``BatchAudit``, honest contents), so a worker that takes work and
///   never delivers stalls the run for one lease, not one lease per batch it takes; losing or
///   rejoining does not lift it (a new incarnation starts with no worker benched);
/// - the contents audit: given a ``BatchAudit``, a delivery from the assignee (with its token) whose
///   contents are forged is refused (``RefusalReason/forgedContents``), everything that worker
///   holds is given up at once (counted lost and handed out again, so it stalls nothing) and the
///   worker is benched for the rest of the incarnation: its requests for work are refused
///   (``WorkDecision/refused(_:)``) and its deliveries too;
/// - the incarnation: after a restart from a ``RunSnapshot``, batches assigned before it are refused;
/// - the ``SampleLedger`` and each step's ``StepMetrics``.
///
/// Workers are any hashable value (the distributed learner's node ids; the single-process trainer
/// uses one worker, itself).
public struct RunStateMachine<Worker: Hashable & Sendable>: Sendable {
    /// What a run is: its length, batch size and staleness rules.
    public struct Settings: Sendable, Hashable {
        /// Batches in the run.
        public var steps: Int
        /// Samples per batch.
        public var batchSize: Int
        /// The largest lag (in versions) a batch may have when it is trained.
        public var maxStaleness: Int
        /// The lag (in versions) to sample with on purpose.
        public var injectLag: Int
        /// Policy versions one trained batch adds (`epochs × minibatches` optimizer steps).
        public var versionsPerStep: Int
        /// How long a worker may hold a batch.
        public var lease: LeasePolicy
        /// How far ahead of the learner batches go out (within ``aheadLimit``).
        public var pacing: PacingMode
        /// ``Pacer/margin`` of `auto` pacing (batches).
        public var pacingMargin: Double
        /// Whether a batch's tokens may move to newer versions mid-sequence (partial rollouts):
        /// deliveries are checked against ``TokenVersionRule`` with it.
        public var partialRollouts: Bool
        /// Workers that must have joined (``RunStateMachine/workerJoined(_:)``) before the first
        /// batch goes out (`runtime.min_workers`; 1 or less: no wait).
        public var minWorkers: Int

        public init(
            steps: Int, batchSize: Int, maxStaleness: Int, injectLag: Int, versionsPerStep: Int = 1,
            lease: LeasePolicy = LeasePolicy(), pacing: PacingMode = .bound,
            pacingMargin: Double = Pacer.defaultMargin, partialRollouts: Bool = false, minWorkers: Int = 1
        ) {
            self.steps = steps
            self.batchSize = batchSize
            self.maxStaleness = maxStaleness
            self.injectLag = injectLag
            self.versionsPerStep = max(1, versionsPerStep)
            self.lease = lease
            self.pacing = pacing
            self.pacingMargin = pacingMargin
            self.partialRollouts = partialRollouts
            self.minWorkers = minWorkers
        }

        /// How far (in versions) past the next batch to train indices are handed out: with
        /// injected lag, no further than the lag itself (so every batch is sampled exactly
        /// `inject_lag` versions before the version that trains it); without, up to
        /// `max_staleness` (natural asynchrony).
        public var aheadLimit: Int { injectLag > 0 ? min(injectLag, maxStaleness) : maxStaleness }

        /// The settings of a run configured by `train` (paced as `pacing`).
        public init(
            _ train: TrainConfig, lease: LeasePolicy = LeasePolicy(), pacing: PacingMode = .bound,
            pacingMargin: Double = Pacer.defaultMargin
        ) {
            self.init(
                steps: train.steps, batchSize: train.promptsPerStep * train.groupSize,
                maxStaleness: train.maxStaleness, injectLag: train.injectLag,
                versionsPerStep: train.epochs * train.minibatches, lease: lease, pacing: pacing,
                pacingMargin: pacingMargin, partialRollouts: train.partialRollouts)
        }

        /// The settings of a run configured by `config` (`train`, and `runtime.pacing` /
        /// `runtime.pacing_margin` / `runtime.min_workers`).
        public init(_ config: RunConfig, lease: LeasePolicy = LeasePolicy()) {
            self.init(
                config.train, lease: lease, pacing: config.runtime.pacing,
                pacingMargin: config.runtime.pacingMargin)
            minWorkers = config.runtime.minWorkers
        }
    }

    /// How long a worker may hold a batch: `factor` × the longest of the last `window` measured
    /// sampling times (assignment to delivery), between `floor` and `cap`.
    ///
    /// Until a first sampling time is measured the lease is the `floor`: the shortest lease any
    /// batch gets, so a peer that takes the first batch of a fresh run and never delivers stalls
    /// it no longer than it could stall a measured run. A worker slower than that is not starved:
    /// its late batch is refused (counted, never trained twice) but its sampling time is measured,
    /// so the next lease fits it.
    public struct LeasePolicy: Sendable, Hashable {
        public var floor: Duration
        public var cap: Duration
        public var factor: Int
        public var window: Int

        public init(
            floor: Duration = .seconds(30), cap: Duration = .seconds(300), factor: Int = 4, window: Int = 16
        ) {
            self.floor = floor
            self.cap = max(floor, cap)
            self.factor = max(1, factor)
            self.window = max(1, window)
        }

        /// The lease for sampling times `measured` (newest last): the floor when none is.
        public func duration(measured: [Duration]) -> Duration {
            guard let longest = measured.suffix(window).max() else { return floor }
            return min(cap, max(floor, longest * factor))
        }
    }

    /// A batch handed to a worker.
    public struct Assignment: Sendable, Hashable {
        public var worker: Worker
        /// The batch index (step).
        public var index: Int
        /// How many times the index was handed out before.
        public var attempt: Int
        /// The policy version to sample with.
        public var version: Int
        /// Samples in the batch.
        public var count: Int
        /// When it was handed out.
        public var assignedAt: Duration
        /// When its lease expires.
        public var deadline: Duration
        /// The capability the worker hands back with the batch (``AssignmentToken``).
        public var token: AssignmentToken
    }

    /// The answer to a worker asking for work.
    public enum WorkDecision: Sendable, Hashable {
        /// Sample this.
        case sample(Assignment)
        /// Nothing to hand out now (too far ahead of the learner, or all out): ask again later.
        case wait
        /// The run is over.
        case finished
        /// This worker gets no more work in this incarnation, for this reason (it delivered
        /// forged contents: ``RefusalReason/forgedContents``).
        case refused(RefusalReason)
    }

    /// What happened to a delivered batch.
    public enum DeliveryDecision: Sendable, Hashable {
        /// Taken: it trains in index order.
        case accepted
        /// Refused and counted (``SampleLedger/refused``); never trained.
        case refused(RefusalReason)
        /// The batch is not what was assigned (wrong size or version) and no audit was asked for:
        /// not taken, nothing counted. (Under an audit it is refused as forged contents.)
        case invalid(String)
    }

    /// A batch given up: its samples count lost and its index goes out again.
    public struct Loss: Sendable, Hashable {
        public var worker: Worker
        public var index: Int
        public var attempt: Int
        public var count: Int
    }

    /// A batch to train now.
    public struct TrainOrder: Sendable {
        public var index: Int
        public var batch: RolloutBatch
        /// The version it was assigned (that sampled its first tokens; with partial rollouts later
        /// tokens may carry newer versions).
        public var sampledBy: Int
        /// Its sequence lag (``Lag``): versions between its assigned version and the learner now.
        public var lag: Int
        /// Seconds from its hand-out to its delivery.
        public var sampleSeconds: Double
    }

    /// What to do with the next batch in index order.
    public enum TrainDecision: Sendable {
        /// Train it, then report ``RunStateMachine/trained(_:learner:version:)``.
        case train(TrainOrder)
        /// It was too stale and is dropped (already counted): these are its metrics.
        case dropped(StepMetrics, TrainOrder)
    }

    private struct Delivered: Sendable {
        var batch: RolloutBatch
        var attempt: Int
        var version: Int
        var sampleSeconds: Double
    }

    public let settings: Settings
    /// The incarnation: deliveries naming another one are refused.
    public let incarnation: UInt64
    /// The policy version after the last trained batch.
    public private(set) var version: Int
    /// Batches trained or dropped: the next index to train.
    public private(set) var consumed: Int
    /// Batches to consume before the run is over (`steps`, or fewer after ``drain()``).
    public private(set) var end: Int
    public private(set) var ledger: SampleLedger
    /// Versions whose weights the shell must keep, oldest first (the current one included).
    public private(set) var keptVersions: [Int]
    /// Indices never handed out start here.
    public private(set) var nextFresh: Int
    private var retry: Set<Int> = []
    private var attempts: [Int: Int]
    private var assigned: [Int: Assignment] = [:]
    private var delivered: [Int: Delivered] = [:]
    private var training: TrainOrder?
    /// Assignments given up, by index and attempt, and why a delivery of them is refused (kept
    /// after the index is consumed: one small entry per loss).
    private var givenUp: [Int: [Int: (reason: RefusalReason, assignment: Assignment)]] = [:]
    private var measured: [Duration] = []
    /// Workers that let a lease expire, with the batches (index, attempt) they still owe.
    private var benched: [Worker: Set<Owed>] = [:]
    private struct Owed: Hashable, Sendable {
        var index: Int
        var attempt: Int
    }
    /// Workers that delivered forged contents with their assignment's token: benched for good.
    private var forgers: Set<Worker> = []
    /// Sampling latency and learner step time estimates, and the lookahead they call for.
    public private(set) var pacer: Pacer
    /// Workers that joined this incarnation, until ``Settings/minWorkers`` have (then the run has
    /// its quorum for good and this stays empty).
    private var joined: Set<Worker> = []
    /// Whether ``Settings/minWorkers`` workers have joined: work goes out only then.
    public private(set) var hasQuorum = false

    /// A machine at the start of a run.
    public init(settings: Settings, incarnation: UInt64) {
        self.settings = settings
        self.incarnation = incarnation
        version = 0
        consumed = 0
        end = settings.steps
        ledger = SampleLedger()
        keptVersions = [0]
        nextFresh = 0
        attempts = [:]
        pacer = Pacer(mode: settings.pacing, margin: settings.pacingMargin)
    }

    /// A machine continuing the run `snapshot` was taken of, as a new incarnation: what was in
    /// flight then counts lost (its deliveries will be refused) and is handed out again.
    public init(settings: Settings, restoring snapshot: RunSnapshot, incarnation: UInt64) {
        self.settings = settings
        self.incarnation = incarnation
        version = snapshot.version
        consumed = snapshot.consumed
        end = max(settings.steps, 0)
        var ledger = snapshot.ledger
        ledger.lost += ledger.inFlight
        ledger.inFlight = 0
        self.ledger = ledger
        keptVersions = Set(snapshot.ring + [snapshot.version]).sorted()
        nextFresh = snapshot.consumed
        attempts = snapshot.attempts.filter { $0.key >= snapshot.consumed }
        // A new incarnation measures its pacing again.
        pacer = Pacer(mode: settings.pacing, margin: settings.pacingMargin)
    }

    /// The state to restart from (what is in flight now will count lost in the restarted machine).
    ///
    /// Its ring holds only the versions a restarted run can sample with (lag injection's: the
    /// newest kept version at most `inject_lag` old, and every newer one). Versions kept only for
    /// batches in flight — with partial rollouts, for tokens still being sampled — are left out:
    /// a restart counts those batches lost and refuses their deliveries (previous learner), so
    /// no token of them is ever trained and their weights are never needed again.
    public func snapshot() -> RunSnapshot {
        let floor = keptVersions.last(where: { $0 <= version - settings.injectLag }) ?? keptVersions[0]
        return RunSnapshot(
            version: version, consumed: consumed, attempts: attempts.filter { $0.key >= consumed },
            ledger: ledger,
            ring: keptVersions.filter { $0 >= floor }, incarnation: incarnation)
    }

    // MARK: Hand-out

    /// Whether every batch has been trained or dropped (and none is training).
    public var isFinished: Bool { consumed >= end && training == nil }

    /// The next piece of work for `worker`, at time `now`.
    public mutating func requestWork(worker: Worker, now: Duration) -> WorkDecision {
        guard consumed < end else { return .finished }
        guard !forgers.contains(worker) else { return .refused(.forgedContents) }
        guard benched[worker] == nil else { return .wait }  // it owes a late batch first
        guard hasQuorum || settings.minWorkers <= 1 else { return .wait }  // not all have joined yet
        let candidate: Int
        if let index = retry.min() {
            candidate = index
        } else if nextFresh < end {
            candidate = nextFresh
        } else {
            return .wait  // everything handed out: wait for the end or a loss
        }
        let ahead = candidate - consumed
        guard ahead == 0 || ahead <= aheadBatches else { return .wait }
        if candidate == nextFresh { nextFresh += 1 } else { retry.remove(candidate) }
        let attempt = attempts[candidate, default: 0]
        attempts[candidate] = attempt + 1
        let assignment = Assignment(
            worker: worker, index: candidate, attempt: attempt, version: samplingVersion(ahead: ahead),
            count: settings.batchSize, assignedAt: now,
            deadline: now + settings.lease.duration(measured: measured), token: .random())
        assigned[candidate] = assignment
        ledger.produced += assignment.count
        ledger.inFlight += assignment.count
        return .sample(assignment)
    }

    /// How many batches ``requestWork(worker:now:)`` would hand out now, one after another, to
    /// workers that are not benched (nil once the run is over: every request gets `.finished`).
    /// The learner wakes that many of the requests it holds, not all of them.
    public var assignableCount: Int? {
        guard consumed < end else { return nil }
        guard hasQuorum || settings.minWorkers <= 1 else { return 0 }
        let window = consumed + aheadBatches  // the last index that may go out (and `consumed`)
        let retried = retry.count { $0 <= max(window, consumed) }
        let freshEnd = min(end, max(window, consumed) + 1)
        return retried + max(0, freshEnd - nextFresh)
    }

    /// How many indices past the next one to train may go out now: what ``Settings/aheadLimit``
    /// allows, and no more than the pacer's lookahead (index `consumed` itself always may).
    public var aheadBatches: Int {
        let bound = settings.aheadLimit / settings.versionsPerStep
        guard let lookahead = pacer.lookahead else { return bound }
        return min(bound, lookahead)
    }

    /// The version to sample a batch `ahead` indices past the next one to train with: the newest
    /// kept version at most `inject_lag` older than the version expected to train it (the oldest
    /// kept one at the start of a run).
    private func samplingVersion(ahead: Int) -> Int {
        let target = min(version, version + ahead * settings.versionsPerStep - settings.injectLag)
        return keptVersions.last(where: { $0 <= target }) ?? keptVersions[0]
    }

    /// Whether batch `index`, attempt `attempt`, is assigned to `worker` now (its delivery must
    /// still carry the assignment's token).
    public func expects(worker: Worker, index: Int, attempt: Int) -> Bool {
        guard let assignment = assigned[index] else { return false }
        return assignment.worker == worker && assignment.attempt == attempt
    }

    /// Whether `worker` gets no work now: it let a lease expire and has not delivered that batch
    /// since, or it forged contents (``hasForged(_:)``).
    public func isBenched(_ worker: Worker) -> Bool { benched[worker] != nil || forgers.contains(worker) }

    /// Whether `worker` delivered forged contents with its assignment's token in this incarnation:
    /// it gets no more work, and nothing it delivers is taken.
    public func hasForged(_ worker: Worker) -> Bool { forgers.contains(worker) }

    /// The assignment of `index`, if it is out with a worker.
    public func assignment(of index: Int) -> Assignment? { assigned[index] }

    /// Every assignment out with a worker now.
    public var assignments: [Assignment] { assigned.values.sorted { $0.index < $1.index } }

    // MARK: Delivery and loss

    /// `worker` delivers batch `index` (attempt `attempt`, with the assignment's `token`, assigned
    /// by `incarnation`) at `now`.
    ///
    /// A batch without its assignment's token is refused (``RefusalReason/wrongToken``) and the
    /// assignment stays out with its worker. Given an `audit`, a batch with its token whose
    /// contents are not what the assignment asks for is refused (``RefusalReason/forgedContents``)
    /// and its worker is benched for good (``hasForged(_:)``): every batch it holds is given up at
    /// once (lost, handed out again) and whatever it delivers from then on is refused, counted as
    /// forged contents. A batch given up after its lease expired is refused, but (with the right
    /// token and contents: it is the assignee's) its sampling time counts towards the lease and its
    /// worker is no longer benched for it.
    public mutating func deliver(
        worker: Worker, index: Int, attempt: Int, token: AssignmentToken, incarnation: UInt64,
        batch: RolloutBatch, now: Duration, audit: BatchAudit? = nil
    ) -> DeliveryDecision {
        let n = batch.rollouts.count
        guard incarnation == self.incarnation else { return refuse(n, .previousLearner) }
        guard !forgers.contains(worker) else { return refuse(n, .forgedContents) }
        guard let assignment = assigned[index], assignment.worker == worker, assignment.attempt == attempt
        else {
            if let lost = givenUp[index]?[attempt] {
                guard lost.assignment.worker == worker, lost.assignment.token.matches(token) else {
                    return refuse(n, .wrongToken)
                }
                if lost.reason == .leaseExpired {
                    if let reason = audit?.check(
                        batch, index: index, attempt: attempt, versions: versionRule(lost.assignment))
                    {
                        return forged(worker, n, reason)
                    }
                    // The assignee's own batch, after its lease: how long it took still sets the
                    // lease, and the worker has proved itself.
                    measure(now - lost.assignment.assignedAt)
                    unbench(worker, Owed(index: index, attempt: attempt))
                }
                return refuse(n, lost.reason)
            }
            let duplicate =
                index < consumed || delivered[index]?.attempt == attempt
                || (training?.index == index)
            return refuse(n, duplicate ? .duplicate : .late)
        }
        guard assignment.token.matches(token) else { return refuse(n, .wrongToken) }
        // Not what was assigned: under the audit a forgery like any other (refused, its worker
        // benched, what it holds given up at once); without it (the single-process trainer, whose
        // batches are its own) a bug, answered `.invalid`.
        guard n == assignment.count else {
            if audit != nil { return forged(worker, n, .forgedContents) }
            return .invalid("batch \(index) has \(n) samples, expected \(assignment.count)")
        }
        let rule = versionRule(assignment)
        for (row, rollout) in batch.rollouts.enumerated() {
            guard let violation = rule.violation(rollout.versions) else { continue }
            if audit != nil { return forged(worker, n, violation.reason) }
            return .invalid("batch \(index) rollout \(row): \(violation)")
        }
        if let reason = audit?.check(batch, index: index, attempt: attempt, versions: rule) {
            return forged(worker, n, reason)
        }
        assigned[index] = nil
        let took = max(.zero, now - assignment.assignedAt)
        measure(took)
        delivered[index] = Delivered(
            batch: batch, attempt: attempt, version: assignment.version, sampleSeconds: seconds(took))
        return .accepted
    }

    /// The versions the tokens of a batch of `assignment` may carry now.
    public func versionRule(_ assignment: Assignment) -> TokenVersionRule {
        TokenVersionRule(
            assigned: assignment.version, partialRollouts: settings.partialRollouts, learner: version,
            kept: keptVersions)
    }

    /// Records a sampling time (assignment to delivery) for the lease.
    private mutating func measure(_ took: Duration) {
        measured.append(max(.zero, took))
        pacer.sampled(seconds: seconds(max(.zero, took)))
        if measured.count > settings.lease.window {
            measured.removeFirst(measured.count - settings.lease.window)
        }
    }

    private mutating func unbench(_ worker: Worker, _ owed: Owed) {
        benched[worker]?.remove(owed)
        if benched[worker]?.isEmpty == true { benched[worker] = nil }
    }

    /// `worker` delivered forged contents with its token: it is benched for good and everything it
    /// holds is given up now (its indices go out again at once instead of after its leases).
    private mutating func forged(_ worker: Worker, _ count: Int, _ reason: RefusalReason) -> DeliveryDecision
    {
        forgers.insert(worker)
        benched[worker] = nil  // what it owed no longer matters: it gets nothing either way
        _ = giveUp(assigned.values.filter { $0.worker == worker }, reason: reason)
        return refuse(count, reason)
    }

    private mutating func refuse(_ count: Int, _ reason: RefusalReason) -> DeliveryDecision {
        ledger.refused[reason, default: 0] += count
        return .refused(reason)
    }

    /// `worker` joined (or rejoined). Returns true when this join completes the quorum of
    /// ``Settings/minWorkers`` workers, so waiting workers should ask again.
    public mutating func workerJoined(_ worker: Worker) -> Bool {
        guard !hasQuorum else { return false }
        joined.insert(worker)
        guard joined.count >= settings.minWorkers else { return false }
        hasQuorum = true
        joined = []
        return true
    }

    /// `worker` died, left or joined again: the batches it holds count lost and go out again (and
    /// before the quorum, it no longer counts towards it).
    public mutating func workerLost(_ worker: Worker) -> [Loss] {
        if !hasQuorum { joined.remove(worker) }
        return giveUp(assigned.values.filter { $0.worker == worker }, reason: .late)
    }

    /// The earliest lease deadline of the batches out with workers.
    public var nextLeaseDeadline: Duration? {
        // Called on every request and delivery: one pass, no array of every deadline.
        var earliest: Duration?
        for assignment in assigned.values where earliest.map({ assignment.deadline < $0 }) ?? true {
            earliest = assignment.deadline
        }
        return earliest
    }

    /// Gives up every batch whose lease has expired at `now`: counted lost (and in
    /// ``SampleLedger/leasesExpired``) and handed out again; its worker is benched until it
    /// delivers it.
    public mutating func expireLeases(now: Duration) -> [Loss] {
        let expired = assigned.values.filter { $0.deadline <= now }
        ledger.leasesExpired += expired.count
        for a in expired { benched[a.worker, default: []].insert(Owed(index: a.index, attempt: a.attempt)) }
        return giveUp(expired, reason: .leaseExpired)
    }

    private mutating func giveUp(_ given: [Assignment], reason: RefusalReason) -> [Loss] {
        var losses: [Loss] = []
        for assignment in given.sorted(by: { $0.index < $1.index }) {
            assigned[assignment.index] = nil
            ledger.inFlight -= assignment.count
            ledger.lost += assignment.count
            givenUp[assignment.index, default: [:]][assignment.attempt] = (reason, assignment)
            if assignment.index < end { retry.insert(assignment.index) }
            losses.append(
                Loss(
                    worker: assignment.worker, index: assignment.index, attempt: assignment.attempt,
                    count: assignment.count))
        }
        trim()
        return losses
    }

    // MARK: Training

    /// The next batch in index order, if it is there and nothing is training: train it (then
    /// report ``trained(_:learner:version:)``), or it is dropped for staleness here and now.
    public mutating func nextBatch() -> TrainDecision? {
        guard training == nil, let next = delivered.removeValue(forKey: consumed) else { return nil }
        let order = TrainOrder(
            index: consumed, batch: next.batch, sampledBy: next.version,
            lag: Lag.token(next.version, learner: version),
            sampleSeconds: next.sampleSeconds)
        guard order.lag <= settings.maxStaleness else {
            let n = order.batch.rollouts.count
            ledger.dropped[.stale, default: 0] += n
            ledger.inFlight -= n
            var metrics = metricsBase(order)
            metrics.dropped = n
            finish(order.index)
            return .dropped(metrics, order)
        }
        training = order
        return .train(order)
    }

    /// The batch of `order` was trained: the learner is at `version` now. Returns its metrics.
    public mutating func trained(_ order: TrainOrder, learner: LearnerStepMetrics, version newVersion: Int)
        -> StepMetrics
    {
        precondition(training?.index == order.index, "trained(\(order.index)) without a train order for it")
        training = nil
        pacer.stepped(seconds: learner.seconds)
        let n = order.batch.rollouts.count
        ledger.trained += n
        ledger.inFlight -= n
        var metrics = metricsBase(order)
        metrics.learner = learner
        metrics.tokensPerSecond =
            Double(order.batch.tokenCount) / max(order.sampleSeconds + learner.seconds, 1e-9)
        version = newVersion
        metrics.version = newVersion
        if keptVersions.last != newVersion { keptVersions.append(newVersion) }
        finish(order.index)
        return metrics
    }

    /// The learner step of `order` failed: it stays in flight (the run ends with the error).
    public mutating func trainingFailed(_ order: TrainOrder) {
        training = nil
        delivered[order.index] = Delivered(
            batch: order.batch, attempt: attempts[order.index, default: 1] - 1, version: order.sampledBy,
            sampleSeconds: order.sampleSeconds)
    }

    /// The per-step metrics every mode records for `order` (the learner's part is added when trained).
    private func metricsBase(_ order: TrainOrder) -> StepMetrics {
        let batch = order.batch
        let n = Double(max(1, batch.rollouts.count))
        var metrics = StepMetrics(step: order.index + 1, version: version)
        metrics.reward = batch.rollouts.reduce(0) { $0 + $1.reward } / n
        metrics.accuracy = Double(batch.rollouts.count(where: { $0.outcome == .correct })) / n
        metrics.responseLength = Double(batch.tokenCount) / n
        let lag = BatchLag(batch, assigned: order.sampledBy, learner: version)
        metrics.lagMean = lag.tokenMean
        metrics.lagMax = lag.max
        if settings.partialRollouts {
            metrics.versionSpanMax = lag.spanMax
            metrics.lagHistogram = lag.histogram
        }
        metrics.sampleSeconds = order.sampleSeconds
        return metrics
    }

    private mutating func finish(_ index: Int) {
        attempts[index] = nil  // only batches not yet consumed can be handed out again
        consumed = index + 1
        trim()
    }

    /// Forgets the versions neither lag injection nor a batch out or waiting can use any more.
    private mutating func trim() {
        var outstanding = training?.sampledBy ?? version
        for a in assigned.values { outstanding = min(outstanding, a.version) }
        for d in delivered.values { outstanding = min(outstanding, d.version) }
        let oldestNeeded = min(version - settings.injectLag, outstanding)
        while keptVersions.count > 1, keptVersions[1] <= oldestNeeded { keptVersions.removeFirst() }
    }

    // MARK: Ending

    /// Stops handing out new indices: the run ends once those already handed out are consumed.
    /// Returns the new end if it moved.
    public mutating func drain() -> Int? {
        guard nextFresh < end else { return nil }
        end = nextFresh
        return end
    }

    /// Gives up everything in flight (a drain timed out): batches out count lost, delivered ones
    /// count dropped (``DropReason/abandoned``); the run ends here.
    public mutating func abandonInFlight() -> [Loss] {
        let losses = giveUp(Array(assigned.values), reason: .late)
        for (_, waiting) in delivered {
            ledger.inFlight -= waiting.batch.rollouts.count
            ledger.dropped[.abandoned, default: 0] += waiting.batch.rollouts.count
        }
        delivered = [:]
        retry = []
        end = min(end, consumed)
        trim()
        return losses
    }
}

/// What a run's state machine needs to continue after a restart (the checkpoint's `state.json`
/// holds these fields).
public struct RunSnapshot: Codable, Sendable, Hashable {
    /// The policy version after the last trained batch.
    public var version: Int
    /// Batches trained or dropped.
    public var consumed: Int
    /// How often each index at or after ``consumed`` was handed out (sample ids stay unique).
    public var attempts: [Int: Int]
    /// The ledger (what was in flight counts lost on restore).
    public var ledger: SampleLedger
    /// The versions whose weights were kept.
    public var ring: [Int]
    /// The incarnation that took it.
    public var incarnation: UInt64

    public init(
        version: Int, consumed: Int, attempts: [Int: Int], ledger: SampleLedger, ring: [Int],
        incarnation: UInt64
    ) {
        self.version = version
        self.consumed = consumed
        self.attempts = attempts
        self.ledger = ledger
        self.ring = ring
        self.incarnation = incarnation
    }
}
