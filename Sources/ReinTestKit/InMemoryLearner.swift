import Logging
import Rein
import ReinActors
import ReinModel
import ReinRuntime

extension TestKit {
    /// Generous heartbeats: a loaded 2-core machine never declares a live peer dead.
    public static let runtimeSettings = ReinActorSystem.Settings(
        callTimeout: .seconds(10), heartbeatInterval: .milliseconds(100), heartbeatTimeout: .seconds(3),
        transportableErrors: [RuntimeError.self])

    /// A logger that drops everything.
    public static let quiet = Logger(label: "rein.test") { _ in SwiftLogNoOpLogHandler() }
}

/// A learner on an in-memory bus, and the actor system of a worker (named `worker`) on the same
/// bus: what the runtime's in-process tests start from.
public struct InMemoryLearner {
    public let bus: InMemoryBus
    public let learnerSystem: ReinActorSystem
    public let learner: LearnerActor
    public let workerSystem: ReinActorSystem

    public init(
        config: RunConfig, reference: GPTParameters,
        settings: ReinActorSystem.Settings = TestKit.runtimeSettings,
        lease: LearnerActor.Machine.LeasePolicy = .init(), logger: Logger = TestKit.quiet
    ) throws {
        bus = InMemoryBus()
        learnerSystem = ReinActorSystem(bus: bus, name: LearnerActor.name, settings: settings, logger: logger)
        learner = try LearnerActor.named(
            on: learnerSystem, config: config, reference: reference, lease: lease, logger: logger)
        workerSystem = ReinActorSystem(bus: bus, name: "worker", settings: settings, logger: logger)
    }

    /// Shuts both actor systems down.
    public func shutdown() async {
        await workerSystem.shutdown()
        await learnerSystem.shutdown()
    }
}
