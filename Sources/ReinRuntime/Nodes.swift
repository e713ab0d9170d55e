import Distributed
import Foundation
import Logging
import Rein
import ReinActors
import ReinModel
import Synchronization
import ZeroMQ

/// The learner side of every launch mode: serves `learner` (made with
/// ``LearnerActor/named(on:config:reference:logger:)``) on `system` until the run is
/// over, lets the workers hear that it is over, then writes `metrics.jsonl` and `ledger.json` to
/// `folder` and checks the ledger.
///
/// - Parameters:
///   - stop: when raised (SIGTERM), the learner drains: no new batches, the ones handed out are
///     trained, then the run ends early with a balanced ledger.
///   - drainTimeout: how long a drain may wait for batches in flight (then they are abandoned), and
///     how long to wait, once every batch is trained, for the workers to be told.
///   - poll: how often to look at the learner's progress.
/// - Throws: ``RuntimeError`` if the ledger does not balance, or what the learner threw.
public func serveLearner(
    _ learner: LearnerActor, on system: ReinActorSystem, folder: RunFolder, logger: Logger,
    stop: StopSignal? = nil, drainTimeout: Duration = .seconds(3), poll: Duration = .milliseconds(20)
) async throws -> DistributedRunResult {
    let watcher = Task { await watchMembership(of: system, for: learner) }
    defer { watcher.cancel() }
    let clock = ContinuousClock()
    var drainDeadline: ContinuousClock.Instant?
    while try await !learner.isFinished() {
        if drainDeadline == nil, stop?.isStopped == true {
            try await learner.drain()
            drainDeadline = clock.now + drainTimeout
        }
        if let drainDeadline, clock.now >= drainDeadline {
            logger.warning("drain timed out; abandoning what is still in flight")
            try await learner.abandonInFlight()
        }
        try await Task.sleep(for: poll)
    }
    let deadline = clock.now + drainTimeout
    while clock.now < deadline, try await !learner.allWorkersReleased() { try await Task.sleep(for: poll) }
    let result = DistributedRunResult(
        metrics: try await learner.stepMetrics(), ledger: try await learner.currentLedger(),
        weights: try await learner.currentWeights(), utilisation: try await learner.utilisation())
    try writeRun(result, to: folder)
    logger.info("ledger: \(result.ledger.summary)")
    return result
}

/// Writes a run's `metrics.jsonl` and `ledger.json`, then checks the ledger.
/// - Throws: ``RuntimeError`` if the ledger does not balance or samples are still in flight.
public func writeRun(_ result: DistributedRunResult, to folder: RunFolder) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = .sortedKeys
    var lines = ""
    for step in result.metrics { lines += String(decoding: try encoder.encode(step), as: UTF8.self) + "\n" }
    try folder.write(Data(lines.utf8), to: "metrics.jsonl")
    try result.ledger.write(to: folder)
    try result.ledger.check(final: true)
}

/// The worker side of every launch mode: connects `system` to the learner at `learnerAddress`
/// (retrying until `connectTimeout`), resolves it and runs a ``RolloutWorkerActor`` until the run
/// is over (or `stop` is raised: then it delivers the batch it is sampling and stops).
/// - Throws: ``RemoteCallError`` if the learner cannot be reached or is lost.
public func runWorker(
    on system: ReinActorSystem, learnerAddress: String, config: RunConfig, gpt: GPTConfig, logger: Logger,
    context: ZMQContext? = nil, connectTimeout: Duration = .seconds(30), stop: StopSignal? = nil,
    beforeDelivery: (@Sendable (Int) async -> Void)? = nil, wire: WireOptions = WireOptions()
) async throws {
    let worker = try RolloutWorkerActor(actorSystem: system, config: config, gpt: gpt, logger: logger)
    let peer: Member
    do {
        peer = try await connectWithRetry(system, to: learnerAddress, within: connectTimeout, logger: logger)
    } catch let error as RemoteCallError where error.code == .timedOut && wire.security != nil {
        throw RuntimeError(
            """
            no answer from the learner at \(learnerAddress) within \(connectTimeout) with CURVE on: \
            is this worker's public key on the learner's allow-list, and is --learner-key the learner's \
            public key? (\(error))
            """)
    }
    logger.info("connected to the learner at \(learnerAddress) (\(peer))")
    let learner = try LearnerActor.resolve(id: .wellKnown(LearnerActor.name, on: peer.node), using: system)
    try await worker.whenLocal {
        try await $0.run(
            learner: learner, context: context, learnerAddress: learnerAddress, stop: stop,
            beforeDelivery: beforeDelivery, wire: wire)
    }
}

/// Connects to `address`, retrying every 200 ms until `limit` has passed (but not after a
/// protocol-version mismatch, which names both versions).
func connectWithRetry(
    _ system: ReinActorSystem, to address: String, within limit: Duration, logger: Logger
) async throws -> Member {
    let clock = ContinuousClock()
    let deadline = clock.now + limit
    while true {
        let remaining = deadline - clock.now
        do {
            return try await system.connect(
                to: address, timeout: min(.seconds(2), max(remaining, .milliseconds(100))))
        } catch let error as WireError where error.code == .unsupportedVersion {
            throw error  // another build: retrying cannot help
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

    /// A signal not raised yet.
    public init() {}

    /// Raises the signal.
    public func stop() { raised.withLock { $0 = true } }

    /// Whether the signal was raised.
    public var isStopped: Bool { raised.withLock { $0 } }
}
