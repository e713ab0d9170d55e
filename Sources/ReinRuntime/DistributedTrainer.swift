import Distributed
import Foundation
import Logging
import Rein
import ReinActors
import ReinModel

/// What a distributed run produced.
public struct DistributedRunResult: Sendable {
    /// Metrics of every batch, in index order.
    public var metrics: [StepMetrics]
    /// The final sample ledger (balanced, nothing in flight).
    public var ledger: RuntimeLedger
    /// The final weights and version.
    public var weights: PolicyWeights
}

/// Forwards the death or departure of worker nodes to the learner, so their batches count lost.
public func watchMembership(of system: ReinActorSystem, for learner: LearnerActor) async {
    for await event in system.membershipEvents() {
        switch event {
        case .dead(let member, _), .left(let member):
            try? await learner.workerLost(member.node)
        case .joined:
            break
        }
    }
}

/// The learner and `workers` rollout workers in one process, each on its own node of an
/// ``InMemoryBus``, talking through the actor system exactly as separate processes do.
public struct DistributedTrainer {
    public let config: RunConfig
    public let reference: GPTParameters
    public let folder: RunFolder
    public let workers: Int
    public let settings: ReinActorSystem.Settings
    let logger: Logger

    /// A run of `config` from `reference` with `workers` workers, writing into `folder`.
    public init(
        config: RunConfig, reference: GPTParameters, folder: RunFolder, workers: Int,
        settings: ReinActorSystem.Settings = ReinActorSystem.Settings(), logger: Logger
    ) {
        self.config = config
        self.reference = reference
        self.folder = folder
        self.workers = workers
        self.settings = settings
        self.logger = logger
    }

    /// Runs `config.train.steps` batches; writes `metrics.jsonl` and `ledger.json`.
    /// - Throws: ``RuntimeError`` if the ledger does not balance at the end, or what a part threw.
    public func run() async throws -> DistributedRunResult {
        let bus = InMemoryBus()
        let learnerSystem = ReinActorSystem(
            bus: bus, name: LearnerActor.name, settings: settings, logger: logger)
        let learner = try learnerSystem.withName(LearnerActor.name) {
            try LearnerActor(actorSystem: learnerSystem, config: config, reference: reference, logger: logger)
        }
        let watcher = Task { await watchMembership(of: learnerSystem, for: learner) }
        var systems = [learnerSystem]
        defer { watcher.cancel() }
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for i in 0..<workers {
                    let system = ReinActorSystem(
                        bus: bus, name: "worker-\(i)", settings: settings, logger: logger)
                    systems.append(system)
                    let worker = try RolloutWorkerActor(
                        actorSystem: system, config: config, gpt: reference.config, logger: logger)
                    group.addTask {
                        let peer = try await system.connect(to: LearnerActor.name)
                        let remote = try LearnerActor.resolve(
                            id: .wellKnown(LearnerActor.name, on: peer.node), using: system)
                        try await worker.whenLocal { try await $0.run(learner: remote) }
                    }
                }
                try await group.waitForAll()
            }
        } catch {
            for system in systems { await system.shutdown() }
            throw error
        }
        let result = DistributedRunResult(
            metrics: try await learner.stepMetrics(), ledger: try await learner.currentLedger(),
            weights: try await learner.currentWeights())
        for system in systems { await system.shutdown() }
        try finish(result)
        return result
    }

    /// Writes the run's metrics and ledger, then checks the ledger.
    func finish(_ result: DistributedRunResult) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        for step in result.metrics {
            try folder.append(
                line: String(decoding: try encoder.encode(step), as: UTF8.self), to: "metrics.jsonl")
        }
        try result.ledger.write(to: folder)
        try result.ledger.check(final: true)
        logger.info("ledger: \(result.ledger.summary)")
    }
}
