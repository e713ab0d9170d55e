import Distributed
import Foundation
import Rein
import ReinActors
import ReinModel
import ReinRuntime
import Testing

/// The attacks of "trust nothing a peer says", each made by a peer that reached the learner's port
/// (on the in-memory bus: the same actor-system checks as over ZeroMQ, without sockets).
@Suite("Hostile peers against a live learner")
struct HostilePeerTests {
    /// A learner on a bus, and a hostile node on the same bus holding a proxy of it.
    struct Setup {
        let bus = InMemoryBus()
        let learnerSystem: ReinActorSystem
        let learner: LearnerActor
        let hostileSystem: ReinActorSystem
        let remote: LearnerActor
        let config: RunConfig
        let reference: GPTParameters

        init(steps: Int = 4) throws {
            let (config, reference, _) = try tinyRun(steps: steps, maxStaleness: 0)
            self.config = config
            self.reference = reference
            learnerSystem = ReinActorSystem(
                bus: bus, name: LearnerActor.name, settings: testSettings, logger: quiet)
            learner = try LearnerActor.named(
                on: learnerSystem, config: config, reference: reference, logger: quiet)
            hostileSystem = ReinActorSystem(bus: bus, name: "hostile", settings: testSettings, logger: quiet)
            remote = try LearnerActor.resolve(
                id: .wellKnown(LearnerActor.name, on: learnerSystem.node), using: hostileSystem)
        }

        func shutdown() async {
            for system in [hostileSystem, learnerSystem] { await system.shutdown() }
        }
    }

    /// Attack 2: a call for `RolloutWorkerActor` methods sent to the learner's id used to run on
    /// the learner and return words of its memory.
    @Test func aCallForAWorkerMethodOnTheLearnerIsRefusedCountedAndReturnsNoValue() async throws {
        let setup = try Setup()
        let wrong = try RolloutWorkerActor.resolve(id: setup.learner.id, using: setup.hostileSystem)
        for call in [
            { _ = try await wrong.weightsVersion() }, { _ = try await wrong.deliveredCount() },
            { _ = try await wrong.swapCounts() },
        ] as [@Sendable () async throws -> Void] {
            let error = await #expect(throws: RemoteCallError.self) { try await call() }
            #expect(error?.code == .wrongType)
        }
        #expect(setup.learnerSystem.rejections.count(WireRejections.wrongActorType) == 3)
        await setup.shutdown()
    }

    /// Attack 3: a worker connection may not drain, stop, redirect or inspect the run.
    @Test func runControlsFromAWorkerConnectionAreRefused() async throws {
        let setup = try Setup()
        let remote = setup.remote
        let controls: [@Sendable () async throws -> Void] = [
            { try await remote.drain() }, { try await remote.abandonInFlight() },
            { try await remote.acceptSamples(at: "tcp://198.51.100.7:9") },
            { try await remote.workerLost(setup.learnerSystem.node) }, { try await remote.checkpoint() },
            { _ = try await remote.currentWeights() },
            { _ = try await remote.expects(worker: .random(), index: 0, attempt: 0) },
        ]
        for control in controls {
            let error = await #expect(throws: RemoteCallError.self) { try await control() }
            #expect(error?.code == .forbidden)
        }
        #expect(setup.learnerSystem.rejections.count(WireRejections.forbidden) == controls.count)
        // Not drained: the first batch is still handed out, and joining gives no sample redirect.
        let joined = try await remote.join(worker: .random())
        #expect(joined.samples == nil)
        let order = try await remote.requestWork(worker: .random(), haveVersion: 0, inline: false)
        #expect(order.status == .sample && order.index == 0)
        await setup.shutdown()
    }

    /// Attack 1 (the part the actor system guarantees): the worker id in `requestWork` is ignored,
    /// the batch is assigned to the calling connection's node, so losing that node releases it
    /// and the run goes on. (Work leases, for a caller that stays connected and never delivers,
    /// belong to the run state machine.)
    @Test(.timeLimit(.minutes(2)))
    func aFakeIdInRequestWorkIsIgnoredAndTheBatchIsLostWithTheCaller() async throws {
        let setup = try Setup(steps: 2)
        let learner = setup.learner
        let watcher = Task { await watchMembership(of: setup.learnerSystem, for: learner) }
        defer { watcher.cancel() }
        let fake = NodeID(rawValue: 0xDEAD_BEEF)
        let hostile = setup.hostileSystem.node
        let order = try await setup.remote.requestWork(worker: fake, haveVersion: -1, inline: false)
        #expect(order.status == .sample && order.index == 0)
        #expect(try await learner.expects(worker: hostile, index: 0, attempt: 0), "assigned to the caller")
        #expect(try await !learner.expects(worker: fake, index: 0, attempt: 0), "not to the id it named")
        // A delivery naming another worker is attributed to the caller as well.
        let joinFake = try await setup.remote.join(worker: fake)
        #expect(joinFake.weights.version == 0)
        #expect(try await learner.workerCount() == 1)

        // The caller vanishes without delivering: its batch counts lost, and an honest worker
        // finishes the run (it used to wait forever for a batch assigned to an id that never existed).
        setup.bus.kill(hostile)
        #expect(try await eventually(within: .seconds(60)) { try await learner.currentLedger().lost == 16 })
        let workerSystem = ReinActorSystem(
            bus: setup.bus, name: "honest", settings: testSettings, logger: quiet)
        let worker = try RolloutWorkerActor(
            actorSystem: workerSystem, config: setup.config, gpt: setup.reference.config, logger: quiet)
        try await work(worker, on: workerSystem)
        #expect(try await learner.isFinished())
        let ledger = try await learner.currentLedger()
        #expect(ledger.trained == 2 * 16 && ledger.lost == 16 && ledger.inFlight == 0)
        await workerSystem.shutdown()
        await setup.shutdown()
    }
}
