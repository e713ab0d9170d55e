import Foundation
import Rein
import ReinTracker

/// The content of `report.json`: every run of a report, with the series its plots are drawn from.
/// Keys are snake_case; the layout is versioned by ``schemaVersion`` (see the ReportSchema article).
public struct ReportDocument: Sendable, Codable, Hashable {
    /// The current layout version.
    public static let currentSchemaVersion = 1

    /// ``currentSchemaVersion`` when written.
    public var schemaVersion: Int
    /// What wrote it (`rein report`).
    public var generator: String
    /// The runs compared, in command-line order.
    public var runs: [RunReport]
    /// The outcome experiment's statistics over the runs that form one (a KL form at a lag with
    /// two seeds or more; see ``OutcomeAnalysis``), nil otherwise.
    public var outcome: OutcomeAnalysis?

    /// A document of `runs`, with the ``OutcomeAnalysis`` of their ``OutcomeRecord``s.
    public init(runs: [RunReport], generator: String = "rein report") {
        self.schemaVersion = Self.currentSchemaVersion
        self.generator = generator
        self.runs = runs
        self.outcome = OutcomeAnalysis(records: runs.compactMap(OutcomeRecord.derive))
    }

    enum CodingKeys: String, CodingKey {
        case schemaVersion = "schema_version"
        case generator, runs, outcome
    }
}

/// One run folder, summarised.
public struct RunReport: Sendable, Codable, Hashable {
    /// A short unique name (the folder's last path component, deduplicated).
    public var name: String
    /// The folder as given.
    public var path: String
    /// The KL form and lag settings read from `config.yaml` (empty when absent).
    public var settings: [String: String]
    /// Steps in `metrics.jsonl`.
    public var steps: Int
    /// Held-out greedy accuracy before training (`eval-start.json`), if present.
    public var greedyStart: Double?
    /// Held-out greedy accuracy after training (`eval.json`), if present.
    public var greedyEnd: Double?
    /// Held-out sampled accuracy before training, if present.
    public var sampledStart: Double?
    /// Held-out sampled accuracy after training, if present.
    public var sampledEnd: Double?
    /// Per-step training curves from `metrics.jsonl`.
    public var curves: [CurvePoint]
    /// Tracker bias per implementation and lag, position-weighted over every observation.
    public var bias: [BiasPoint]
    /// Token-ratio and behaviour-KL diagnostics per lag over every observation.
    public var importance: [ImportancePoint]
    /// Lag histogram summed over every tracker observation.
    public var lagHistogram: [LagCount]
    /// Tracker observations and their cost.
    public var tracker: TrackerCost
    /// Parameter-space bias per implementation, averaged over the observations that ran it
    /// (empty when none did).
    public var parameterBias: [ParameterBiasPoint]
    /// The theory's predictions checked against ``bias`` (see ``TheoryCheck``).
    public var theory: [TheoryCheck]
    /// Trained versus dropped samples (the last tracker record's cumulative summary), if recorded.
    public var selection: SelectionSummary?
    /// Sequences by the span of versions among their tokens, summed over every tracker
    /// observation (nil when no record has spans: written before they existed).
    public var versionSpans: [SpanCount]? = nil

    enum CodingKeys: String, CodingKey {
        case name, path, settings, steps
        case greedyStart = "greedy_start"
        case greedyEnd = "greedy_end"
        case sampledStart = "sampled_start"
        case sampledEnd = "sampled_end"
        case curves, bias, importance
        case lagHistogram = "lag_histogram"
        case tracker
        case parameterBias = "parameter_bias"
        case theory, selection
        case versionSpans = "version_spans"
    }
}

/// One implementation's parameter-space bias, averaged over observations.
public struct ParameterBiasPoint: Sendable, Codable, Hashable {
    /// The `KLImplementation` id.
    public var implementation: String
    /// Observations averaged.
    public var observations: Int
    /// Mean ‖G − T‖ / ‖T‖ of the back-propagated gradients.
    public var relativeError: Double
    /// Mean cos(G, T).
    public var cosine: Double

    enum CodingKeys: String, CodingKey {
        case implementation, observations
        case relativeError = "relative_error"
        case cosine
    }
}

/// One step of a run's training curves (NaN when the step did not train).
public struct CurvePoint: Sendable, Codable, Hashable {
    /// The step (1-based).
    public var step: Int
    /// Mean task reward of the batch.
    public var reward: Double
    /// Fraction of the batch exactly correct.
    public var accuracy: Double
    /// Exact KL(π_θ‖π_ref) averaged over visited positions.
    public var exactKL: Double
    /// Mean log π_θ − log π_ref over sampled tokens.
    public var logProbGap: Double
    /// Entropy of π_θ at visited positions (nats).
    public var entropy: Double
    /// Mean lag of the batch.
    public var lagMean: Double
    /// Learner step wall time (s).
    public var learnerSeconds: Double
    /// Fraction of tokens where the PPO surrogate's clipped branch was taken.
    public var ppoClipFraction: Double
    /// Fraction of KL terms or ratios touched by any clamp, clip or cap (the KL objective's
    /// `any_clamp_fraction`).
    public var klClampFraction: Double

    enum CodingKeys: String, CodingKey {
        case step, reward, accuracy
        case exactKL = "exact_kl"
        case logProbGap = "log_prob_gap"
        case entropy
        case lagMean = "lag_mean"
        case learnerSeconds = "learner_seconds"
        case ppoClipFraction = "ppo_clip_fraction"
        case klClampFraction = "kl_clamp_fraction"
    }
}

/// The bias of one implementation at one lag, position-weighted over observations.
public struct BiasPoint: Sendable, Codable, Hashable {
    /// The `KLImplementation` id.
    public var implementation: String
    /// Token lag.
    public var lag: Int
    /// Positions behind the numbers.
    public var positions: Int
    /// Relative L2 error to ∇KL(π_θ‖π_ref).
    public var relativeError: Double
    /// Cosine with ∇KL(π_θ‖π_ref).
    public var cosine: Double
    /// Relative L2 error to ∇KL(π_ref‖π_θ).
    public var forwardRelativeError: Double

    enum CodingKeys: String, CodingKey {
        case implementation, lag, positions
        case relativeError = "relative_error"
        case cosine
        case forwardRelativeError = "forward_relative_error"
    }
}

/// Importance-sampling diagnostics at one lag, position-weighted over observations.
public struct ImportancePoint: Sendable, Codable, Hashable {
    /// Token lag.
    public var lag: Int
    /// Positions behind the numbers.
    public var positions: Int
    /// Mean token ratio.
    public var ratioMean: Double
    /// Largest token ratio seen.
    public var ratioMax: Double
    /// Token-ratio ESS / N.
    public var essFraction: Double
    /// Sequence-ratio ESS / N.
    public var sequenceESSFraction: Double
    /// Mean exact KL(μ‖π_θ) per position.
    public var behaviourKL: Double
    /// Prefix-ratio ESS / N (nil for tracker records that predate prefix ratios).
    public var prefixESSFraction: Double?
    /// The prefix-distribution part of the bias, estimated with prefix ratios (mean over
    /// observations, position-weighted; nil when not measured).
    public var prefixShift: Double?

    enum CodingKeys: String, CodingKey {
        case lag, positions
        case prefixESSFraction = "prefix_ess_fraction"
        case prefixShift = "prefix_shift"
        case ratioMean = "ratio_mean"
        case ratioMax = "ratio_max"
        case essFraction = "ess_fraction"
        case sequenceESSFraction = "sequence_ess_fraction"
        case behaviourKL = "behaviour_kl"
    }
}

/// What the tracker cost, against the learner steps it observed.
public struct TrackerCost: Sendable, Codable, Hashable {
    /// Observations in `tracker.jsonl`.
    public var observations: Int
    /// Their total wall time (s).
    public var seconds: Double
    /// Total learner time of every step of the run (s).
    public var learnerSeconds: Double
    /// seconds / learnerSeconds (0 when no learner time).
    public var overheadFraction: Double

    enum CodingKeys: String, CodingKey {
        case observations, seconds
        case learnerSeconds = "learner_seconds"
        case overheadFraction = "overhead_fraction"
    }
}

/// A report failure, as one line.
public enum ReportError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A run folder without `metrics.jsonl` or `tracker.jsonl`.
    case notARun(String)
    /// A file that could not be read or parsed.
    case unreadable(path: String, reason: String)
    /// An output that could not be written.
    case unwritable(path: String, reason: String)
    /// A run-folder file that is missing a part, does not decode or has a newer schema (the
    /// ``Rein/RunFolderError`` line, which names the path).
    case runFolder(String)

    /// One line naming the problem.
    public var description: String {
        switch self {
        case .notARun(let p): return "\(p): neither metrics.jsonl nor tracker.jsonl (not a run folder?)"
        case .unreadable(let p, let r): return "\(p): cannot read: \(r)"
        case .unwritable(let p, let r): return "\(p): cannot write: \(r)"
        case .runFolder(let line): return line
        }
    }
}
