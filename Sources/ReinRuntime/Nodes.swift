import Distributed
import Foundation
import Logging
import Rein
import ReinActors
import ReinModel
import Synchronization

/// The learner side of every launch mode: serves `learner` (made with
/// ``LearnerActor/named(on:config:reference:broadcaster:folder:resume:lease:evaluator:onStep:logger:)``)
/// on `system` until the run is over, lets the workers hear that it is over, then writes a checkpoint (if the learner has a run
/// folder), `metrics.jsonl` and `ledger.json` to `folder` and checks the ledger.
///
/// With an `evaluator`, it also writes the held-out evaluations every launch mode writes:
/// `eval-start.json` of the starting policy (when the run starts at step 0) and `eval.json` of the
/// final one (also in the result).
///
/// - Parameters:
///   - stop: when raised (SIGTERM), the learner drains: no new batches, the ones handed out are
///     trained, then the run ends early with a balanced ledger and a checkpoint to resume from.
///   - drainTimeout: how long a drain may wait for batches in flight (then they are abandoned), and
///     how long to wait, once every batch is trained, for the workers to be told.
///   - evaluator: the held-out evaluation (`nil`: no eval-start.json / eval.json).
///
/// Nothing here polls: it suspends until the learner reports the run finished
/// (``LearnerActor/waitUntilFinished()``), and a raised `stop` starts the drain at once.
/// - Throws: ``RuntimeError`` if the ledger does not balance, or what the learner threw.
public func serveLearner(
    _ learner: LearnerActor, on system: ReinActorSystem, folder: RunFolder, logger: Logger,
    stop: StopSignal? = nil, evaluator: HeldOutEvaluator? = nil, drainTimeout: Duration = .seconds(3)
) async throws -> DistributedRunResult {
    let watcher = Task { await watchMembership(of: system, for: learner) }
    defer { watcher.cancel() }
    if let evaluator, let policy = await learner.whenLocal({ $0.startingPolicy() }) ?? nil {
        let start = try await evaluator.evaluation(of: policy, afterStep: 0)
        logger.info("start: \(start.summary)")
        try folder.writeEvaluation(start, start: true)
    }
    let drainer = stop.map { stop in
        Task {
            await stop.wait()
            guard !Task.isCancelled else { return }
            try await learner.drain()
            try await Task.sleep(for: drainTimeout)
            logger.warning("drain timed out; abandoning what is still in flight")
            try await learner.abandonInFlight()
        }
    }
    defer { drainer?.cancel() }
    try await learner.whenLocal { try await $0.waitUntilFinished() }
    drainer?.cancel()
    let deadline = ContinuousClock.now + drainTimeout
    await learner.whenLocal { await $0.waitUntilWorkersReleased(until: deadline) }
    try await learner.checkpoint()
    guard let steps = try await learner.whenLocal({ try $0.settleMetrics(in: folder) }) else {
        throw RuntimeError("the learner of serveLearner must be local")
    }
    var result = DistributedRunResult(
        steps: steps, folder: folder, ledger: try await learner.currentLedger(),
        weights: try await learner.currentWeights(), utilisation: try await learner.utilisation(),
        workers: try await learner.workerContributions(), deliveries: try await learner.weightDeliveries())
    try writeRun(result, to: folder)
    if let evaluator {
        let end = try await evaluator.evaluation(of: result.weights.values, afterStep: result.steps)
        try folder.writeEvaluation(end)
        result.evaluation = end
    }
    logger.info("ledger: \(result.ledger.summary)")
    logger.info("weights: \(result.deliveries.summary)")
    return result
}

/// Writes a run's `ledger.json` and `workers.json` (its `metrics.jsonl` is the learner's, settled
/// before), then checks the ledger.
/// - Throws: ``RuntimeError`` if the ledger does not balance or samples are still in flight;
///   ``Rein/RunFolderError`` if a file cannot be written.
public func writeRun(_ result: DistributedRunResult, to folder: RunFolder) throws {
    try result.ledger.write(to: folder)
    try folder.write(result.workers, as: .workers)
    try result.ledger.check(final: true)
}

/// The worker side of every launch mode: connects `system` to the learner at `learnerAddress`
/// (retrying until `connectTimeout`), resolves it and runs a ``RolloutWorkerActor`` until the run
/// is over (or `stop` is raised: then it delivers the batch it is sampling and stops). With
/// `channels`, the worker subscribes to the learner's weight broadcast and pushes its batches on
/// the sample stream, if the learner has them; `wire` is only read for a hint when CURVE is on.
///
/// When the learner is lost (it crashed, or stopped answering), the worker connects again,
/// retrying for up to `reconnectTimeout`, joins the learner it finds there (a restarted one
/// resumes from its checkpoint), gets its current weights and carries on. After a peer-lost
/// verdict (the learner silent past the heartbeat timeout: crashed, stalled or cut off) it does so
/// as a new node, ``ReinActors/ReinActorSystem/successor()``, because the learner and it are dead
/// to each other under their old ids; the batch it held is the learner's to count as lost. A
/// learner that leaves cleanly (the run ended, or it was stopped with SIGTERM) ends the worker
/// normally.
/// - Throws: ``RemoteCallError`` if the learner cannot be reached (within the timeouts).
public func runWorker(
    on system: ReinActorSystem, learnerAddress: String, config: RunConfig, gpt: GPTConfig, logger: Logger,
    channels: (any BulkChannels)? = nil, connectTimeout: Duration = .seconds(30),
    reconnectTimeout: Duration = .seconds(60), stop: StopSignal? = nil,
    beforeDelivery: (@Sendable (Int) async -> Void)? = nil, wire: WireOptions = WireOptions()
) async throws {
    let worker = try RolloutWorkerActor(actorSystem: system, config: config, gpt: gpt, logger: logger)
    try await runWorker(
        worker, on: system, learnerAddress: learnerAddress, logger: logger, channels: channels,
        connectTimeout: connectTimeout, reconnectTimeout: reconnectTimeout, stop: stop,
        beforeDelivery: beforeDelivery, wire: wire)
}

/// ``runWorker(on:learnerAddress:config:gpt:logger:channels:connectTimeout:reconnectTimeout:stop:beforeDelivery:wire:)``
/// with a worker made beforehand on `system` (benchmarks make hundreds before a common start, some
/// with a ``StandInSampler``).
package func runWorker(
    _ worker: RolloutWorkerActor, on system: ReinActorSystem, learnerAddress: String, logger: Logger,
    channels: (any BulkChannels)?, connectTimeout: Duration, reconnectTimeout: Duration, stop: StopSignal?,
    beforeDelivery: (@Sendable (Int) async -> Void)?, wire: WireOptions
) async throws {
    let caller = system
    var (system, worker) = (system, worker)
    /// Works for the learner at `learnerAddress`, rejoining it as needed, until the run is over.
    func stints() async throws {
        var window = connectTimeout
        while true {
            guard
                let peer = try await connectExplained(
                    system, to: learnerAddress, within: window, stop: stop, wire: wire, logger: logger)
            else {
                logger.notice("stopped before reaching the learner")
                return
            }
            logger.info("connected to the learner at \(learnerAddress) (\(peer))")
            let learner = try LearnerActor.resolve(
                id: .wellKnown(LearnerActor.name, on: peer.node), using: system)
            let outcome = try await work(
                worker, for: learner, channels: channels, learnerAddress: learnerAddress, stop: stop,
                beforeDelivery: beforeDelivery)
            switch outcome {
            case .finished:
                return
            case .learnerLeft(let error):
                logger.notice("the learner left (\(error)); stopping")
                return
            case .learnerLost(let error):
                guard reconnectTimeout > .zero, stop?.isStopped != true else { throw error }
                logger.warning("lost the learner (\(error)); reconnecting for up to \(reconnectTimeout)")
                window = reconnectTimeout
                if error.code == .peerLost {
                    // This node and the learner's are dead to each other for good (a tombstone on
                    // each side), whether the learner crashed or was only silent for a while (a
                    // stall, a partition): carry on as a new node, which either one can take as a
                    // new member. Its fresh connection cannot reach a dead learner's half-closed one.
                    await system.shutdown()
                    system = try system.successor()
                    guard let next = try await worker.whenLocal({ [system] in try $0.successor(on: system) })
                    else { throw RuntimeError("the worker is not local") }
                    worker = next
                    logger.notice("rejoining as a new node, \(system.node)")
                }
                try await Task.sleep(for: .milliseconds(200))
            }
        }
    }
    // The caller shuts down `system`; the successors made here are shut down here.
    do {
        try await stints()
    } catch {
        if system !== caller { await system.shutdown() }
        throw error
    }
    if system !== caller { await system.shutdown() }
}

/// How one stint of work with a learner ended.
enum WorkOutcome {
    /// The learner said the run is over (or the worker was asked to stop).
    case finished
    /// The learner left cleanly.
    case learnerLeft(RemoteCallError)
    /// The learner died or stopped answering.
    case learnerLost(RemoteCallError)
}

/// Runs `worker` for `learner` until the run is over or the learner is gone.
func work(
    _ worker: RolloutWorkerActor, for learner: LearnerActor, channels: (any BulkChannels)?,
    learnerAddress: String, stop: StopSignal?, beforeDelivery: (@Sendable (Int) async -> Void)?
) async throws -> WorkOutcome {
    do {
        try await worker.whenLocal {
            try await $0.run(
                learner: learner, channels: channels, learnerAddress: learnerAddress, stop: stop,
                beforeDelivery: beforeDelivery)
        }
        return .finished
    } catch let error as RemoteCallError {
        switch error.code {
        case .peerLeft: return .learnerLeft(error)
        case .peerLost, .timedOut, .deadLetter: return .learnerLost(error)
        default: throw error
        }
    }
}

/// ``connectWithRetry(_:to:within:stop:logger:)``, with a hint when CURVE is on and
/// nobody answers (the usual cause: a key not on the learner's allow-list).
func connectExplained(
    _ system: ReinActorSystem, to address: String, within limit: Duration, stop: StopSignal?,
    wire: WireOptions, logger: Logger
) async throws -> Member? {
    do {
        return try await connectWithRetry(system, to: address, within: limit, stop: stop, logger: logger)
    } catch let error as RemoteCallError where error.code == .timedOut && wire.security != nil {
        throw RuntimeError(
            """
            no answer from the learner at \(address) within \(limit) with CURVE on: \
            is this worker's public key on the learner's allow-list, and is --learner-key the learner's \
            public key? (\(error))
            """)
    }
}

/// Connects to `address`, retrying every 200 ms until `limit` has passed (`nil` if `stop` is
/// raised first; no retries after a protocol-version mismatch, which names both versions).
func connectWithRetry(
    _ system: ReinActorSystem, to address: String, within limit: Duration, stop: StopSignal? = nil,
    logger: Logger
) async throws -> Member? {
    let clock = ContinuousClock()
    let deadline = clock.now + limit
    while true {
        if stop?.isStopped == true { return nil }
        let remaining = deadline - clock.now
        do {
            return try await system.connect(
                to: address, timeout: min(.seconds(2), max(remaining, .milliseconds(100))))
        } catch let error as WireError where error.code == .unsupportedVersion {
            throw error  // another build: retrying cannot help
        } catch let error as TransportSecurityError {
            throw error  // CURVE on one side only, or a refused key: retrying cannot help
        } catch {
            if clock.now >= deadline { throw error }
            logger.debug("learner at \(address) not reachable yet: \(error)")
            try await Task.sleep(for: .milliseconds(200))
        }
    }
}

/// A flag raised once to ask a learner or worker to stop gracefully (SIGTERM, Ctrl-C).
public final class StopSignal: Sendable {
    private let raised = Mutex(false)
    private let wakeups = Wakeups()

    /// A signal not raised yet.
    public init() {}

    /// Raises the signal.
    public func stop() {
        raised.withLock { $0 = true }
        wakeups.notify()
    }

    /// Whether the signal was raised.
    public var isStopped: Bool { raised.withLock { $0 } }

    /// Returns once the signal is raised (or the task is cancelled); suspends meanwhile.
    public func wait() async {
        while !Task.isCancelled {
            let seen = wakeups.generation
            if isStopped { return }
            await wakeups.wait(after: seen)
        }
    }
}
