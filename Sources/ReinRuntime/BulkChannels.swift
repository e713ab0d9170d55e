import Distributed
import Foundation
import Logging
import Rein
import ReinActors
import Synchronization
import ZeroMQ

/// The learner's end of the weight broadcast: every new policy version goes out once, to every
/// subscriber.
public protocol BulkPublisher: Sendable {
    /// Where subscribers connect (a wildcard host is replaced by the learner's host on the
    /// worker side).
    var endpoint: String? { get }
    /// Publishes `weights` (a subscriber that is not connected yet misses them and fetches by call).
    func publish(_ weights: PolicyWeights) async throws
    /// Stops publishing.
    func close()
}

/// A worker's end of the weight broadcast: keeps the last few versions received.
public protocol BulkSubscriber: Sendable {
    /// The weights of `version`, waiting (suspended) up to `timeout` for them to arrive.
    func weights(_ version: Int, within timeout: Duration) async -> [Float]?
    /// The version received last and its weights, without waiting (nil before any): what a worker
    /// with partial rollouts continues a batch with.
    func newest() -> (version: Int, values: [Float])?
    /// Drops the versions older than `version` and ignores them if they arrive later: the worker
    /// samples `version` now and will not ask for an older one (it fetches one a retried batch
    /// names).
    func forget(olderThan version: Int)
    /// Stops receiving.
    func close()
}

/// The learner's end of the sample stream: hands every batch that arrives to the learner, with the
/// checks of ``LearnerActor/deliver(worker:index:attempt:incarnation:batch:)``.
public protocol SampleSource: Sendable {
    /// Where workers push their batches.
    func endpoint() async -> String
    /// Delivers what arrives to `learner`.
    func attach(to learner: LearnerActor)
    /// Stops receiving.
    func close()
}

/// A worker's end of the sample stream.
public protocol SampleSink: Sendable {
    /// Sends one delivered batch.
    func send(_ columns: SampleColumns, policyVersion: Int) async throws
    /// Stops sending.
    func close()
}

/// Makes the bulk channels of a node — weights and samples, beside the actor system's control
/// calls: ``ZMQBulkChannels`` (sockets) or ``InMemoryBulkChannels`` (one process, no libzmq).
public protocol BulkChannels: Sendable {
    /// A weight publisher of `node` bound to `address`.
    func publisher(node: NodeID, bind address: String) throws -> any BulkPublisher
    /// A subscriber of the publisher at `endpoint`, keeping the newest `keep` versions of
    /// `expectedCount` parameters (`nil`: any count).
    func subscriber(endpoint: String, keep: Int, expectedCount: Int?) -> any BulkSubscriber
    /// A sample source bound to `address`.
    func sampleSource(bind address: String) -> any SampleSource
    /// A sample sink of `node` pushing to the source at `endpoint`.
    func sampleSink(node: NodeID, endpoint: String) throws -> any SampleSink
}

/// A process-unique address for a channel of `kind` under `scheme` (`inproc://rein-weights-…`).
func uniqueAddress(_ kind: String, scheme: String) -> String {
    "\(scheme)://rein-\(kind)-\(UUID().uuidString)"
}

/// The ZeroMQ bulk channels: a PUB socket for weights, PUSH/PULL for samples, each secured and
/// limited by `wire`.
public struct ZMQBulkChannels: BulkChannels {
    /// Floats per payload frame of a weight message.
    public static let weightChunkFloats = WeightBroadcaster.chunkFloats

    let context: ZMQContext
    let wire: WireOptions
    let logger: Logger

    /// Channels on `context` (share it with the node's actor system for `inproc://`).
    public init(context: ZMQContext, wire: WireOptions = WireOptions(), logger: Logger) {
        self.context = context
        self.wire = wire
        self.logger = logger
    }

    public func publisher(node: NodeID, bind address: String) throws -> any BulkPublisher {
        try WeightBroadcaster(
            context: context, node: node, bind: address, security: wire.security, limits: wire.limits,
            rejections: wire.rejections)
    }

    public func subscriber(endpoint: String, keep: Int, expectedCount: Int?) -> any BulkSubscriber {
        WeightCache(
            context: context, endpoint: endpoint, keep: keep, expectedCount: expectedCount, wire: wire,
            logger: logger)
    }

    public func sampleSource(bind address: String) -> any SampleSource {
        ZMQSampleSource(context: context, bind: address, wire: wire, logger: logger)
    }

    public func sampleSink(node: NodeID, endpoint: String) throws -> any SampleSink {
        ZMQSampleSink(
            sender: try BulkSender(
                context: context, node: node, link: .connect(endpoint), security: wire.security))
    }
}

/// A worker's PUSH socket to the learner's sample stream.
struct ZMQSampleSink: SampleSink {
    let sender: BulkSender

    func send(_ columns: SampleColumns, policyVersion: Int) async throws {
        try await sender.send(SampleBatchLayout.frames(columns), policyVersion: UInt64(policyVersion))
    }

    func close() { sender.close() }
}

/// Bulk channels inside one process, without sockets: for in-memory runs and tests of the runtime
/// that must not touch libzmq. Weights are published to every subscriber of the endpoint at the
/// time; samples go straight to the source's learner, with the same checks as the socket path.
public final class InMemoryBulkChannels: BulkChannels {
    private struct Hub {
        var subscribers: [String: [WeightStore]] = [:]
        var sources: [String: InMemorySampleSource] = [:]
    }

    private let hub = Mutex(Hub())
    private let logger: Logger

    /// Channels of their own (endpoints are only reachable through the same value).
    public init(logger: Logger) { self.logger = logger }

    public func publisher(node: NodeID, bind address: String) throws -> any BulkPublisher {
        InMemoryPublisher(channels: self, endpoint: address)
    }

    public func subscriber(endpoint: String, keep: Int, expectedCount: Int?) -> any BulkSubscriber {
        let store = WeightStore(keep: keep, expectedCount: expectedCount)
        hub.withLock { $0.subscribers[endpoint, default: []].append(store) }
        return InMemorySubscriber(
            store: store, onClose: { [weak self] in self?.unsubscribe(store, endpoint) })
    }

    public func sampleSource(bind address: String) -> any SampleSource {
        let source = InMemorySampleSource(endpoint: address, logger: logger)
        hub.withLock { $0.sources[address] = source }
        return source
    }

    public func sampleSink(node: NodeID, endpoint: String) throws -> any SampleSink {
        guard let source = hub.withLock({ $0.sources[endpoint] }) else {
            throw RuntimeError("no sample stream at \(endpoint)")
        }
        return InMemorySampleSink(source: source)
    }

    fileprivate func publish(_ weights: PolicyWeights, to endpoint: String) {
        for store in hub.withLock({ $0.subscribers[endpoint] ?? [] }) {
            store.insert(weights.values, version: weights.version)
        }
    }

    private func unsubscribe(_ store: WeightStore, _ endpoint: String) {
        hub.withLock { $0.subscribers[endpoint]?.removeAll { $0 === store } }
    }
}

private struct InMemoryPublisher: BulkPublisher {
    let channels: InMemoryBulkChannels
    let endpoint: String?

    func publish(_ weights: PolicyWeights) async throws {
        if let endpoint { channels.publish(weights, to: endpoint) }
    }

    func close() {}
}

private struct InMemorySubscriber: BulkSubscriber {
    let store: WeightStore
    let onClose: @Sendable () -> Void

    func weights(_ version: Int, within timeout: Duration) async -> [Float]? {
        await store.weights(version, within: timeout)
    }

    func newest() -> (version: Int, values: [Float])? { store.newest() }

    func forget(olderThan version: Int) { store.forget(olderThan: version) }

    func close() { onClose() }
}

private final class InMemorySampleSource: SampleSource {
    let address: String
    let learner = Mutex<LearnerActor?>(nil)
    let logger: Logger

    init(endpoint: String, logger: Logger) {
        self.address = endpoint
        self.logger = logger
    }

    func endpoint() async -> String { address }

    func attach(to learner: LearnerActor) { self.learner.withLock { $0 = learner } }

    func close() { learner.withLock { $0 = nil } }

    func deliver(_ columns: SampleColumns) async throws {
        guard let learner = learner.withLock({ $0 }) else {
            throw RuntimeError("the sample stream at \(address) is closed")
        }
        do {
            try await deliverColumns(columns, try columns.batch(), to: learner)
        } catch {
            logger.warning("refused a sample batch: \(error)")
        }
    }
}

private struct InMemorySampleSink: SampleSink {
    let source: InMemorySampleSource

    func send(_ columns: SampleColumns, policyVersion: Int) async throws { try await source.deliver(columns) }

    func close() {}
}

/// Hands `batch` (decoded from `columns`) to `learner` if it was drawn with the run's sampler
/// settings and is assigned to its sender (the checks every sample stream makes before a batch
/// reaches the learner).
/// - Throws: ``RuntimeError`` if the batch was sampled with other settings than the run's
///   (`train.temperature`, `train.top_k`: its log-probs are of another behaviour distribution), is
///   not expected, or what the learner threw.
func deliverColumns(_ columns: SampleColumns, _ batch: RolloutBatch, to learner: LearnerActor) async throws {
    if let expected = await learner.whenLocal({ $0.samplerSettings }), columns.sampler != expected {
        throw RuntimeError(
            "sample batch \(columns.index) attempt \(columns.attempt) from \(columns.worker) was sampled with \(columns.sampler), the run samples with \(expected)"
        )
    }
    guard try await learner.expects(worker: columns.worker, index: columns.index, attempt: columns.attempt)
    else {
        throw RuntimeError(
            "sample batch \(columns.index) attempt \(columns.attempt) from \(columns.worker) is not assigned to it"
        )
    }
    try await learner.deliver(
        worker: columns.worker, index: columns.index, attempt: columns.attempt,
        token: columns.token, incarnation: columns.incarnation, batch: batch)
}
