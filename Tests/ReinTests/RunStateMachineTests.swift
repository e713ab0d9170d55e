import Foundation
import PropertyBased
import ReinTasks
import ReinTestKit
import Testing

@testable import Rein

typealias Machine = RunStateMachine<Int>

/// A batch of `count` samples, every token sampled by `version`.
func batch(count: Int, version: Int) -> RolloutBatch {
    let rollout = Rollout(
        id: 0, group: 0, prompt: [1], completion: [2, 3], behaviourLogProbs: [0, 0],
        versions: [version, version],
        reward: 1, outcome: .correct)
    return RolloutBatch(rollouts: Array(repeating: rollout, count: count), groupSize: 1)
}

/// A learner step's metrics (only `seconds` matters to the machine).
let learned = LearnerStepMetrics()

/// A random run driven through the machine by a list of event codes, checking its invariants
/// after every event, then driven to the end.
struct Simulation {
    /// An order a worker holds (it may outlive its assignment: a zombie worker, a restarted learner).
    struct Held: Hashable {
        var worker: Int
        var index: Int
        var attempt: Int
        var version: Int
        var count: Int
        var incarnation: UInt64
        var token: AssignmentToken
    }

    let settings: Machine.Settings
    var machine: Machine
    var held: [Held] = []
    /// Orders delivered once already (candidates for duplicates).
    var deliveredOrders: [Held] = []
    var trained: [Int] = []
    var dropped: [Int] = []
    var now = Duration.zero
    var checkpoint: (snapshot: RunSnapshot, trained: [Int], dropped: [Int])
    var incarnations: UInt64 = 1
    /// Whether this incarnation has measured a sampling time (a delivery taken, or one refused
    /// after its lease expired).
    var measuredAny = false
    /// The late batches (index, attempt) each worker owes since it let their leases expire: it
    /// gets no work until it has delivered them.
    var owed: [Int: Set<[Int]>] = [:]
    /// Workers that delivered forged contents with their token in this incarnation: benched for good.
    var forgers: Set<Int> = []
    /// Workers the events name; worker `workers` only joins at the end (so the run can end when
    /// every other worker forged).
    let workers = 3
    /// The audit of every delivery: a run whose batches are `batchSize` problems of one sample.
    let audit: Audit

    /// The contents audit of a simulated run, and the honest batches it takes.
    struct Audit {
        let config: RunConfig
        let dataset: ArithmeticDataset
        let audit: BatchAudit

        init(batchSize: Int) throws {
            var config = try TestKit.tinyConfig(promptsPerStep: batchSize)
            config.train.groupSize = 1
            let task = try ArithmeticTask(config: config.task)
            self.config = config
            dataset = ArithmeticDataset(task: task)
            audit = BatchAudit(config: config, dataset: dataset, task: task)
        }

        /// What an honest worker delivers for `order`.
        func honest(_ order: Held) -> RolloutBatch {
            correctBatch(
                audit, config: config, index: order.index, attempt: order.attempt, version: order.version,
                dataset: dataset)
        }

        /// `order`'s batch with a made-up reward.
        func forged(_ order: Held) -> RolloutBatch {
            var batch = honest(order)
            batch.rollouts[order.attempt % batch.rollouts.count].reward = 0.5
            return batch
        }
    }

    init(settings: Machine.Settings) throws {
        self.settings = settings
        machine = Machine(settings: settings, incarnation: 1)
        checkpoint = (machine.snapshot(), [], [])
        audit = try Audit(batchSize: settings.batchSize)
    }

    mutating func run(_ events: [Int]) {
        for code in events {
            step(kind: code % 11, parameter: code / 11)
            checkInvariants()
        }
        finish()
    }

    mutating func step(kind: Int, parameter p: Int) {
        switch kind {
        case 0, 1, 2:  // a worker asks for work
            request(worker: p % workers)
        case 3, 4:  // a worker delivers one of its orders (possibly a stale one), sometimes after a forgery of it
            guard !held.isEmpty else { return }
            let order = held.remove(at: p % held.count)
            if p % 3 == 0 { forge(order) }
            deliver(order)
        case 5:  // a duplicate delivery of something delivered before
            guard !deliveredOrders.isEmpty else { return }
            let again = deliveredOrders[p % deliveredOrders.count]
            let decision = machine.deliver(
                worker: again.worker, index: again.index, attempt: again.attempt, token: again.token,
                incarnation: again.incarnation,
                batch: batch(count: again.count, version: again.version), now: now)
            let reason: RefusalReason =
                again.incarnation != machine.incarnation
                ? .previousLearner : forgers.contains(again.worker) ? .forgedContents : .duplicate
            #expect(decision == .refused(reason), "a second delivery of \(again)")
        case 6:  // a worker is lost; what it holds may still arrive later (a zombie)
            _ = machine.workerLost(p % workers)
        case 7:  // time passes; leases expire
            now += .seconds(p % 7)
            let due = machine.nextLeaseDeadline.map { $0 <= now } ?? false
            let losses = machine.expireLeases(now: now)
            #expect(due == !losses.isEmpty)
            for loss in losses { owed[loss.worker, default: []].insert([loss.index, loss.attempt]) }
            #expect(machine.nextLeaseDeadline.map { $0 > now } ?? true)
        case 8:  // the learner trains what is ready (and sometimes checkpoints)
            trainReady()
            if p % 2 == 0 { checkpoint = (machine.snapshot(), trained, dropped) }
        case 9:  // a worker delivers one of its orders, with its token, but forged contents
            guard !held.isEmpty else { return }
            forgeContents(held.remove(at: p % held.count))
        default:  // the learner crashes and restarts from its last checkpoint
            restart()
        }
    }

    mutating func request(worker: Int) {
        switch machine.requestWork(worker: worker, now: now) {
        case .sample(let a):
            #expect(owed[worker] == nil, "worker \(worker) owes \(owed[worker] ?? []), yet gets work")
            #expect(!forgers.contains(worker), "worker \(worker) forged contents, yet gets work")
            #expect(a.index >= machine.consumed && a.index < machine.end)
            #expect(
                a.index == machine.consumed
                    || (a.index - machine.consumed) * settings.versionsPerStep <= settings.aheadLimit)
            #expect(
                a.index == machine.consumed || a.index - machine.consumed <= machine.pacer.lookahead ?? .max)
            #expect(machine.keptVersions.contains(a.version), "sampling version \(a.version) is kept")
            #expect(a.deadline > a.assignedAt)
            let lease = a.deadline - a.assignedAt
            #expect(lease >= settings.lease.floor && lease <= settings.lease.cap)
            if !measuredAny { #expect(lease == settings.lease.floor, "the first lease is the floor") }
            held.append(
                Held(
                    worker: worker, index: a.index, attempt: a.attempt, version: a.version, count: a.count,
                    incarnation: machine.incarnation, token: a.token))
        case .refused(let reason):
            #expect(reason == .forgedContents && forgers.contains(worker), "worker \(worker) refused work")
        case .wait, .finished:
            break
        }
    }

    mutating func deliver(_ order: Held) {
        let expected =
            order.incarnation == machine.incarnation
            && machine.expects(worker: order.worker, index: order.index, attempt: order.attempt)
        let before = machine.ledger
        let decision = machine.deliver(
            worker: order.worker, index: order.index, attempt: order.attempt, token: order.token,
            incarnation: order.incarnation, batch: audit.honest(order), now: now, audit: audit.audit)
        if order.incarnation != machine.incarnation {
            #expect(decision == .refused(.previousLearner), "a batch of an earlier incarnation is refused")
        } else if expected {
            #expect(decision == .accepted)
            deliveredOrders.append(order)
            measuredAny = true
        } else {
            guard case .refused = decision else {
                Issue.record("\(order) was not assigned, yet \(decision)")
                return
            }
        }
        if decision == .refused(.leaseExpired) {
            measuredAny = true
            owed[order.worker]?.remove([order.index, order.attempt])
            if owed[order.worker]?.isEmpty == true { owed[order.worker] = nil }
        }
        if decision != .accepted {
            #expect(
                machine.ledger.refused.values.reduce(0, +) == before.refused.values.reduce(0, +) + order.count
            )
            #expect(machine.ledger.inFlight == before.inFlight && machine.ledger.trained == before.trained)
        }
    }

    /// `order`'s worker delivers it with its token but a made-up reward: refused and counted; if
    /// the order is still assigned to it (or its lease expired), the worker is benched for good and
    /// everything it holds is given up at once.
    mutating func forgeContents(_ order: Held) {
        let current = order.incarnation == machine.incarnation
        let expected =
            current && machine.expects(worker: order.worker, index: order.index, attempt: order.attempt)
        let lateForLease = current && owed[order.worker]?.contains([order.index, order.attempt]) == true
        let holding = machine.assignments.filter { $0.worker == order.worker }.map(\.count).reduce(0, +)
        let before = machine.ledger
        let decision = machine.deliver(
            worker: order.worker, index: order.index, attempt: order.attempt, token: order.token,
            incarnation: order.incarnation, batch: audit.forged(order), now: now, audit: audit.audit)
        guard case .refused(let reason) = decision else {
            Issue.record("forged contents of \(order) were not refused: \(decision)")
            return
        }
        if !current {
            #expect(reason == .previousLearner)
        } else if expected || lateForLease || forgers.contains(order.worker) {
            #expect(reason == .forgedContents, "forged contents of \(order)")
        }
        var counted = before
        counted.refused[reason, default: 0] += order.count
        if current, reason == .forgedContents, !forgers.contains(order.worker) {
            forgers.insert(order.worker)
            owed[order.worker] = nil
            // Everything it held is lost now, not after its leases.
            counted.lost += holding
            counted.inFlight -= holding
            #expect(!machine.assignments.contains { $0.worker == order.worker })
        }
        #expect(machine.ledger == counted, "only the refusal and what the forger held are counted")
    }

    /// A peer that knows everything about `order` but its token delivers it first: refused and
    /// counted, and the order stays as it was.
    mutating func forge(_ order: Held) {
        let expected =
            order.incarnation == machine.incarnation
            && machine.expects(worker: order.worker, index: order.index, attempt: order.attempt)
        let before = machine.ledger
        let decision = machine.deliver(
            worker: order.worker, index: order.index, attempt: order.attempt,
            token: [.none, .random()][order.index % 2], incarnation: order.incarnation,
            batch: batch(count: order.count, version: order.version), now: now)
        guard case .refused(let reason) = decision else {
            Issue.record("a forgery of \(order) was not refused: \(decision)")
            return
        }
        if expected { #expect(reason == .wrongToken) }
        var counted = before
        counted.refused[reason, default: 0] += order.count
        #expect(machine.ledger == counted, "only the refusal is counted")
        #expect(
            expected
                == (order.incarnation == machine.incarnation
                    && machine.expects(worker: order.worker, index: order.index, attempt: order.attempt)),
            "the assignment stays with its worker")
    }

    mutating func trainReady() {
        while let decision = machine.nextBatch() {
            switch decision {
            case .train(let order):
                #expect(
                    order.lag <= settings.maxStaleness, "batch \(order.index) trained with lag \(order.lag)")
                #expect(order.lag == machine.version - order.sampledBy)
                if settings.injectLag > 0, settings.injectLag % settings.versionsPerStep == 0 {
                    // Exact lag injection: exactly inject_lag once the learner is that far along.
                    #expect(order.lag == min(settings.injectLag, machine.version), "batch \(order.index)")
                }
                #expect(machine.nextBatch().map { _ in true } == nil, "nothing else trains meanwhile")
                var learned = learned  // step times vary, so auto pacing's lookahead does too
                learned.seconds = Double(order.index % 3) + 0.5
                let metrics = machine.trained(
                    order, learner: learned, version: machine.version + settings.versionsPerStep)
                #expect(metrics.step == order.index + 1 && metrics.learner != nil && metrics.dropped == 0)
                trained.append(order.index)
            case .dropped(let metrics, let order):
                #expect(order.lag > settings.maxStaleness)
                #expect(metrics.dropped == order.batch.rollouts.count && metrics.learner == nil)
                dropped.append(order.index)
            }
        }
    }

    mutating func restart() {
        incarnations += 1
        machine = Machine(settings: settings, restoring: checkpoint.snapshot, incarnation: incarnations)
        measuredAny = false
        owed = [:]
        forgers = []
        trained = checkpoint.trained
        dropped = checkpoint.dropped
        #expect(machine.ledger.inFlight == 0)
    }

    func checkInvariants() {
        let ledger = machine.ledger
        #expect(ledger.balances, "\(ledger.summary)")
        #expect(ledger.inFlight >= 0 && ledger.lost >= 0)
        #expect(ledger.trained == trained.count * settings.batchSize)
        #expect(ledger.droppedTotal == dropped.count * settings.batchSize)
        #expect(machine.consumed == trained.count + dropped.count)
        #expect(machine.keptVersions.contains(machine.version))
        #expect(machine.keptVersions == machine.keptVersions.sorted())
        for a in machine.assignments { #expect(machine.keptVersions.contains(a.version)) }
        // The learner wakes as many held requests as batches can go out: exactly as many as
        // requests from workers in good standing would get, one after another.
        var probe = machine
        var handedOut = 0
        var probeWorker = 1000
        while case .sample = probe.requestWork(worker: probeWorker, now: now) {
            handedOut += 1
            probeWorker += 1
        }
        if let assignable = machine.assignableCount {
            #expect(assignable == handedOut, "assignableCount \(assignable), handed out \(handedOut)")
        } else {
            var ended = machine
            guard case .finished = ended.requestWork(worker: 1000, now: now) else {
                Issue.record("assignableCount nil before the end")
                return
            }
        }
        for w in 0...workers {
            #expect(machine.isBenched(w) == (owed[w] != nil || forgers.contains(w)), "worker \(w)")
            #expect(machine.hasForged(w) == forgers.contains(w), "worker \(w)")
        }
    }

    /// Every worker honest from here on (late batches are delivered too, so benched workers come
    /// back; forgers do not, but a new worker joins), every lease generous: the run must end.
    mutating func finish() {
        var rounds = 0
        while !machine.isFinished, rounds < 10 * (settings.steps + 2) {
            rounds += 1
            for w in 0...workers { request(worker: w) }
            let current = held.filter { $0.incarnation == machine.incarnation }
            held = []
            for order in current.reversed() { deliver(order) }
            trainReady()
            checkInvariants()
        }
        #expect(machine.isFinished, "the run ends")
        #expect(machine.ledger.inFlight == 0)
        // Every index trained exactly once or dropped (lost batches were handed out again).
        #expect(
            (trained + dropped).sorted() == Array(0..<machine.end), "trained \(trained) dropped \(dropped)")
        #expect(machine.end == settings.steps)
        guard case .finished = machine.requestWork(worker: 0, now: now) else {
            Issue.record("work handed out after the end")
            return
        }
    }
}

@Suite("Run state machine")
struct RunStateMachineTests {
    static let lease = Machine.LeasePolicy(floor: .seconds(2), cap: .seconds(9), factor: 2, window: 4)

    @Test(
        "Random event sequences: the ledger balances, no batch above max_staleness trains, every index is trained once or dropped, restarts refuse old batches"
    )
    func randomEventSequences() async {
        await propertyCheck(
            count: 400, input: Gen.int(in: 1...9), Gen.int(in: 1...3), Gen.int(in: 0...3), Gen.int(in: 0...3),
            Gen.int(in: 1...2), Gen.int(in: 0...1), Gen.int(in: 0...999).array(of: 0...120)
        ) { steps, batchSize, staleness, lag, versionsPerStep, pacing, events in
            let settings = Machine.Settings(
                steps: steps, batchSize: batchSize, maxStaleness: staleness, injectLag: min(lag, staleness),
                versionsPerStep: versionsPerStep, lease: Self.lease, pacing: PacingMode.allCases[pacing])
            guard var simulation = try? Simulation(settings: settings) else {
                Issue.record("no simulation for \(settings)")
                return
            }
            simulation.run(events)
        }
    }

    @Test func injectedLagIsExactWhileWorkersRunAhead() {
        // max_staleness 3, inject_lag 2, one version per batch: every batch is sampled with the
        // weights exactly two versions older than those that train it (fewer only at the start),
        // however far ahead of the learner it is handed out.
        var machine = Machine(
            settings: .init(steps: 8, batchSize: 1, maxStaleness: 3, injectLag: 2), incarnation: 7)
        var lags: [Int] = []
        while !machine.isFinished {
            var orders: [Machine.Assignment] = []
            for worker in 0..<4 {
                if case .sample(let a) = machine.requestWork(worker: worker, now: .zero) { orders.append(a) }
            }
            for a in orders.reversed() {
                #expect(
                    machine.deliver(
                        worker: a.worker, index: a.index, attempt: a.attempt, token: a.token, incarnation: 7,
                        batch: batch(count: 1, version: a.version), now: .zero) == .accepted)
            }
            while case .train(let order) = machine.nextBatch() {
                lags.append(order.lag)
                _ = machine.trained(order, learner: learned, version: machine.version + 1)
            }
        }
        #expect(lags == [0, 1, 2, 2, 2, 2, 2, 2])
        #expect(machine.keptVersions == [6, 7, 8])
    }

    @Test func noWorkGoesOutUntilMinWorkersHaveJoinedAndTheQuorumIsNeverLostAgain() {
        var machine = Machine(
            settings: .init(steps: 4, batchSize: 1, maxStaleness: 3, injectLag: 0, minWorkers: 2),
            incarnation: 1)
        #expect(machine.workerJoined(0) == false)
        #expect(machine.requestWork(worker: 0, now: .zero) == .wait)
        #expect(machine.workerJoined(0) == false)  // the same worker again is still one
        _ = machine.workerLost(0)  // a worker that left before the quorum no longer counts
        #expect(machine.workerJoined(1) == false)
        #expect(machine.requestWork(worker: 1, now: .zero) == .wait)
        #expect(machine.ledger == SampleLedger())
        #expect(machine.workerJoined(2) == true)  // 1 and 2: the quorum
        #expect(machine.hasQuorum)
        guard case .sample(let first) = machine.requestWork(worker: 1, now: .zero) else {
            Issue.record("no work with the quorum")
            return
        }
        #expect(first.index == 0)
        _ = machine.workerLost(2)
        #expect(machine.workerJoined(3) == false)  // already started: joins change nothing
        guard case .sample = machine.requestWork(worker: 1, now: .zero) else {
            Issue.record("a lost worker after the start stopped the hand-out")
            return
        }
    }

    @Test func minWorkersComesFromTheRuntimeConfig() {
        var config = RunConfig()
        config.runtime.minWorkers = 3
        #expect(Machine.Settings(config).minWorkers == 3)
        #expect(Machine.Settings(RunConfig()).minWorkers == 1)
        var machine = Machine(settings: .init(RunConfig()), incarnation: 1)
        guard case .sample = machine.requestWork(worker: 5, now: .zero) else {  // 1: no wait, no join
            Issue.record("min_workers 1 waited for a join")
            return
        }
    }

    @Test func aLeaseExpiresAfterTheMeasuredSamplingTimeAndItsLateBatchIsRefused() {
        var machine = Machine(
            settings: .init(steps: 3, batchSize: 2, maxStaleness: 0, injectLag: 0, lease: Self.lease),
            incarnation: 1)
        // Before any measurement the lease is the floor.
        guard case .sample(let first) = machine.requestWork(worker: 0, now: .seconds(10)) else {
            Issue.record("no work")
            return
        }
        #expect(first.deadline == .seconds(12))
        // Delivered after 3 s, past its deadline but before the shell expired it: taken.
        #expect(
            machine.deliver(
                worker: 0, index: 0, attempt: 0, token: first.token, incarnation: 1,
                batch: batch(count: 2, version: 0), now: .seconds(13))
                == .accepted)
        guard case .train(let order) = machine.nextBatch() else { return }
        #expect(order.sampleSeconds == 3)
        _ = machine.trained(order, learner: learned, version: 1)
        // Measured 3 s: the lease is 2 × 3 s (between the floor 2 s and the cap 9 s).
        guard case .sample(let second) = machine.requestWork(worker: 1, now: .seconds(20)) else { return }
        #expect(second.deadline == .seconds(26) && machine.nextLeaseDeadline == .seconds(26))
        #expect(machine.expireLeases(now: .seconds(25)).isEmpty)
        let losses = machine.expireLeases(now: .seconds(26))
        #expect(losses == [.init(worker: 1, index: 1, attempt: 0, count: 2)])
        #expect(machine.ledger.leasesExpired == 1 && machine.ledger.lost == 2 && machine.ledger.balances)
        #expect(machine.nextLeaseDeadline == nil)
        // Handed out again (next attempt), and the late delivery of the first is refused.
        guard case .sample(let again) = machine.requestWork(worker: 2, now: .seconds(27)) else { return }
        #expect(again.index == 1 && again.attempt == 1)
        #expect(
            machine.deliver(
                worker: 1, index: 1, attempt: 0, token: second.token, incarnation: 1,
                batch: batch(count: 2, version: 1), now: .seconds(28))
                == .refused(.leaseExpired))
        #expect(machine.ledger.refused == [.leaseExpired: 2] && machine.ledger.balances)
    }

    @Test func aWorkerSlowerThanTheFirstLeaseIsRefusedOnceThenItsTimeSetsTheLease() {
        var machine = Machine(
            settings: .init(steps: 1, batchSize: 2, maxStaleness: 0, injectLag: 0, lease: Self.lease),
            incarnation: 1)
        // A fresh run: the lease is the floor (2 s), not the cap (9 s).
        guard case .sample(let first) = machine.requestWork(worker: 0, now: .zero) else {
            Issue.record("no work")
            return
        }
        #expect(first.deadline == .seconds(2))
        #expect(machine.expireLeases(now: .seconds(2)).count == 1)
        // A forged late delivery measures nothing; the worker's own, 3 s after hand-out, is refused
        // and counted but never trained.
        #expect(
            machine.deliver(
                worker: 0, index: 0, attempt: 0, token: .none, incarnation: 1,
                batch: batch(count: 2, version: 0), now: .seconds(100)) == .refused(.wrongToken))
        #expect(
            machine.deliver(
                worker: 0, index: 0, attempt: 0, token: first.token, incarnation: 1,
                batch: batch(count: 2, version: 0), now: .seconds(3)) == .refused(.leaseExpired))
        let nothingReady = machine.nextBatch() == nil
        #expect(nothingReady && machine.ledger.trained == 0 && machine.ledger.balances)
        #expect(machine.ledger.refused == [.leaseExpired: 2, .wrongToken: 2] && machine.ledger.lost == 2)
        // Handed out again with a lease fitting the measured 3 s (2 × 3 s): delivered in time, trained once.
        guard case .sample(let again) = machine.requestWork(worker: 0, now: .seconds(3)) else {
            Issue.record("not handed out again")
            return
        }
        #expect(again.attempt == 1 && again.deadline == .seconds(9))
        #expect(machine.expireLeases(now: .seconds(8)).isEmpty)
        #expect(
            machine.deliver(
                worker: 0, index: 0, attempt: 1, token: again.token, incarnation: 1,
                batch: batch(count: 2, version: 0), now: .seconds(8)) == .accepted)
        guard case .train(let order) = machine.nextBatch() else {
            Issue.record("not trained")
            return
        }
        _ = machine.trained(order, learner: learned, version: 1)
        #expect(machine.isFinished && machine.ledger.trained == 2 && machine.ledger.balances)
    }

    @Test(
        "A lease is within [floor, cap], the floor before any measurement, and never shorter for a longer sample"
    )
    func leaseBounds() async {
        await propertyCheck(
            count: 300, input: Gen.int(in: 0...20), Gen.int(in: 0...40), Gen.int(in: 1...5),
            Gen.int(in: 1...8),
            Gen.int(in: 0...100).array(of: 0...20), Gen.int(in: 0...100)
        ) { floor, cap, factor, window, times, extra in
            let policy = Machine.LeasePolicy(
                floor: .seconds(floor), cap: .seconds(cap), factor: factor, window: window)
            let measured = times.map { Duration.seconds($0) }
            let lease = policy.duration(measured: measured)
            #expect(lease >= policy.floor && lease <= policy.cap)
            if measured.isEmpty { #expect(lease == policy.floor) }
            // The newest sample alone is covered (up to the cap).
            if let newest = measured.last { #expect(lease >= min(policy.cap, newest * factor)) }
            // A longer newest sample never shortens the lease.
            let longer = policy.duration(measured: measured + [.seconds((times.max() ?? 0) + extra)])
            #expect(longer >= lease)
        }
    }

    @Test func aBatchWithoutItsAssignmentsTokenIsRefusedCountedAndTheAssignmentStays() {
        var machine = Machine(
            settings: .init(steps: 2, batchSize: 2, maxStaleness: 1, injectLag: 0, lease: Self.lease),
            incarnation: 1)
        guard case .sample(let order) = machine.requestWork(worker: 0, now: .zero),
            case .sample(let other) = machine.requestWork(worker: 0, now: .zero)
        else {
            Issue.record("no work")
            return
        }
        #expect(order.token != other.token && order.token != .none, "every assignment draws its own token")
        // Right worker, index, attempt and incarnation; no token, or another assignment's token.
        for forged in [AssignmentToken.none, other.token, .random()] {
            #expect(
                machine.deliver(
                    worker: 0, index: 0, attempt: 0, token: forged, incarnation: 1,
                    batch: batch(count: 2, version: 0), now: .seconds(1)) == .refused(.wrongToken))
        }
        #expect(machine.ledger.refused == [.wrongToken: 6] && machine.ledger.balances)
        let nothingReady = machine.nextBatch() == nil
        #expect(machine.expects(worker: 0, index: 0, attempt: 0) && nothingReady)
        // The worker's own batch is still taken, once.
        #expect(
            machine.deliver(
                worker: 0, index: 0, attempt: 0, token: order.token, incarnation: 1,
                batch: batch(count: 2, version: 0), now: .seconds(1)) == .accepted)
        guard case .train = machine.nextBatch() else {
            Issue.record("the honest batch does not train")
            return
        }
        // A forged late delivery of a batch given up is refused as a forgery too.
        _ = machine.expireLeases(now: .seconds(60))
        #expect(
            machine.deliver(
                worker: 0, index: 1, attempt: 0, token: .none, incarnation: 1,
                batch: batch(count: 2, version: 0), now: .seconds(61)) == .refused(.wrongToken))
        #expect(
            machine.deliver(
                worker: 0, index: 1, attempt: 0, token: other.token, incarnation: 1,
                batch: batch(count: 2, version: 0), now: .seconds(61)) == .refused(.leaseExpired))
    }

    @Test func aDeliveryThatIsNotWhatWasAssignedIsInvalidAndChangesNothing() {
        var machine = Machine(
            settings: .init(steps: 2, batchSize: 2, maxStaleness: 0, injectLag: 0), incarnation: 1)
        guard case .sample(let order) = machine.requestWork(worker: 0, now: .zero) else {
            Issue.record("no work")
            return
        }
        let before = machine.ledger
        guard
            case .invalid = machine.deliver(
                worker: 0, index: 0, attempt: 0, token: order.token, incarnation: 1,
                batch: batch(count: 1, version: 0), now: .zero)
        else {
            Issue.record("a short batch was taken")
            return
        }
        guard
            case .invalid = machine.deliver(
                worker: 0, index: 0, attempt: 0, token: order.token, incarnation: 1,
                batch: batch(count: 2, version: 5), now: .zero)
        else {
            Issue.record("a batch of the wrong version was taken")
            return
        }
        #expect(machine.ledger == before && machine.expects(worker: 0, index: 0, attempt: 0))
    }

    @Test func theLedgerDecodesEveryFormWrittenBefore() throws {
        let distributed = #"{"produced":64,"trained":48,"dropped":{"stale":16},"inFlight":0,"lost":0}"#
        let refused =
            #"{"produced":32,"trained":32,"dropped":{},"inFlight":0,"lost":16,"refused":{"previous learner":16,"late":2}}"#
        let single = #"{"produced":48,"trained":32,"dropped":16}"#
        let decoder = RunCoding.decoder()  // the run folder's one decoder (reads the camelCase keys of older files)
        #expect(
            try decoder.decode(SampleLedger.self, from: Data(distributed.utf8))
                == SampleLedger(produced: 64, trained: 48, dropped: [.stale: 16]))
        #expect(
            try decoder.decode(SampleLedger.self, from: Data(refused.utf8))
                == SampleLedger(
                    produced: 32, trained: 32, lost: 16, refused: [.previousLearner: 16, .late: 2]))
        #expect(
            try decoder.decode(SampleLedger.self, from: Data(single.utf8))
                == SampleLedger(produced: 48, trained: 32, dropped: [.stale: 16]))
        let unknown = #"{"produced":1,"trained":0,"dropped":{"eaten":1},"inFlight":0,"lost":0}"#
        #expect(throws: DecodingError.self) {
            try decoder.decode(SampleLedger.self, from: Data(unknown.utf8))
        }
        let noInFlight = #"{"produced":1,"trained":0,"dropped":{},"lost":0}"#
        #expect(throws: DecodingError.self) {
            try decoder.decode(SampleLedger.self, from: Data(noInFlight.utf8))
        }
        let ledger = SampleLedger(
            produced: 9, trained: 3, dropped: [.abandoned: 2, .stale: 1], inFlight: 1, lost: 2,
            leasesExpired: 1,
            refused: [.duplicate: 3, .leaseExpired: 1])
        let json = String(decoding: try RunCoding.encoder().encode(ledger), as: UTF8.self)
        #expect(json.contains(#""lease expired":1"#) && json.contains(#""abandoned":2"#))
        #expect(try decoder.decode(SampleLedger.self, from: Data(json.utf8)) == ledger)
    }
}
