import ReinModel
import Synchronization

/// The newest weights a worker's broadcast delivered, offered to its sampler between tokens
/// (partial rollouts, `train.partial_rollouts`): the worker only supplies the latest weights; the
/// sampler decides when to take them (``ReinModel/WeightSwap``).
final class BroadcastWeights: SamplingWeightsSource {
    private let subscriber: any BulkSubscriber
    private let gpt: GPTConfig
    /// The last version offered, built once.
    private let built = Mutex<VersionedParameters?>(nil)

    init(_ subscriber: any BulkSubscriber, gpt: GPTConfig) {
        self.subscriber = subscriber
        self.gpt = gpt
    }

    func offer(position: Int) -> VersionedParameters? {
        guard let (version, values) = subscriber.newest() else { return nil }
        return built.withLock { built in
            if let built, built.version == version { return built }
            guard let parameters = try? GPTParameters(config: gpt, values: values) else { return nil }
            built = VersionedParameters(version: version, parameters: parameters)
            return built
        }
    }
}

/// A test hook of ``RolloutWorkerActor/run(learner:channels:learnerAddress:stop:beforeDelivery:partialWeights:)``:
/// before batch `index` (assigned `version`) is sampled with partial rollouts on, the source of
/// newer weights to continue it with instead of the broadcast's (nil: the broadcast's). Tests use
/// it to deliver a version after a fixed token (``ReinModel/ScheduledWeights``), deterministically.
public typealias PartialWeightsHook =
    @Sendable (_ index: Int, _ version: Int) async throws -> (any SamplingWeightsSource)?
