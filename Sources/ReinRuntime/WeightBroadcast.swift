import CoreMetrics
import Foundation
import Logging
import Rein
import ReinActors
import ReinMetrics
import Synchronization
import ZeroMQ

/// The learner's side of the weight broadcast: every new policy version goes out once, on a PUB
/// socket, as one bulk message — the header carries the version, the payload is the flat
/// parameters as raw little-endian `Float` frames of at most ``chunkFloats`` values each.
final class WeightBroadcaster: BulkPublisher {
    /// Floats per payload frame.
    static let chunkFloats = 1 << 20

    private let sender: BulkSender
    /// The endpoint workers subscribe to (a wildcard host is replaced by the learner's host on the
    /// worker side).
    var endpoint: String? { sender.endpoint }

    /// A broadcaster bound to `address` (`tcp://0.0.0.0:*`, `inproc://…`); with `security`, the
    /// PUB is a CURVE server and only subscribers the ZAP handler admits receive anything. It keeps
    /// `limits.maxConnections` subscribers (a run's: `runtime.max_workers` and the operator's);
    /// further ones are refused and counted in `rejections`.
    init(
        context: ZMQContext, node: NodeID, bind address: String, security: TransportSecurity? = nil,
        limits: WireLimits = .default, rejections: WireRejections = WireRejections()
    ) throws {
        sender = try BulkSender(
            context: context, node: node, link: .bind(address), pattern: .pub, highWaterMark: 4,
            sendTimeout: .seconds(5), security: security, limits: limits, rejections: rejections)
    }

    /// Publishes `weights`.
    func publish(_ weights: PolicyWeights) async throws {
        var frames: [WireFrame] = []
        var start = 0
        repeat {
            let end = min(start + Self.chunkFloats, weights.values.count)
            frames.append(WireFrame(floats: Array(weights.values[start..<end])))
            start = end
        } while start < weights.values.count
        let clock = ContinuousClock()
        let started = clock.now
        try await sender.send(frames, policyVersion: UInt64(weights.version))
        ReinMetric.broadcastSeconds.histogram().record(seconds(clock.now - started))
    }

    /// Closes the socket.
    func close() { sender.close() }
}

/// The last few weight versions a worker received, and a wait for one to arrive.
///
/// It keeps at most `keep` versions, and none older than the version the worker samples now
/// (``forget(olderThan:)``): each version is a full copy of the weights.
final class WeightStore: Sendable {
    private struct Kept {
        var versions: [Int: [Float]] = [:]
        /// Versions below this one are dropped (``forget(olderThan:)``).
        var floor = Int.min
    }
    private let kept = Mutex(Kept())
    /// The version inserted last.
    private let last = Mutex<Int?>(nil)
    private let received = Atomic<Int>(0)
    private let arrivals = Wakeups()
    private let keep: Int
    private let expectedCount: Int?

    /// A store of the newest `keep` versions of `expectedCount` parameters (`nil`: any count).
    init(keep: Int, expectedCount: Int? = nil) {
        self.keep = max(1, keep)
        self.expectedCount = expectedCount
    }

    /// Versions received so far.
    var receivedCount: Int { received.load(ordering: .relaxed) }

    /// Versions kept now.
    var keptVersions: [Int] { kept.withLock { $0.versions.keys.sorted() } }

    /// Keeps `values` as `version` (dropping the oldest beyond `keep`), and wakes the waiters; a
    /// version of the wrong size is ignored, and so is one older than ``forget(olderThan:)``'s.
    func insert(_ values: [Float], version: Int) {
        if let expectedCount, values.count != expectedCount { return }
        kept.withLock { kept in
            guard version >= kept.floor else { return }
            kept.versions[version] = values
            while kept.versions.count > keep, let oldest = kept.versions.keys.min() {
                kept.versions[oldest] = nil
            }
        }
        last.withLock { $0 = version }
        received.add(1, ordering: .relaxed)
        arrivals.notify()
    }

    /// The version inserted last (the newest the learner published; a learner publishes versions
    /// in increasing order) and its weights, if any is still kept.
    func newest() -> (version: Int, values: [Float])? {
        guard let version = last.withLock({ $0 }), let values = kept.withLock({ $0.versions[version] }) else {
            return nil
        }
        return (version, values)
    }

    /// Drops the versions older than `version`, and ignores them from now on (the worker samples
    /// `version` and will not ask for older ones).
    func forget(olderThan version: Int) {
        kept.withLock { kept in
            kept.floor = max(kept.floor, version)
            kept.versions = kept.versions.filter { $0.key >= kept.floor }
        }
    }

    /// The weights of `version`, waiting up to `timeout` for them to arrive (suspended until a
    /// version arrives, not polling).
    func weights(_ version: Int, within timeout: Duration) async -> [Float]? {
        let deadline = ContinuousClock.now + timeout
        while true {
            let seen = arrivals.generation
            if let values = kept.withLock({ $0.versions[version] }) { return values }
            if ContinuousClock.now >= deadline || Task.isCancelled { return nil }
            await arrivals.wait(after: seen, until: deadline)
        }
    }
}

/// A worker's side of the ZeroMQ weight broadcast: subscribes, and keeps the last few versions
/// received (none older than the one the worker samples, see ``WeightStore``).
final class WeightCache: BulkSubscriber {
    private let receiver: BulkReceiver
    private let store: WeightStore
    private let task: Task<Void, Never>

    /// Subscribes to `endpoint`, keeping the newest `keep` versions.
    /// - Parameters:
    ///   - expectedCount: the number of parameters; a message with another count is rejected
    ///     (`nil`: any count).
    ///   - wire: CURVE security (the SUB is a CURVE client of the learner's key), limits and the
    ///     rejection counters. A malformed message is counted and skipped; it never ends the
    ///     subscription.
    init(
        context: ZMQContext, endpoint: String, keep: Int, expectedCount: Int? = nil,
        wire: WireOptions = WireOptions(), logger: Logger
    ) {
        let receiver = BulkReceiver(
            context: context, link: .connect(endpoint), pattern: .sub, limits: wire.limits,
            security: wire.security, rejections: wire.rejections, logger: logger)
        let store = WeightStore(keep: keep)
        self.receiver = receiver
        self.store = store
        task = Task {
            do {
                for try await batch in receiver {
                    for message in batch {
                        do {
                            let values = try Self.weights(in: message, expectedCount: expectedCount)
                            store.insert(values, version: Int(message.header.policyVersion))
                        } catch {
                            receiver.reject(message, reason: WireRejections.badPayload, error: error)
                        }
                    }
                }
            } catch {
                logger.warning("weight broadcast stopped: \(error)")
            }
        }
    }

    /// The flat parameters of a weight message, checked before anything is allocated.
    static func weights(in message: BulkMessage, expectedCount: Int?) throws -> [Float] {
        let bytes = message.frames.reduce(0) { $0 + $1.count }
        guard bytes % MemoryLayout<Float>.size == 0 else {
            throw WireError(.lengthMismatch, "\(bytes) weight bytes are not a whole number of floats")
        }
        let count = bytes / MemoryLayout<Float>.size
        if let expectedCount, count != expectedCount {
            throw WireError(.lengthMismatch, "\(count) weights, the model has \(expectedCount)")
        }
        guard message.header.policyVersion <= UInt64(Int.max) else {
            throw WireError(.malformed, "policy version \(message.header.policyVersion) out of range")
        }
        for frame in message.frames where frame.count % MemoryLayout<Float>.size != 0 {
            throw WireError(.lengthMismatch, "\(frame.count) bytes are not a whole number of floats")
        }
        #if _endian(little)
            // Straight from the received frames into the one array (no copy per frame).
            return [Float](unsafeUninitializedCapacity: count) { out, initialized in
                var offset = 0
                for frame in message.frames {
                    frame.withUnsafeBytes { raw in
                        guard let base = raw.baseAddress, let target = out.baseAddress else { return }
                        UnsafeMutableRawPointer(target).advanced(by: offset).copyMemory(
                            from: base, byteCount: raw.count)
                    }
                    offset += frame.count
                }
                initialized = count
            }
        #else
            var values: [Float] = []
            values.reserveCapacity(count)
            for frame in message.frames { values += try frame.floats() }
            return values
        #endif
    }

    /// Where rejected weight messages are counted.
    var rejections: WireRejections { receiver.rejections }

    /// Versions received so far.
    var receivedCount: Int { store.receivedCount }

    /// The weights of `version`, waiting (suspended) up to `timeout` for them to arrive.
    func weights(_ version: Int, within timeout: Duration) async -> [Float]? {
        await store.weights(version, within: timeout)
    }

    func newest() -> (version: Int, values: [Float])? { store.newest() }

    func forget(olderThan version: Int) { store.forget(olderThan: version) }

    /// Versions kept now.
    var keptVersions: [Int] { store.keptVersions }

    /// Stops receiving.
    func close() {
        receiver.close()
        task.cancel()
    }
    /// `endpoint` with a wildcard host (`0.0.0.0`, `*`) replaced by the host of `learnerAddress`.
    public static func reachable(_ endpoint: String, from learnerAddress: String) -> String {
        guard endpoint.hasPrefix("tcp://"), learnerAddress.hasPrefix("tcp://") else { return endpoint }
        let rest = endpoint.dropFirst("tcp://".count)
        guard let colon = rest.lastIndex(of: ":") else { return endpoint }
        let host = rest[..<colon]
        guard host == "0.0.0.0" || host == "*" || host == "[::]" else { return endpoint }
        let learnerRest = learnerAddress.dropFirst("tcp://".count)
        guard let learnerColon = learnerRest.lastIndex(of: ":") else { return endpoint }
        return "tcp://" + learnerRest[..<learnerColon] + rest[colon...]
    }
}
