import Rein
import ReinKL

/// One observation of the staleness tracker: one line of `tracker.jsonl` (snake_case keys).
public struct TrackerRecord: Sendable, Codable, Hashable {
    /// The version of this record's layout; bumped on any incompatible change.
    public static let currentSchemaVersion = 1

    /// ``currentSchemaVersion`` when written.
    public var schemaVersion: Int
    /// The trainer step (1-based) whose batch was observed.
    public var step: Int
    /// The learner's policy version θ when the batch was observed (before its update).
    public var version: Int
    /// Visited completion positions analysed.
    public var positions: Int
    /// Sequences analysed.
    public var sequences: Int
    /// Lag histogram: sequences (by their oldest token) and tokens per lag.
    public var lagHistogram: [LagCount]
    /// Per lag bucket (token lag), the bias of every implementation and the IS diagnostics.
    public var buckets: [LagBucket]
    /// Largest |log μ(y|s) recomputed from the behaviour weights − the logged behaviour
    /// log-probability| (a consistency check of the rows the tracker used; Float precision).
    public var maxBehaviourLogProbError: Double
    /// Wall time of the observation in seconds (forwards included).
    public var seconds: Double
    /// The part of ``seconds`` spent on the arithmetic after the rows were at hand (nil in
    /// records written before it existed).
    public var analysisSeconds: Double?
    /// Parameter-space comparison over the whole batch (all lags together), on observations
    /// that ran it; nil otherwise.
    public var parameterBias: [ParameterBias]?
    /// Trained versus dropped samples since the run began (set by ``StalenessTracker/attach(to:)``).
    public var selection: SelectionSummary?
    /// Sequences by the span of versions among their tokens (newest − oldest, ``Rein/Lag``): all at
    /// span 0 unless partial rollouts moved sequences to newer weights mid-way. Nil in records
    /// written before it existed (and by ``StalenessTracker/analyse(step:version:positions:sequenceLags:maxBehaviourLogProbError:seconds:)``,
    /// which sees lags, not versions).
    public var versionSpans: [SpanCount]?

    /// A record with every field given.
    public init(
        step: Int, version: Int, positions: Int, sequences: Int, lagHistogram: [LagCount],
        buckets: [LagBucket], maxBehaviourLogProbError: Double, seconds: Double
    ) {
        self.schemaVersion = Self.currentSchemaVersion
        self.step = step
        self.version = version
        self.positions = positions
        self.sequences = sequences
        self.lagHistogram = lagHistogram
        self.buckets = buckets
        self.maxBehaviourLogProbError = maxBehaviourLogProbError
        self.seconds = seconds
    }

    enum CodingKeys: String, CodingKey {
        case schemaVersion = "schema_version"
        case step, version, positions, sequences
        case lagHistogram = "lag_histogram"
        case buckets
        case maxBehaviourLogProbError = "max_behaviour_log_prob_error"
        case seconds
        case analysisSeconds = "analysis_seconds"
        case parameterBias = "parameter_bias"
        case selection
        case versionSpans = "version_spans"
    }
}

/// Sequences whose token versions span `span` versions.
public struct SpanCount: Sendable, Codable, Hashable {
    /// Newest − oldest version among a sequence's tokens.
    public var span: Int
    /// Sequences with that span.
    public var sequences: Int

    public init(span: Int, sequences: Int) {
        self.span = span
        self.sequences = sequences
    }

    /// The histogram of the spans of sequences with token versions `versions` (ascending spans).
    public static func histogram(_ versions: [[Int]]) -> [SpanCount] {
        var counts: [Int: Int] = [:]
        for v in versions { counts[Lag.span(v), default: 0] += 1 }
        return counts.keys.sorted().map { SpanCount(span: $0, sequences: counts[$0]!) }
    }
}

/// Summary of a set of importance ratios: mean, extremes, quantiles, Kish ESS / N.
public struct RatioSummary: Sendable, Codable, Hashable {
    /// Ratios summarised.
    public var count: Int
    /// Mean (1 when empty).
    public var mean: Double
    /// Smallest (1 when empty).
    public var min: Double
    /// Largest (1 when empty).
    public var max: Double
    /// Median (nearest rank).
    public var p50: Double
    /// 90th percentile (nearest rank).
    public var p90: Double
    /// 99th percentile (nearest rank).
    public var p99: Double
    /// 1st percentile (nearest rank); nil in records written before it was measured.
    public var p1: Double?
    /// (Σρ)² / (N·Σρ²), in (0, 1]; 1 when empty.
    public var essFraction: Double

    /// Summarises `ratios`.
    public init(_ ratios: [Double]) {
        count = ratios.count
        guard !ratios.isEmpty else {
            (mean, min, max, p50, p90, p99, essFraction) = (1, 1, 1, 1, 1, 1, 1)
            p1 = 1
            return
        }
        let sorted = ratios.sorted()
        var sum = 0.0
        var squares = 0.0
        for r in ratios {
            sum += r
            squares += r * r
        }
        mean = sum / Double(ratios.count)
        min = sorted[0]
        max = sorted[sorted.count - 1]
        func rank(_ q: Double) -> Double {
            let index = Int((q * Double(sorted.count)).rounded(.up)) - 1
            return sorted[Swift.min(Swift.max(index, 0), sorted.count - 1)]
        }
        p1 = rank(0.01)
        p50 = rank(0.5)
        p90 = rank(0.9)
        p99 = rank(0.99)
        essFraction = squares > 0 ? sum * sum / (Double(ratios.count) * squares) : 1
    }

    enum CodingKeys: String, CodingKey {
        case count, mean, min, max, p1, p50, p90, p99
        case essFraction = "ess_fraction"
    }
}

/// Everything the tracker measures at one token lag.
public struct LagBucket: Sendable, Codable, Hashable {
    /// Learner version − the version that sampled the token.
    public var lag: Int
    /// Visited positions (tokens) at this lag.
    public var positions: Int
    /// Mean exact KL(μ(·|s)‖π_θ(·|s)) over the positions.
    public var behaviourKL: Double
    /// Largest exact KL(μ(·|s)‖π_θ(·|s)) over the positions.
    public var behaviourKLMax: Double
    /// Mean exact KL(π_θ(·|s)‖π_ref(·|s)) over the positions.
    public var reverseKL: Double
    /// Token ratios w = π_θ(y|s)/μ(y|s) at the sampled tokens.
    public var tokenRatio: RatioSummary
    /// Sequence ratios W = Π_t w_t of the sequences whose oldest token has this lag (the
    /// prefix-distribution part a token ratio cannot correct; ESS beside it).
    public var sequenceRatio: RatioSummary
    /// Bias of each implementation, in the tracker's order.
    public var implementations: [ImplementationBias]
    /// Prefix ratios ρ_s = Π_{t' < t} w_t' at the positions (absent in records written before
    /// they were measured).
    public var prefixRatio: RatioSummary?
    /// The prefix-distribution part of the bias, estimated with prefix ratios (see
    /// ``StalenessTracker/prefixShift(prefixRatios:targetSquares:)``); absent in older records.
    public var prefixShift: Double?

    /// A bucket with every field given.
    public init(
        lag: Int, positions: Int, behaviourKL: Double, behaviourKLMax: Double, reverseKL: Double,
        tokenRatio: RatioSummary, sequenceRatio: RatioSummary, implementations: [ImplementationBias]
    ) {
        self.lag = lag
        self.positions = positions
        self.behaviourKL = behaviourKL
        self.behaviourKLMax = behaviourKLMax
        self.reverseKL = reverseKL
        self.tokenRatio = tokenRatio
        self.sequenceRatio = sequenceRatio
        self.implementations = implementations
    }

    enum CodingKeys: String, CodingKey {
        case lag, positions
        case behaviourKL = "behaviour_kl"
        case behaviourKLMax = "behaviour_kl_max"
        case reverseKL = "reverse_kl"
        case tokenRatio = "token_ratio"
        case sequenceRatio = "sequence_ratio"
        case implementations
        case prefixRatio = "prefix_ratio"
        case prefixShift = "prefix_shift"
    }
}

/// How far one implementation's exact expected logit-space gradient is from the exact
/// ∇_z KL(π_θ(·|s)‖π_ref(·|s)), pooled over the positions of a bucket.
public struct ImplementationBias: Sendable, Codable, Hashable {
    /// The `KLImplementation` id.
    public var id: String
    /// √(Σ_s ‖g_s − t_s‖² / Σ_s ‖t_s‖²) (the unnormalised √Σ‖g_s − t_s‖² when every target is 0).
    public var relativeError: Double
    /// Σ⟨g_s, t_s⟩ / √(Σ‖g_s‖²·Σ‖t_s‖²); 0 if either side is zero.
    public var cosine: Double
    /// Mean over positions of the per-position relative error.
    public var meanRelativeError: Double
    /// Mean over positions of the per-position cosine.
    public var meanCosine: Double
    /// The pooled relative error to the forward-KL gradient ∇_z KL(π_ref‖π_θ) instead.
    public var forwardRelativeError: Double

    /// A bias with every field given.
    public init(
        id: String, relativeError: Double, cosine: Double, meanRelativeError: Double, meanCosine: Double,
        forwardRelativeError: Double
    ) {
        self.id = id
        self.relativeError = relativeError
        self.cosine = cosine
        self.meanRelativeError = meanRelativeError
        self.meanCosine = meanCosine
        self.forwardRelativeError = forwardRelativeError
    }

    enum CodingKeys: String, CodingKey {
        case id
        case relativeError = "relative_error"
        case cosine
        case meanRelativeError = "mean_relative_error"
        case meanCosine = "mean_cosine"
        case forwardRelativeError = "forward_relative_error"
    }
}

/// A tracker failure, as one line.
public enum TrackerError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A row the KL core rejected.
    case badRow(String)
    /// An implementation the KL core rejected.
    case badImplementation(String)
    /// No weights for a version that sampled a token of the batch.
    case missingBehaviour(version: Int)
    /// The sampling distribution is not a softmax of the behaviour logits.
    case unsupportedSampling(String)
    /// A model failure while recomputing rows.
    case model(String)
    /// Inputs of inconsistent shape.
    case shape(String)

    /// One line naming the problem.
    public var description: String {
        switch self {
        case .badRow(let m): return "tracker: bad logit row: \(m)"
        case .badImplementation(let m): return "tracker: bad KL implementation: \(m)"
        case .missingBehaviour(let v): return "tracker: no weights for behaviour version \(v)"
        case .unsupportedSampling(let m): return "tracker: unsupported sampling: \(m)"
        case .model(let m): return "tracker: model: \(m)"
        case .shape(let m): return "tracker: \(m)"
        }
    }
}

/// One implementation's expected gradient back-propagated through the model, against the
/// back-propagated exact ∇KL(π_θ‖π_ref), summed over every visited prefix of the batch.
public struct ParameterBias: Sendable, Codable, Hashable {
    /// The `KLImplementation` id.
    public var id: String
    /// ‖G − T‖ / ‖T‖ in parameter space.
    public var relativeError: Double
    /// cos(G, T) in parameter space (0 when G is rounding noise).
    public var cosine: Double
    /// ‖G‖.
    public var norm: Double
    /// ‖T‖.
    public var targetNorm: Double

    /// A comparison with every field given.
    public init(id: String, relativeError: Double, cosine: Double, norm: Double, targetNorm: Double) {
        self.id = id
        self.relativeError = relativeError
        self.cosine = cosine
        self.norm = norm
        self.targetNorm = targetNorm
    }

    enum CodingKeys: String, CodingKey {
        case id
        case relativeError = "relative_error"
        case cosine, norm
        case targetNorm = "target_norm"
    }
}
