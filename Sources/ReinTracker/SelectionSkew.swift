import Rein

/// Length and reward distribution of a set of samples (completion length in tokens).
public struct SampleSummary: Sendable, Codable, Hashable {
    /// Samples.
    public var count: Int
    /// Mean completion length.
    public var lengthMean: Double
    /// Median completion length.
    public var lengthP50: Int
    /// 90th-percentile completion length.
    public var lengthP90: Int
    /// Mean reward.
    public var rewardMean: Double
    /// Fraction with a positive reward.
    public var rewardPositiveFraction: Double

    enum CodingKeys: String, CodingKey {
        case count
        case lengthMean = "length_mean"
        case lengthP50 = "length_p50"
        case lengthP90 = "length_p90"
        case rewardMean = "reward_mean"
        case rewardPositiveFraction = "reward_positive_fraction"
    }
}

/// Selection skew of the staleness policy: trained versus dropped samples since the run began.
public struct SelectionSummary: Sendable, Codable, Hashable {
    /// Samples the learner trained on.
    public var trained: SampleSummary
    /// Samples dropped for staleness (lag above `max_staleness`).
    public var dropped: SampleSummary
}

/// Accumulates ``SelectionSummary`` over a run (a length histogram and reward sums per side).
public struct SelectionAccumulator: Sendable {
    struct Side: Sendable {
        var lengths: [Int: Int] = [:]
        var count = 0
        var lengthSum = 0
        var rewardSum = 0.0
        var positive = 0

        mutating func add(_ batch: RolloutBatch) {
            for r in batch.rollouts {
                lengths[r.completion.count, default: 0] += 1
                count += 1
                lengthSum += r.completion.count
                rewardSum += r.reward
                if r.reward > 0 { positive += 1 }
            }
        }

        func quantile(_ q: Double) -> Int {
            guard count > 0 else { return 0 }
            let rank = Swift.max(1, Int((q * Double(count)).rounded(.up)))
            var seen = 0
            for (length, n) in lengths.sorted(by: { $0.key < $1.key }) {
                seen += n
                if seen >= rank { return length }
            }
            return lengths.keys.max() ?? 0
        }

        var summary: SampleSummary {
            let n = Double(Swift.max(count, 1))
            return SampleSummary(
                count: count, lengthMean: Double(lengthSum) / n, lengthP50: quantile(0.5),
                lengthP90: quantile(0.9),
                rewardMean: rewardSum / n, rewardPositiveFraction: Double(positive) / n)
        }
    }

    var trained = Side()
    var dropped = Side()

    /// An empty accumulator.
    public init() {}

    /// Counts a trained batch.
    public mutating func addTrained(_ batch: RolloutBatch) { trained.add(batch) }

    /// Counts a dropped batch.
    public mutating func addDropped(_ batch: RolloutBatch) { dropped.add(batch) }

    /// The summary so far.
    public var summary: SelectionSummary {
        SelectionSummary(trained: trained.summary, dropped: dropped.summary)
    }
}
