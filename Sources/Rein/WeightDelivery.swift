/// How a distributed run's learner gets new weights to its workers (`runtime.weight_delivery`).
public enum WeightDeliveryMode: String, Codable, Sendable, Hashable, CaseIterable {
    /// Every new version is published on the weight broadcast to every subscriber (N × the
    /// weights per version); an order carries weights only when the worker has no broadcast
    /// subscription or the version was never published.
    case broadcast
    /// No broadcast: a work order carries the weights of its version whenever the worker holds
    /// another one (the bytes of the versions that orders need, about one copy per batch under
    /// pacing). Cannot serve `train.partial_rollouts` (mid-sequence swaps need the broadcast).
    case orders
    /// ``broadcast`` while partial rollouts are on or at most
    /// ``WeightDelivery/broadcastSubscriberLimit`` workers are joined, otherwise ``orders``.
    case auto
}

/// A path new weights take from the learner to a worker (the `path` label of
/// `rein_weight_deliveries_total`).
public enum WeightDeliveryPath: String, Sendable, Hashable, CaseIterable {
    /// A version published on the broadcast (once, to every subscriber).
    case broadcast
    /// A work order carrying its version's weights.
    case order
    /// A `fetchWeights` call answered.
    case fetch
}

/// New weights the learner sent to workers, counted by path.
public struct WeightDeliveryCounts: Codable, Sendable, Hashable {
    /// Versions published on the broadcast (each to every subscriber).
    public var broadcasts = 0
    /// Work orders that carried the weights of their version.
    public var inOrders = 0
    /// `fetchWeights` calls answered (a worker that missed a broadcast).
    public var fetches = 0

    public init(broadcasts: Int = 0, inOrders: Int = 0, fetches: Int = 0) {
        (self.broadcasts, self.inOrders, self.fetches) = (broadcasts, inOrders, fetches)
    }

    /// `3 versions broadcast, 12 orders carried weights, 0 fetches`.
    public var summary: String {
        "\(broadcasts) versions broadcast, \(inOrders) orders carried weights, \(fetches) fetches"
    }
}

/// Weight delivery as a pure value: whether a new version goes on the broadcast, and whether a
/// work order carries its version's weights. The learner asks it at each trained version and
/// each order; it holds no sockets and no weights.
///
/// The broadcast sends every version to all N subscribers, although each worker needs only the
/// version its next order names: at 256 subscribers that is 256 copies per trained batch where
/// the orders need about one. Its advantages are that the weights arrive before the order
/// (latency hiding) and that partial rollouts can swap weights mid-sequence. So `auto` keeps it
/// for partial rollouts and for a few subscribers, and carries the weights in the orders beyond.
///
/// An order carries the weights when the worker holds another version and either asked for them
/// (`inline`: it has no subscription) or the version was not published (``WeightDeliveryMode/orders``,
/// `auto` above the limit, a version trained before a learner restart): a worker never waits for
/// a broadcast that will not come.
public struct WeightDelivery: Sendable, Hashable {
    /// The most joined workers `auto` still broadcasts to. `rein bench scale --parts run` (AMD EPYC,
    /// 2 cores at load 11–21, 0.11 MB run model, 1 s batches, two rounds each; see *CostModel* in
    /// ReinRuntime) measured, broadcast against orders: at 16 workers work-order p99 11–13 ms
    /// against 16–20 ms (the broadcast hides the transfer behind sampling) for 4.4–4.8 ms of
    /// learner CPU per batch against 3.3–3.7; at 64, p99 38–79 ms against 47–84 ms (no gain) for
    /// 6.5–7.0 ms a batch against 3.4–3.7; at 128 and 256 the orders win on both (256: p99 37–38 ms
    /// against 754–834 ms, 6.3–6.6 ms a batch against 20–21, 3.5× the samples/s).
    public static let broadcastSubscriberLimit = 16

    /// The configured mode.
    public let mode: WeightDeliveryMode
    /// Whether the run swaps weights mid-sequence (`train.partial_rollouts`): `auto` broadcasts.
    public let partialRollouts: Bool
    /// Versions published (or being published) on the broadcast that the learner still keeps.
    public private(set) var published: Set<Int> = []
    /// What was delivered by which path (``WeightDeliveryCounts/fetches`` is the learner's to count).
    public private(set) var counts = WeightDeliveryCounts()

    public init(mode: WeightDeliveryMode, partialRollouts: Bool) {
        self.mode = mode
        self.partialRollouts = partialRollouts
    }

    /// A run's delivery (`runtime.weight_delivery`, `train.partial_rollouts`).
    public init(_ config: RunConfig) {
        self.init(mode: config.runtime.weightDelivery, partialRollouts: config.train.partialRollouts)
    }

    /// Whether joining workers subscribe to the broadcast at all: not with ``WeightDeliveryMode/orders``.
    public var subscribes: Bool { mode != .orders }

    /// Whether a new version goes on the broadcast when `subscribers` workers are joined.
    public func broadcasts(subscribers: Int) -> Bool {
        switch mode {
        case .broadcast: true
        case .orders: false
        case .auto: partialRollouts || subscribers <= Self.broadcastSubscriberLimit
        }
    }

    /// The learner trained `version` with `subscribers` workers joined: whether to publish it (if
    /// so, it counts as published from now on, so orders naming it leave the weights to the
    /// broadcast).
    public mutating func trained(version: Int, subscribers: Int) -> Bool {
        guard broadcasts(subscribers: subscribers) else { return false }
        published.insert(version)
        counts.broadcasts += 1
        return true
    }

    /// Publishing `version` failed: orders naming it carry the weights.
    public mutating func publishFailed(version: Int) {
        published.remove(version)
    }

    /// Whether an order assigning `version` to a worker holding `have` carries the weights; the
    /// worker asked for them (`inline`) when it has no broadcast subscription.
    public mutating func order(version: Int, have: Int, inline: Bool) -> Bool {
        guard have != version, inline || !published.contains(version) else { return false }
        counts.inOrders += 1
        return true
    }

    /// Forgets published versions the learner no longer keeps.
    public mutating func keep(_ versions: Set<Int>) {
        published.formIntersection(versions)
    }
}
