import ReinModel
import Synchronization

/// The newest weights a worker's broadcast delivered while it samples a batch, offered to its
/// sampler between tokens (partial rollouts, `train.partial_rollouts`): the worker only supplies
/// the latest weights; the sampler decides when to take them (``ReinModel/WeightSwap``).
final class BroadcastWeights: SamplingWeightsSource {
    private let subscriber: any BulkSubscriber
    private let gpt: GPTConfig
    /// Versions up to this one had arrived before the batch started: not offered.
    private let since: Int
    /// The last version offered, built once.
    private let built = Mutex<VersionedParameters?>(nil)

    /// Offers what `subscriber` receives from now on (versions newer than its newest now and than
    /// `assigned`), as parameters of shape `gpt`.
    init(_ subscriber: any BulkSubscriber, gpt: GPTConfig, assigned: Int) {
        self.subscriber = subscriber
        self.gpt = gpt
        since = max(assigned, subscriber.newest()?.version ?? assigned)
    }

    func offer(position: Int) -> VersionedParameters? {
        guard let (version, values) = subscriber.newest(), version > since else { return nil }
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
