import Distributed
import Foundation
import Logging
import Rein
import ReinActors
import ReinModel
import ReinRuntime
import ReinTestKit
import Synchronization
import Testing

/// Polls `condition` every 10 ms for up to `limit`; whether it became true. The default limit is
/// generous (it only bounds how long a failing test takes): a loaded machine may be slow, and no
/// test asserts how fast a condition comes true.
func eventually(within limit: Duration = .seconds(60), _ condition: () async throws -> Bool) async rethrows
    -> Bool
{
    let clock = ContinuousClock()
    let deadline = clock.now + limit
    while clock.now < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return try await condition()
}

/// Connects `system` to the learner on the bus and runs `worker` until the run ends.
func work(
    _ worker: RolloutWorkerActor, on system: ReinActorSystem,
    beforeDelivery: (@Sendable (Int) async -> Void)? = nil
) async throws {
    let peer = try await system.connect(to: LearnerActor.name)
    let learner = try LearnerActor.resolve(id: .wellKnown(LearnerActor.name, on: peer.node), using: system)
    try await worker.whenLocal { try await $0.run(learner: learner, beforeDelivery: beforeDelivery) }
}

@Suite("Membership: worker loss and rejoin")
struct MembershipTests {
    @Test func aWorkerKilledWithABatchInFlightIsCountedLostAndANewWorkerFinishesTheRun() async throws {
        let (config, reference, folder) = try tinyRun(steps: 4, maxStaleness: 0)
        let expected = try singleProcessMetrics(config: config, reference: reference, folder: folder)

        let bus = InMemoryBus()
        let learnerSystem = ReinActorSystem(
            bus: bus, name: LearnerActor.name, settings: testSettings, logger: quiet)
        let learner = try learnerSystem.withName(LearnerActor.name) {
            try LearnerActor(actorSystem: learnerSystem, config: config, reference: reference, logger: quiet)
        }
        let watcher = Task { await watchMembership(of: learnerSystem, for: learner) }
        defer { watcher.cancel() }

        // The victim trains batch 0, then dies after sampling batch 1, before delivering it.
        let victimSystem = ReinActorSystem(bus: bus, name: "victim", settings: testSettings, logger: quiet)
        let victim = try RolloutWorkerActor(
            actorSystem: victimSystem, config: config, gpt: reference.config, logger: quiet)
        let victimNode = victimSystem.node
        await #expect(throws: RemoteCallError.self) {
            try await work(victim, on: victimSystem) { index in
                if index == 1 { bus.kill(victimNode) }
            }
        }
        #expect(
            try await eventually { try await learner.currentLedger().lost == 16 },
            "the learner counts the in-flight batch lost")
        #expect(try await learner.currentVersion() == 1)

        // A new worker joins at the current version and finishes the run, batch 1 included.
        let newSystem = ReinActorSystem(bus: bus, name: "newcomer", settings: testSettings, logger: quiet)
        let newcomer = try RolloutWorkerActor(
            actorSystem: newSystem, config: config, gpt: reference.config, logger: quiet)
        try await work(newcomer, on: newSystem)
        #expect(try await newcomer.deliveredCount() == 3)

        let ledger = try await learner.currentLedger()
        #expect(
            ledger.produced == 5 * 16 && ledger.trained == 4 * 16 && ledger.lost == 16 && ledger.inFlight == 0
        )
        try ledger.check(final: true)
        let metrics = try await learner.stepMetrics()
        #expect(
            metrics.map(comparable) == expected.map(comparable), "the lost batch was resampled identically")
        for system in [learnerSystem, victimSystem, newSystem] { await system.shutdown() }
    }
}

extension MembershipTests {
    /// A learner and a worker cut off from each other past the heartbeat timeout (a stall or a
    /// partition, not a crash) declare each other dead for good; once the link is back the worker
    /// carries on as a new node and the run ends as the single-process one does.
    @Test func aWorkerCutOffPastTheHeartbeatTimeoutRejoinsAsANewNodeAndTheRunFinishes() async throws {
        let (config, reference, folder) = try tinyRun(steps: 4, maxStaleness: 0)
        let expected = try singleProcessMetrics(config: config, reference: reference, folder: folder)

        let pair = try InMemoryLearner(config: config, reference: reference)
        let (bus, learnerSystem, learner, workerSystem) = (
            pair.bus, pair.learnerSystem, pair.learner, pair.workerSystem
        )
        let (learnerNode, workerNode) = (learnerSystem.node, workerSystem.node)
        let learnerSees = learnerSystem.membershipEvents()
        let workerSees = workerSystem.membershipEvents()
        let cut = Mutex(false)
        // With batch 1 sampled, the link goes silent until each side has declared the other dead.
        let partition: @Sendable (Int) async -> Void = { index in
            guard index == 1,
                !cut.withLock({
                    let first = !$0
                    $0 = true
                    return !first
                })
            else { return }
            bus.partition(learnerNode, workerNode)
            async let learnerVerdict = learnerSees.contains {
                if case .dead(let member, _) = $0 { member.node == workerNode } else { false }
            }
            async let workerVerdict = workerSees.contains {
                if case .dead(let member, _) = $0 { member.node == learnerNode } else { false }
            }
            _ = await (learnerVerdict, workerVerdict)
            bus.heal(learnerNode, workerNode)
        }
        let result = try await withThrowingTaskGroup(of: DistributedRunResult?.self) { group in
            group.addTask {
                try await runWorker(
                    on: workerSystem, learnerAddress: LearnerActor.name, config: config,
                    gpt: reference.config,
                    logger: quiet, beforeDelivery: partition)
                return nil
            }
            group.addTask {
                try await serveLearner(learner, on: learnerSystem, folder: folder, logger: quiet)
            }
            var result: DistributedRunResult?
            for try await value in group { result = result ?? value }
            return result
        }
        for system in [learnerSystem, workerSystem] { await system.shutdown() }
        let run = try #require(result)
        #expect(cut.withLock { $0 }, "the partition happened")
        #expect(run.ledger.lost == 16, "the batch held across the partition is counted lost")
        #expect(run.ledger.trained == 4 * 16)
        try run.ledger.check(final: true)
        let workers = Set(run.workers.workers.map(\.node))
        #expect(
            workers.count == 2 && workers.contains(workerNode.description),
            "the worker came back as a new node")
        #expect(
            try run.metrics().map(comparable) == expected.map(comparable),
            "the lost batch was resampled identically")
    }
}

@Suite("Graceful drain")
struct DrainTests {
    @Test func aDrainedLearnerTrainsWhatItHandedOutAndEndsWithABalancedLedger() async throws {
        let (config, reference, folder) = try tinyRun(steps: 50, maxStaleness: 2)
        let bus = InMemoryBus()
        let learnerSystem = ReinActorSystem(
            bus: bus, name: LearnerActor.name, settings: testSettings, logger: quiet)
        let workerSystems = (0..<2).map {
            ReinActorSystem(bus: bus, name: "worker-\($0)", settings: testSettings, logger: quiet)
        }
        let learner = try LearnerActor.named(
            on: learnerSystem, config: config, reference: reference, logger: quiet)
        let stop = StopSignal()
        let result = try await withThrowingTaskGroup(of: DistributedRunResult?.self) { group in
            for system in workerSystems {
                group.addTask {
                    try await runWorker(
                        on: system, learnerAddress: LearnerActor.name, config: config, gpt: reference.config,
                        logger: quiet)
                    return nil
                }
            }
            group.addTask {
                try await serveLearner(learner, on: learnerSystem, folder: folder, logger: quiet, stop: stop)
            }
            group.addTask {
                _ = await eventually { (try? await learner.currentVersion()) ?? 0 >= 3 }
                stop.stop()
                return nil
            }
            var result: DistributedRunResult?
            for try await value in group { result = result ?? value }
            return result
        }
        for system in workerSystems + [learnerSystem] { await system.shutdown() }
        let run = try #require(result)
        #expect(try run.metrics().count >= 3 && run.metrics().count < 50)
        #expect(
            try run.ledger.trained == run.metrics().count * 16 && run.ledger.produced == run.ledger.trained)
        try run.ledger.check(final: true)
    }
}
