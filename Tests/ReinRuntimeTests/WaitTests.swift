import Distributed
import Foundation
import Rein
import ReinActors
import ReinModel
import ReinRuntime
import ReinTestKit
import Testing

@Suite("Waits are suspensions, not polls")
struct WaitTests {
    /// A worker with nothing to do asks for work once and is held by the learner (a long poll)
    /// until there is something: it does not ask again and again. Batch 0 of a one-batch run is
    /// out with another worker; ours waits. The call's hold is half the call timeout (30 s here),
    /// far longer than the test looks, so a count above a handful means a spinning worker.
    @Test func aWorkerWaitingForWorkAsksOnceAndIsAnsweredWhenTheRunChanges() async throws {
        let run = try await HeldRun(callTimeout: .seconds(60))
        let (config, reference, learner, held) = (run.config, run.reference, run.learner, run.held)
        let (worker, workerSystem, learnerSystem) = (run.worker, run.workerSystem, run.learnerSystem)
        #expect(held.index == 0)
        let working = Task { try await work(worker, on: workerSystem) }
        // The worker's first request has reached the learner (and is held there) ...
        #expect(try await eventually { try await learner.workRequestCount() >= 2 })
        try await Task.sleep(for: .milliseconds(300))
        // ... and it did not ask again: with a 2 ms retry it would have asked ~150 times by now.
        let requests = try await learner.workRequestCount()
        #expect(requests <= 3, "\(requests) requestWork calls while nothing could be handed out")

        // The held batch arrives and is trained: the run is over, and the held call says so.
        try await learner.deliver(
            worker: HeldRun.holder, index: held.index, attempt: held.attempt, token: held.token,
            incarnation: held.incarnation,
            batch: try WeightRetentionTests.sample(held, config: config, parameters: reference))
        try await working.value
        #expect(try await worker.deliveredCount() == 0)
        #expect(try await learner.isFinished())
        await workerSystem.shutdown()
        await learnerSystem.shutdown()
    }

    /// An order handed out after its request was held counts as held; one handed out at once does
    /// not. Two batches, no staleness allowed: batch 1 may go out only once batch 0 is trained.
    @Test func anOrderHandedOutAfterAHoldIsCountedAsHeld() async throws {
        let (config, reference, _) = try tinyRun(steps: 2, maxStaleness: 0)
        let run = try InMemoryLearner(
            config: config, reference: reference, lease: .init(floor: .seconds(600), cap: .seconds(600)))
        let learner = run.learner
        let first = try await learner.requestWork(worker: HeldRun.holder, haveVersion: 0, inline: false)
        #expect(first.status == .sample && first.index == 0)
        #expect(try await learner.heldOrderCount() == 0)
        let other = NodeID(rawValue: 0xCAFE)
        let asking = Task { try await learner.requestWork(worker: other, haveVersion: 0, inline: false) }
        #expect(try await eventually { try await learner.workRequestCount() >= 2 })
        #expect(try await learner.heldOrderCount() == 0)  // held, not handed out yet
        try await learner.deliver(
            worker: HeldRun.holder, index: first.index, attempt: first.attempt, token: first.token,
            incarnation: first.incarnation,
            batch: try WeightRetentionTests.sample(first, config: config, parameters: reference))
        let second = try await asking.value
        #expect(second.status == .sample && second.index == 1)
        #expect(try await learner.heldOrderCount() == 1)
        await run.shutdown()
    }

    /// ``StopSignal/wait()`` returns once the signal is raised, also when raised before the wait.
    @Test func aStopSignalWakesItsWaiters() async {
        let signal = StopSignal()
        let waiting = Task { await signal.wait() }
        signal.stop()
        await waiting.value
        #expect(signal.isStopped)
        await signal.wait()  // raised already: returns at once
    }

    /// A cancelled wait returns (it does not hang the task that waits).
    @Test func aCancelledStopWaitReturns() async {
        let signal = StopSignal()
        let waiting = Task { await signal.wait() }
        waiting.cancel()
        await waiting.value
        #expect(!signal.isStopped)
    }
}

@Suite("In-memory bulk channels")
struct InMemoryBulkChannelsTests {
    /// A subscriber waiting for a version gets it when it is published (no libzmq involved), keeps
    /// only the newest versions, and a closed subscriber hears nothing more.
    @Test func publishedVersionsReachEverySubscriber() async throws {
        let channels = InMemoryBulkChannels(logger: quiet)
        let publisher = try channels.publisher(node: .random(), bind: "memory://weights")
        let first = channels.subscriber(endpoint: "memory://weights", keep: 1, expectedCount: 2)
        let second = channels.subscriber(endpoint: "memory://weights", keep: 1, expectedCount: 2)
        let waiting = Task { await first.weights(1, within: .seconds(600)) }
        try await publisher.publish(PolicyWeights(version: 1, values: [1, 2]))
        #expect(await waiting.value == [1, 2])
        #expect(await second.weights(1, within: .zero) == [1, 2])
        try await publisher.publish(PolicyWeights(version: 2, values: [3, 4, 5]))  // wrong size: skipped
        second.close()
        try await publisher.publish(PolicyWeights(version: 3, values: [5, 6]))
        #expect(await first.weights(3, within: .zero) == [5, 6])
        #expect(await first.weights(1, within: .zero) == nil)  // keep: 1
        #expect(await first.weights(2, within: .zero) == nil)
        #expect(await second.weights(3, within: .zero) == nil)
    }

    @Test func aSampleSinkNeedsASource() throws {
        let channels = InMemoryBulkChannels(logger: quiet)
        #expect(throws: RuntimeError.self) {
            try channels.sampleSink(node: .random(), endpoint: "memory://none")
        }
        _ = channels.sampleSource(bind: "memory://samples")
        #expect(throws: Never.self) { try channels.sampleSink(node: .random(), endpoint: "memory://samples") }
    }
}

@Suite("Waits: a worker asked to stop")
struct StoppedWaitTests {
    /// A worker held by the learner's long poll stops at once when asked to, not after the hold
    /// (five minutes here: the time limit fails the test if the worker waits it out).
    @Test(.timeLimit(.minutes(1))) func aWorkerHeldByTheLongPollStopsWhenAsked() async throws {
        let run = try await HeldRun(callTimeout: .seconds(600))
        let (learner, worker) = (run.learner, run.worker)
        let (workerSystem, learnerSystem) = (run.workerSystem, run.learnerSystem)
        let peer = try await workerSystem.connect(to: LearnerActor.name)
        let remote = try LearnerActor.resolve(
            id: .wellKnown(LearnerActor.name, on: peer.node), using: workerSystem)
        let stop = StopSignal()
        let working = Task { try await worker.whenLocal { try await $0.run(learner: remote, stop: stop) } }
        #expect(try await eventually { try await learner.workRequestCount() >= 2 })
        stop.stop()
        try await working.value
        #expect(try await worker.deliveredCount() == 0)
        await workerSystem.shutdown()
        await learnerSystem.shutdown()
    }
}

/// A one-batch run on an in-memory bus whose only batch is out with another worker (``holder``,
/// which never connects), and an idle worker beside it: what the wait tests start from.
struct HeldRun {
    static let holder = NodeID(rawValue: 0xB0B)
    let config: RunConfig
    let reference: GPTParameters
    let learnerSystem: ReinActorSystem
    let learner: LearnerActor
    /// Batch 0, assigned to ``holder``.
    let held: WorkOrder
    let workerSystem: ReinActorSystem
    let worker: RolloutWorkerActor

    init(callTimeout: Duration) async throws {
        (config, reference, _) = try tinyRun(steps: 1, maxStaleness: 0)
        var settings = testSettings
        settings.callTimeout = callTimeout
        let run = try InMemoryLearner(
            config: config, reference: reference, settings: settings,
            lease: .init(floor: .seconds(600), cap: .seconds(600)))
        (learnerSystem, learner, workerSystem) = (run.learnerSystem, run.learner, run.workerSystem)
        held = try await learner.requestWork(worker: Self.holder, haveVersion: 0, inline: false)
        #expect(held.status == .sample)
        worker = try RolloutWorkerActor(
            actorSystem: workerSystem, config: config, gpt: reference.config, logger: quiet)
    }
}
