import Distributed
import Logging
import Rein
import ReinActors
import ReinModel
import ReinTasks

/// A rollout worker as a distributed actor: joins a ``LearnerActor``, then asks it for work,
/// samples each assigned batch with its local engine and the weights of the assigned version, and
/// delivers it, swapping weights between batches — and, with partial rollouts
/// (`train.partial_rollouts`), also within a batch: the newest weights its broadcast delivered are
/// offered to the sampler between tokens (``BroadcastWeights``), which continues with them at the
/// next token.
public distributed actor RolloutWorkerActor {
    public typealias ActorSystem = ReinActorSystem

    private let config: RunConfig
    private let gpt: GPTConfig
    private let dataset: ArithmeticDataset
    private var sampler: RolloutSampler
    /// Makes the batches instead of `sampler` (benchmarks only: see ``StandInSampler``).
    private let standIn: (any StandInSampler)?
    private let task: ArithmeticTask
    private let logger: Logger
    private var weights: GPTParameters?
    private var version = -1
    private var batches = 0
    private var broadcastSwaps = 0
    private var fetchedSwaps = 0
    private var orderSwaps = 0
    private let metrics = WorkerMetrics()

    /// A worker for a run with `config` whose model has shape `gpt`.
    public init(actorSystem: ReinActorSystem, config: RunConfig, gpt: GPTConfig, logger: Logger) throws {
        try self.init(actorSystem: actorSystem, config: config, gpt: gpt, logger: logger, standIn: nil)
    }

    /// A worker whose batches `standIn` makes (`nil`: the real sampler), drawing its problems from
    /// `dataset` (`nil`: it builds the task's; workers of one process may share one). Package
    /// access: no run reaches it, only benchmarks of the runtime.
    package init(
        actorSystem: ReinActorSystem, config: RunConfig, gpt: GPTConfig, logger: Logger,
        standIn: (any StandInSampler)?, dataset: ArithmeticDataset? = nil
    ) throws {
        self.actorSystem = actorSystem
        self.standIn = standIn
        self.config = config
        self.gpt = gpt
        self.logger = logger
        let task = try ArithmeticTask(config: config.task)
        self.task = task
        self.dataset = dataset ?? ArithmeticDataset(task: task)
        self.sampler = RolloutSampler(
            task: task, config: gpt, temperature: config.train.temperature, topK: config.train.topK,
            threads: config.threads)
    }

    /// A new worker like this one (same run, same stand-in sampler) on `system`: the successor
    /// ``runWorker(on:learnerAddress:config:gpt:logger:channels:connectTimeout:reconnectTimeout:stop:beforeDelivery:wire:)``
    /// makes on a new node after the learner and this worker lost each other.
    func successor(on system: ReinActorSystem) throws -> RolloutWorkerActor {
        try RolloutWorkerActor(
            actorSystem: system, config: config, gpt: gpt, logger: logger, standIn: standIn, dataset: dataset)
    }

    /// Weight swaps served by the broadcast, by fetch calls and by the work orders.
    public distributed func swapCounts() -> [Int] { [broadcastSwaps, fetchedSwaps, orderSwaps] }

    /// Batches this worker delivered.
    public distributed func deliveredCount() -> Int { batches }

    /// The policy version of the weights this worker holds (-1 before joining).
    public distributed func weightsVersion() -> Int { version }

    /// Joins `learner` and works until it says the run is over.
    ///
    /// Asking for work is a long poll: when nothing can be handed out, the learner holds the call
    /// until something can (see ``LearnerActor/requestWork(worker:haveVersion:inline:)``), so a
    /// waiting worker does not spin.
    ///
    /// - Parameters:
    ///   - channels: the bulk channels to subscribe to the learner's weight broadcast and push
    ///     samples with (`nil`: weights come with the work orders, batches are delivered by call).
    ///   - learnerAddress: the learner's address, to reach a broadcast bound to a wildcard host.
    ///   - stop: when raised, the worker returns after the batch it is sampling (at once while it
    ///     waits for work).
    ///   - beforeDelivery: called with each batch index after sampling, before delivering (tests use
    ///     it to kill the worker with a batch in flight).
    ///   - partialWeights: with partial rollouts, where newer weights come from while a batch is
    ///     sampled instead of the broadcast (tests force a sequence across two versions with it).
    /// - Throws: ``RemoteCallError`` when the learner is lost; ``RuntimeError`` on bad weights.
    public func run(
        learner: LearnerActor, channels: (any BulkChannels)? = nil, learnerAddress: String = "",
        stop: StopSignal? = nil,
        beforeDelivery: (@Sendable (Int) async -> Void)? = nil, partialWeights: PartialWeightsHook? = nil
    ) async throws {
        let node = actorSystem.node
        let joined = try await join(learner, node: node)
        if let reference = joined.reference, standIn == nil {
            // Score π_ref here, with every batch: the learner skips its own reference forward.
            sampler = RolloutSampler(
                task: task, config: gpt, temperature: config.train.temperature, topK: config.train.topK,
                threads: config.threads, reference: try GPTParameters(config: gpt, values: reference.values))
        }
        var cache: (any BulkSubscriber)?
        if let channels, let endpoint = joined.broadcast {
            cache = channels.subscriber(
                endpoint: WeightCache.reachable(endpoint, from: learnerAddress), keep: joined.keepVersions,
                expectedCount: joined.parameterCount)
        }
        var stream: (any SampleSink)?
        if let channels, let endpoint = joined.samples {
            stream = try channels.sampleSink(
                node: node, endpoint: WeightCache.reachable(endpoint, from: learnerAddress))
        }
        defer {
            cache?.close()
            stream?.close()
        }
        // The worker's time between batches, for a stand-in sampler (``OrderWait``): how long
        // the last batch took to hand over, and when it first asked for the next order.
        var handOver: Duration?
        var asked: ContinuousClock.Instant?
        while true {
            if stop?.isStopped == true {
                logger.notice("stopping after \(batches) batches")
                return
            }
            if asked == nil { asked = .now }  // a `.wait` reply asks again: the first ask counts
            guard let order = try await nextOrder(from: learner, inline: cache == nil, stop: stop) else {
                logger.notice("stopping after \(batches) batches (while waiting for work)")
                return
            }
            switch order.status {
            case .finished:
                logger.info(
                    """
                    run finished after \(batches) batches from this worker \
                    (\(stream == nil ? "delivered by call" : "on the sample stream")); weights swapped \
                    \(broadcastSwaps) times from the broadcast, \(orderSwaps) in the order, fetched \(fetchedSwaps) \
                    times
                    """)
                return
            case .wait:
                continue  // the learner held the call as long as it could: ask again
            case .sample:
                let held = ContinuousClock.now
                if let update = order.weights {
                    try swap(to: update)
                    orderSwaps += 1
                } else if order.version != version {
                    if let values = await cache?.weights(order.version, within: .milliseconds(500)) {
                        try swap(to: PolicyWeights(version: order.version, values: values))
                        broadcastSwaps += 1
                    } else {
                        try swap(to: try await learner.fetchWeights(version: order.version))
                        fetchedSwaps += 1
                    }
                }
                guard let weights, version == order.version else {
                    throw RuntimeError("asked to sample with version \(order.version), holding \(version)")
                }
                // Orders name versions in increasing order (a retried batch that names an older
                // one is fetched): the cache need not keep those before this one.
                cache?.forget(olderThan: order.version)
                // Sampling is long and CPU-bound: on a thread of its own, so the cooperative pool
                // stays free for the actor system (call timeouts, replies) of every node here.
                let problems = Trainer.problems(forStep: order.index, config: config, dataset: dataset)
                let access = SamplerAccess(sampler)
                let (groupSize, sampled) = (config.train.groupSize, version)
                let seed = Trainer.samplingSeed(forStep: order.index, seed: config.seed)
                let firstID = WorkOrder.firstID(index: order.index, attempt: order.attempt)
                var newer: (any SamplingWeightsSource)?
                if config.train.partialRollouts {
                    newer = try await partialWeights?(order.index, order.version)
                    if newer == nil, let cache {
                        newer = BroadcastWeights(cache, gpt: gpt, assigned: order.version)
                    }
                }
                let started = ContinuousClock.now
                if let standIn, let handOver, let asked {
                    standIn.waited(
                        OrderWait(handOver: handOver, request: held - asked, weights: started - held))
                }
                asked = nil
                let batch =
                    if let standIn {
                        try await standIn.batch(
                            problems, groupSize: groupSize, version: sampled, index: order.index,
                            firstID: firstID)
                    } else {
                        try await onThread("rein-sample") { [newer] in
                            try access.sampler.sample(
                                problems, groupSize: groupSize, parameters: weights, version: sampled,
                                seed: seed, firstID: firstID, weights: newer)
                        }
                    }
                let sampleSeconds = seconds(ContinuousClock.now - started)
                await beforeDelivery?(order.index)
                let handing = ContinuousClock.now
                if let stream {
                    let columns = SampleColumns(
                        batch, worker: node, index: order.index, attempt: order.attempt,
                        incarnation: order.incarnation, token: order.token,
                        sampler: SamplerSettings(config.train))
                    try await stream.send(columns, policyVersion: order.version)
                } else {
                    try await learner.deliver(
                        worker: node, index: order.index, attempt: order.attempt, token: order.token,
                        incarnation: order.incarnation, batch: batch)
                }
                handOver = .now - handing
                batches += 1
                metrics.delivered(batch, version: sampled, sampleSeconds: sampleSeconds)
            }
        }
    }

    /// Joins `learner` and swaps to the weights of its reply; returns the rest of the reply. The
    /// reply's weights end here: kept for the whole run, they would hold the join's version after
    /// the worker swapped to newer ones.
    private func join(_ learner: LearnerActor, node: NodeID) async throws -> (
        broadcast: String?, samples: String?, keepVersions: Int, parameterCount: Int,
        reference: PolicyWeights?
    ) {
        let reply = try await learner.join(worker: node)
        try swap(to: reply.weights)
        return (
            reply.broadcast, reply.samples, reply.keepVersions, reply.weights.values.count, reply.reference
        )
    }

    /// The learner's next order — a long poll — or `nil` if `stop` is raised first (the call is
    /// cancelled: a worker asked to stop does not wait out the learner's hold).
    private func nextOrder(from learner: LearnerActor, inline: Bool, stop: StopSignal?) async throws
        -> WorkOrder?
    {
        let (node, version) = (actorSystem.node, version)
        guard let stop else {
            return try await learner.requestWork(worker: node, haveVersion: version, inline: inline)
        }
        return try await withThrowingTaskGroup(of: WorkOrder?.self) { group in
            group.addTask {
                try await learner.requestWork(worker: node, haveVersion: version, inline: inline)
            }
            group.addTask {
                await stop.wait()
                return nil
            }
            defer { group.cancelAll() }
            return try await group.next() ?? nil
        }
    }

    private func swap(to update: PolicyWeights) throws {
        do {
            weights = try GPTParameters(config: gpt, values: update.values)
        } catch {
            throw RuntimeError("weights of version \(update.version) do not fit the model: \(error)")
        }
        version = update.version
    }
}

extension RolloutWorkerActor: CallerChecked {
    /// A worker's counters are for this process only (tests and status).
    public static let allowedCallers: [String: CallerRoles] = [
        "swapCounts()": .localOperator,
        "deliveredCount()": .localOperator,
        "weightsVersion()": .localOperator,
    ]
}

/// Makes a worker's batches in place of its model: benchmarks of the runtime (`rein bench scale`)
/// measure the learner and the protocol with hundreds of workers whose sampling costs nothing.
/// Package access: a run built from a configuration never gets one.
package protocol StandInSampler: Sendable {
    /// The batch of work order `index` for `problems` (each `groupSize` times), as sampled with
    /// policy `version`, sample ids from `firstID` on: it must pass the learner's ``Rein/BatchAudit``.
    func batch(_ problems: [ArithmeticProblem], groupSize: Int, version: Int, index: Int, firstID: UInt64)
        async throws -> RolloutBatch

    /// Where the worker's time went between its previous batch and the order of the next one
    /// (called before each batch but the first).
    func waited(_ wait: OrderWait)
}

extension StandInSampler {
    package func waited(_ wait: OrderWait) {}
}

/// A worker's time between two batches, in its three parts: handing the batch over (the sample
/// stream's send, or the `deliver` call), asking for the next order (the `requestWork` round trip,
/// from the first ask: a learner's `wait` reply and the ask again are in it), and getting the
/// order's weights (swapping to the weights it carried, to the broadcast's or to fetched ones).
package struct OrderWait: Sendable, Hashable {
    package var handOver: Duration
    package var request: Duration
    package var weights: Duration

    package init(handOver: Duration, request: Duration, weights: Duration) {
        (self.handOver, self.request, self.weights) = (handOver, request, weights)
    }
}

/// Hands the worker's sampler to the sampling thread.
///
/// `@unchecked Sendable`: the worker awaits each sample before it touches the sampler again, so
/// exactly one thread uses it at a time.
private final class SamplerAccess: @unchecked Sendable {
    let sampler: RolloutSampler
    init(_ sampler: RolloutSampler) { self.sampler = sampler }
}
