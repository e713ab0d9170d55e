import CoreMetrics
import Rein
import ReinKL
import ReinMetrics
import ReinTracker

/// How far a sample ledger moved: the counter increments from `old` to `new`, by metric and label
/// values (pure: what ``LearnerMetrics`` records, and what the tests check). Counts that went down
/// (never expected) give no increment.
struct LedgerIncrements: Equatable {
    struct Increment: Equatable {
        var metric: ReinMetric
        var labels: [String]
        var amount: Int
    }

    var increments: [Increment] = []

    /// Every ledger series: the counts, and the drop and refusal counts by reason.
    static let series: [(metric: ReinMetric, labels: [String])] =
        [(.samplesProduced, []), (.samplesTrained, []), (.samplesLost, []), (.leasesExpired, [])]
        + DropReason.allCases.map { (.samplesDropped, [$0.rawValue]) }
        + RefusalReason.allCases.map { (.samplesRefused, [$0.rawValue]) }

    init(from old: SampleLedger, to new: SampleLedger) {
        for (metric, labels) in Self.series {
            add(metric, labels, Self.count(metric, labels, in: new) - Self.count(metric, labels, in: old))
        }
    }

    /// The count of one of ``series`` in `ledger`.
    static func count(_ metric: ReinMetric, _ labels: [String], in ledger: SampleLedger) -> Int {
        switch metric {
        case .samplesProduced: return ledger.produced
        case .samplesTrained: return ledger.trained
        case .samplesLost: return ledger.lost
        case .leasesExpired: return ledger.leasesExpired
        case .samplesDropped:
            return labels.first.flatMap(DropReason.init(rawValue:)).map { ledger.dropped[$0, default: 0] }
                ?? 0
        case .samplesRefused:
            return labels.first.flatMap(RefusalReason.init(rawValue:)).map { ledger.refused[$0, default: 0] }
                ?? 0
        default: return 0
        }
    }

    private mutating func add(_ metric: ReinMetric, _ labels: [String], _ amount: Int) {
        if amount > 0 { increments.append(Increment(metric: metric, labels: labels, amount: amount)) }
    }
}

/// Token-weighted lags of a batch consumed when the learner was at `version`: (lag, tokens)
/// pairs, lag ascending (a token's lag is `version` − the version that sampled it: ``Rein/Lag``;
/// with partial rollouts one sequence's tokens may have several).
func tokenLags(_ batch: RolloutBatch, at version: Int) -> [(lag: Int, tokens: Int)] {
    var counts: [Int: Int] = [:]
    for rollout in batch.rollouts {
        for sampledBy in rollout.versions { counts[Lag.token(sampledBy, learner: version), default: 0] += 1 }
    }
    return counts.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
}

/// The learner's metrics: ``LearnerActor`` tells it of each consumed batch and of membership
/// changes, and it records them through swift-metrics (``ReinMetrics/ReinMetric``).
///
/// The ledger counters follow the run's ``Rein/SampleLedger`` (a resumed learner starts them at
/// the checkpoint's counts).
struct LearnerMetrics {
    private var ledger = SampleLedger()
    private let inFlight = ReinMetric.samplesInFlight.gauge()
    private let consumed = ReinMetric.batchesConsumed.counter()
    private let version = ReinMetric.policyVersion.gauge()
    private let lag = ReinMetric.tokenLag.histogram()
    private let busy = ReinMetric.learnerBusyFraction.gauge()
    private let stepSeconds = ReinMetric.learnerStepSeconds.histogram()
    private let tokensPerSecond = ReinMetric.tokensPerSecond.gauge()
    private let ess = ReinMetric.tokenRatioESSFraction.gauge()
    private let workers = ReinMetric.workersConnected.gauge()

    init() {
        // Every ledger series exists from the start, at 0: a scrape sees each reason.
        for (metric, labels) in LedgerIncrements.series { _ = metric.counter(labels: labels) }
        for path in WeightDeliveryPath.allCases { _ = ReinMetric.weightDeliveries.counter(path.rawValue) }
    }

    /// New weights went to workers by `path`.
    func delivered(weightsBy path: WeightDeliveryPath) {
        ReinMetric.weightDeliveries.counter(path.rawValue).increment()
    }

    /// Batch `order` was trained or dropped (`step`: its metrics); `busyFraction`: of the
    /// learner's working time so far.
    mutating func consumed(
        _ step: StepMetrics, order: RunStateMachine<some Hashable & Sendable>.TrainOrder,
        ledger: SampleLedger, busyFraction: Double
    ) {
        consumed.increment()
        version.record(step.version)
        for (lag, tokens) in tokenLags(order.batch, at: order.sampledBy + order.lag) {
            for _ in 0..<tokens { self.lag.record(lag) }
        }
        if let learned = step.learner {
            stepSeconds.record(learned.seconds)
            tokensPerSecond.record(step.tokensPerSecond)
            if let kl = learned.kl { ess.record(kl.tokenRatio.effectiveSampleSizeFraction) }
        }
        busy.record(busyFraction)
        update(ledger)
    }

    /// Workers joined now, and the ledger after a join or loss.
    mutating func membership(workers count: Int, ledger: SampleLedger) {
        workers.record(count)
        update(ledger)
    }

    private mutating func update(_ new: SampleLedger) {
        for increment in LedgerIncrements(from: ledger, to: new).increments {
            increment.metric.counter(labels: increment.labels).increment(by: increment.amount)
        }
        inFlight.record(new.inFlight)
        ledger = new
    }
}

/// The staleness tracker's latest observation as gauges by lag: token-ratio ESS/N and p1/p99,
/// KL(μ‖π_θ), and the gradient bias of the run's KL form (`form`: its `KLImplementation` id, nil
/// when the catalog has no implementation with the run's configuration).
struct TrackerMetrics: Sendable {
    let form: String?

    init(_ config: TrainConfig) {
        form = KLImplementation.catalog.first { $0.configuration == config.kl }?.id
    }

    func record(_ record: TrackerRecord) {
        ReinMetric.trackerStep.gauge().record(record.step)
        for bucket in record.buckets {
            let lag = String(bucket.lag)
            ReinMetric.trackerRatioESSFraction.gauge(lag).record(bucket.tokenRatio.essFraction)
            ReinMetric.trackerRatioP1.gauge(lag).record(bucket.tokenRatio.p1 ?? bucket.tokenRatio.min)
            ReinMetric.trackerRatioP99.gauge(lag).record(bucket.tokenRatio.p99)
            ReinMetric.trackerBehaviourKL.gauge(lag).record(bucket.behaviourKL)
            if let form, let bias = bucket.implementations.first(where: { $0.id == form }) {
                ReinMetric.trackerKLBias.gauge(lag, form).record(bias.relativeError)
            }
        }
    }
}

/// A rollout worker's metrics: each delivered batch, its sampling time and weights version.
struct WorkerMetrics {
    private let batches = ReinMetric.workerBatches.counter()
    private let samples = ReinMetric.workerSamples.counter()
    private let tokens = ReinMetric.workerTokens.counter()
    private let seconds = ReinMetric.workerSampleSeconds.histogram()
    private let version = ReinMetric.workerWeightsVersion.gauge()

    func delivered(_ batch: RolloutBatch, version: Int, sampleSeconds: Double) {
        batches.increment()
        samples.increment(by: batch.rollouts.count)
        tokens.increment(by: batch.tokenCount)
        seconds.record(sampleSeconds)
        self.version.record(version)
    }
}
