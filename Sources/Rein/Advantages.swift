/// How GRPO turns the rewards of one prompt's group of samples into advantages.
public struct AdvantageConfig: Codable, Sendable, Hashable {
    /// Divide by the group's standard deviation (GRPO) or only subtract the baseline.
    public var normalize: Bool = true
    /// Baseline of sample i = mean of the *other* samples of its group (unbiased), instead of the
    /// group mean including i (which shrinks the expected gradient by (1 − 1/G)).
    public var leaveOneOut: Bool = false
    /// Added to the standard deviation.
    public var epsilon: Double = 1e-6

    public init(normalize: Bool = true, leaveOneOut: Bool = false, epsilon: Double = 1e-6) {
        self.normalize = normalize
        self.leaveOneOut = leaveOneOut
        self.epsilon = epsilon
    }

    enum CodingKeys: String, CodingKey {
        case normalize
        case leaveOneOut = "leave_one_out"
        case epsilon
    }
}

/// Group-relative advantages (GRPO).
public enum Advantages {
    /// Advantages for `rewards` laid out as consecutive groups of `groupSize` samples of the same
    /// prompt. A group whose rewards are all equal gets zero advantages.
    public static func grouped(
        _ rewards: [Double], groupSize: Int, config: AdvantageConfig = AdvantageConfig()
    ) -> [Double] {
        precondition(groupSize > 0 && rewards.count % groupSize == 0, "rewards must fill whole groups")
        var out = [Double](repeating: 0, count: rewards.count)
        for start in stride(from: 0, to: rewards.count, by: groupSize) {
            let group = rewards[start..<(start + groupSize)]
            let n = Double(groupSize)
            let sum = group.reduce(0, +)
            let mean = sum / n
            let variance = group.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / n
            guard variance > 0 else { continue }  // no signal in this group (and no 0/0)
            let scale = config.normalize ? 1 / (variance.squareRoot() + config.epsilon) : 1
            for (i, r) in zip(start..., group) {
                let baseline = config.leaveOneOut && groupSize > 1 ? (sum - r) / (n - 1) : mean
                out[i] = (r - baseline) * scale
            }
        }
        return out
    }
}
