import CoreMetrics

/// Every metric Rein records, in one place: its Prometheus name, kind, labels, help text and (for
/// histograms) buckets.
///
/// Libraries record through the swift-metrics API with ``counter(_:)``, ``gauge(_:)`` and
/// ``histogram(_:)``; only the command line bootstraps a `MetricsSystem` (and serves the values in
/// the Prometheus text format). Without one, recording costs next to nothing (swift-metrics'
/// no-op handlers).
public enum ReinMetric: String, CaseIterable, Sendable {
    // The sample ledger (learner).
    case samplesProduced = "rein_samples_produced_total"
    case samplesTrained = "rein_samples_trained_total"
    case samplesDropped = "rein_samples_dropped_total"
    case samplesLost = "rein_samples_lost_total"
    case leasesExpired = "rein_leases_expired_total"
    case samplesRefused = "rein_samples_refused_total"
    case samplesInFlight = "rein_samples_in_flight"
    // Learner progress and timing.
    case batchesConsumed = "rein_batches_consumed_total"
    case policyVersion = "rein_policy_version"
    case tokenLag = "rein_token_lag"
    case learnerBusyFraction = "rein_learner_busy_fraction"
    case learnerStepSeconds = "rein_learner_step_seconds"
    case broadcastSeconds = "rein_weight_broadcast_seconds"
    case weightDeliveries = "rein_weight_deliveries_total"
    case tokensPerSecond = "rein_tokens_per_second"
    case tokenRatioESSFraction = "rein_token_ratio_ess_fraction"
    case workersConnected = "rein_workers_connected"
    // The staleness tracker (every `train.tracker_every` steps), by token lag.
    case trackerStep = "rein_tracker_step"
    case trackerRatioESSFraction = "rein_tracker_token_ratio_ess_fraction"
    case trackerRatioP1 = "rein_tracker_token_ratio_p1"
    case trackerRatioP99 = "rein_tracker_token_ratio_p99"
    case trackerBehaviourKL = "rein_tracker_behaviour_kl"
    case trackerKLBias = "rein_tracker_kl_gradient_bias"
    // The wire (every node).
    case wireRejections = "rein_wire_rejections_total"
    // Rollout workers.
    case workerBatches = "rein_worker_batches_total"
    case workerSamples = "rein_worker_samples_total"
    case workerTokens = "rein_worker_tokens_total"
    case workerSampleSeconds = "rein_worker_sample_seconds"
    case workerWeightsVersion = "rein_worker_weights_version"

    /// How a metric is exposed.
    public enum Kind: String, Sendable {
        /// Only goes up (a swift-metrics `Counter`).
        case counter
        /// A value set now and then (a swift-metrics `Gauge`).
        case gauge
        /// Observations counted into buckets (a swift-metrics `Recorder` that aggregates).
        case histogram
    }

    /// The label names metrics carry.
    public enum Label: String, Sendable {
        /// Why samples were dropped or refused (`Rein.DropReason` / `Rein.RefusalReason` raw
        /// values), or why a wire message was rejected (`ReinActors.WireRejections` reasons).
        case reason
        /// Learner version − the version that sampled the token (staleness tracker buckets).
        case lag
        /// The `KLImplementation` id of the run's KL form.
        case form
        /// How new weights reached a worker (`Rein.WeightDeliveryPath` raw values).
        case path
    }

    /// The Prometheus metric name.
    public var name: String { rawValue }

    /// How it is exposed.
    public var kind: Kind {
        switch self {
        case .samplesProduced, .samplesTrained, .samplesDropped, .samplesLost, .leasesExpired,
            .samplesRefused, .batchesConsumed, .wireRejections, .workerBatches, .workerSamples,
            .workerTokens, .weightDeliveries:
            return .counter
        case .tokenLag, .learnerStepSeconds, .broadcastSeconds, .workerSampleSeconds:
            return .histogram
        case .samplesInFlight, .policyVersion, .learnerBusyFraction, .tokensPerSecond,
            .tokenRatioESSFraction, .workersConnected, .trackerStep, .trackerRatioESSFraction,
            .trackerRatioP1, .trackerRatioP99, .trackerBehaviourKL, .trackerKLBias, .workerWeightsVersion:
            return .gauge
        }
    }

    /// The labels every series of the metric carries, in this order.
    public var labels: [Label] {
        switch self {
        case .samplesDropped, .samplesRefused, .wireRejections: return [.reason]
        case .trackerRatioESSFraction, .trackerRatioP1, .trackerRatioP99, .trackerBehaviourKL: return [.lag]
        case .trackerKLBias: return [.lag, .form]
        case .weightDeliveries: return [.path]
        default: return []
        }
    }

    /// The bucket upper bounds of a histogram (empty for other kinds).
    public var buckets: [Double] {
        switch self {
        case .tokenLag: return [0, 1, 2, 3, 4, 6, 8, 12, 16, 32, 64]
        case .learnerStepSeconds, .workerSampleSeconds:
            return [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120]
        case .broadcastSeconds: return [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1]
        default: return []
        }
    }

    /// One line saying what the metric counts (the exposition's `# HELP`).
    public var help: String {
        switch self {
        case .samplesProduced: return "Samples handed out for sampling (the sample ledger's produced)."
        case .samplesTrained: return "Samples the learner trained on."
        case .samplesDropped: return "Samples delivered but never trained, by drop reason."
        case .samplesLost:
            return "Samples whose worker died, left or let its lease expire before delivering them."
        case .leasesExpired: return "Work leases that expired (their samples are counted lost)."
        case .samplesRefused:
            return "Samples delivered but refused (outside the ledger's balance), by reason."
        case .samplesInFlight: return "Samples assigned or delivered, neither trained nor dropped yet."
        case .batchesConsumed: return "Batches trained or dropped by the learner."
        case .policyVersion: return "The learner's policy version after its last step."
        case .tokenLag:
            return "Lag in policy versions of each trained or dropped completion token (token-weighted)."
        case .learnerBusyFraction:
            return "Fraction of the time since the first worker joined spent in learner steps."
        case .learnerStepSeconds: return "Seconds of one learner step (forward, backward, optimizer)."
        case .broadcastSeconds: return "Seconds to publish one weight version on the broadcast."
        case .weightDeliveries:
            return "New weights sent to workers, by path: versions broadcast, orders carrying them, fetches."
        case .tokensPerSecond:
            return "Completion tokens of the last trained batch per second of its sampling and training."
        case .tokenRatioESSFraction:
            return "Kish ESS/N of the token ratios pi_theta/mu in the last learner step."
        case .workersConnected: return "Rollout workers joined to the learner now."
        case .trackerStep: return "The step (1-based) of the staleness tracker's latest observation."
        case .trackerRatioESSFraction:
            return "Kish ESS/N of the token ratios pi_theta/mu at this lag (latest tracker observation)."
        case .trackerRatioP1:
            return "1st percentile of the token ratios pi_theta/mu at this lag (latest tracker observation)."
        case .trackerRatioP99:
            return "99th percentile of the token ratios pi_theta/mu at this lag (latest tracker observation)."
        case .trackerBehaviourKL:
            return "Mean exact KL(mu||pi_theta) over positions at this lag (latest tracker observation)."
        case .trackerKLBias:
            return
                "Relative error of the run's KL form's expected gradient to the exact KL gradient at this lag."
        case .wireRejections: return "Inbound wire messages refused, by reason."
        case .workerBatches: return "Batches this process's rollout workers sampled and delivered."
        case .workerSamples: return "Samples this process's rollout workers delivered."
        case .workerTokens: return "Completion tokens this process's rollout workers delivered."
        case .workerSampleSeconds: return "Seconds a rollout worker spent sampling one batch."
        case .workerWeightsVersion:
            return "The policy version a rollout worker of this process last sampled with."
        }
    }

    /// The metric with `name`, if Rein records one.
    public init?(name: String) { self.init(rawValue: name) }

    // MARK: Recording (swift-metrics handles from the bootstrapped factory)

    /// The counter of this metric with label values `labels` (one per ``labels``, in order).
    public func counter(_ labels: String...) -> CoreMetrics.Counter { counter(labels: labels) }

    /// The counter of this metric with label values `labels`.
    public func counter(labels: [String]) -> CoreMetrics.Counter {
        precondition(kind == .counter, "\(name) is a \(kind.rawValue)")
        return Counter(label: name, dimensions: dimensions(labels))
    }

    /// Adds one to the counter of this metric with label values `labels`.
    public func increment(_ labels: String...) { counter(labels: labels).increment() }

    /// The gauge of this metric with label values `labels`.
    public func gauge(_ labels: String...) -> Gauge {
        precondition(kind == .gauge, "\(name) is a \(kind.rawValue)")
        return Gauge(label: name, dimensions: dimensions(labels))
    }

    /// The histogram of this metric with label values `labels` (a `Recorder` that aggregates).
    public func histogram(_ labels: String...) -> Recorder {
        precondition(kind == .histogram, "\(name) is a \(kind.rawValue)")
        return Recorder(label: name, dimensions: dimensions(labels), aggregate: true)
    }

    private func dimensions(_ values: [String]) -> [(String, String)] {
        precondition(values.count == labels.count, "\(name) takes labels \(labels), got \(values)")
        return zip(labels, values).map { ($0.rawValue, $1) }
    }
}
