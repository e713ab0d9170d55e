/// How stale samples are, in policy versions — the one definition every part of Rein uses (the
/// run state machine's staleness bound and step metrics, the staleness tracker's histograms, the
/// runtime bench).
///
/// - The *token lag* of a completion token is the learner's version minus the version of the
///   weights that sampled it.
/// - The *sequence lag* of a completion is the lag of its oldest token: the learner's version minus
///   the version it was assigned (its first token's; versions never decrease within a sequence).
///   `train.max_staleness` bounds it, so it bounds every token lag of the sequence too.
/// - The *version span* of a completion is its newest token's version minus its oldest's: 0 unless
///   partial rollouts (`train.partial_rollouts`) moved it to newer weights mid-sequence.
public enum Lag {
    /// The lag of a token sampled by `version`, for a learner at `learner`.
    public static func token(_ version: Int, learner: Int) -> Int { learner - version }

    /// The lag of a completion whose tokens were sampled by `versions` (its oldest token; with no
    /// tokens, that of `assigned`).
    public static func sequence(_ versions: [Int], assigned: Int, learner: Int) -> Int {
        learner - (versions.min() ?? assigned)
    }

    /// Newest − oldest version among `versions` (0 for none).
    public static func span(_ versions: [Int]) -> Int {
        guard let low = versions.min(), let high = versions.max() else { return 0 }
        return high - low
    }
}

/// Counts at one lag: the lag histogram of `tracker.jsonl` records and of `metrics.jsonl` steps
/// with partial rollouts.
public struct LagCount: Sendable, Codable, Hashable {
    /// Learner version − behaviour version.
    public var lag: Int
    /// Sequences whose oldest token has this lag (sequence-weighted).
    public var sequences: Int
    /// Tokens with this lag (token-weighted).
    public var tokens: Int

    /// Counts at `lag`.
    public init(lag: Int, sequences: Int, tokens: Int) {
        self.lag = lag
        self.sequences = sequences
        self.tokens = tokens
    }
}

/// The lags of one batch for a learner at one version (``Lag``'s definitions).
public struct BatchLag: Sendable, Hashable {
    /// Token-weighted mean lag (the sequence lag when the batch has no tokens).
    public var tokenMean: Double
    /// The largest token lag (= the largest sequence lag).
    public var max: Int
    /// Mean sequence lag (sequence-weighted).
    public var sequenceMean: Double
    /// The largest version span of one sequence.
    public var spanMax: Int
    /// Tokens (token lag) and sequences (sequence lag) per lag, ascending.
    public var histogram: [LagCount]

    /// The lags of `batch`, assigned with `assigned`, for a learner at `learner`.
    public init(_ batch: RolloutBatch, assigned: Int, learner: Int) {
        var tokens = 0
        var tokenSum = 0
        var sequenceSum = 0
        var high = Lag.token(assigned, learner: learner)
        var span = 0
        var counts: [Int: LagCount] = [:]
        for r in batch.rollouts {
            for v in r.versions {
                let lag = Lag.token(v, learner: learner)
                tokenSum += lag
                counts[lag, default: LagCount(lag: lag, sequences: 0, tokens: 0)].tokens += 1
            }
            tokens += r.versions.count
            let lag = Lag.sequence(r.versions, assigned: assigned, learner: learner)
            sequenceSum += lag
            counts[lag, default: LagCount(lag: lag, sequences: 0, tokens: 0)].sequences += 1
            high = Swift.max(high, lag)
            span = Swift.max(span, Lag.span(r.versions))
        }
        let sequences = Swift.max(1, batch.rollouts.count)
        sequenceMean =
            batch.rollouts.isEmpty
            ? Double(Lag.token(assigned, learner: learner)) : Double(sequenceSum) / Double(sequences)
        tokenMean = tokens > 0 ? Double(tokenSum) / Double(tokens) : sequenceMean
        max = high
        spanMax = span
        histogram = counts.values.sorted { $0.lag < $1.lag }
    }
}
