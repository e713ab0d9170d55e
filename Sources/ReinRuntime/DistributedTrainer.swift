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
public struct DistributedTrainer: Sendable {
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
        let workerSystems = (0..<workers).map {
            ReinActorSystem(bus: bus, name: "worker-\($0)", settings: settings, logger: logger)
        }
        let systems = [learnerSystem] + workerSystems
        do {
            let learner = try LearnerActor.named(
                on: learnerSystem, config: config, reference: reference, logger: logger)
            let result = try await withThrowingTaskGroup(of: DistributedRunResult?.self) { group in
                for system in workerSystems {
                    group.addTask {
                        try await runWorker(
                            on: system, learnerAddress: LearnerActor.name, config: config,
                            gpt: reference.config,
                            logger: logger)
                        return nil
                    }
                }
                group.addTask {
                    try await serveLearner(learner, on: learnerSystem, folder: folder, logger: logger)
                }
                var result: DistributedRunResult?
                for try await value in group { result = result ?? value }
                return result
            }
            for system in systems { await system.shutdown() }
            guard let result else { throw RuntimeError("the learner returned no result") }
            return result
        } catch {
            for system in systems { await system.shutdown() }
            throw error
        }
    }
}
