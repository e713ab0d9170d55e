/// Centring of per-sample KL rewards within groups of samples of the same prompt (GRPO-style
/// baselines). Mean centring that includes the sample itself shrinks the KL gradient by
/// (1 − 1/n) in expectation; leave-one-out centring keeps it unbiased (<doc:KLGradients> §7
/// item 23).
public enum KLGroupCentering: String, Sendable, Codable, Hashable, CaseIterable {
    /// r_i − mean_j r_j (j over the whole group, i included).
    case mean
    /// r_i − mean_{j≠i} r_j.
    case leaveOneOut = "leave_one_out"

    /// Centres `rewards`, laid out as consecutive groups of `groupSize`.
    public func centre(_ rewards: [Double], groupSize: Int) throws(KLInputError) -> [Double] {
        guard groupSize >= 1, rewards.count % groupSize == 0 else {
            throw .sequenceLengthsMismatch(sum: rewards.count, count: groupSize)
        }
        if self == .leaveOneOut && groupSize < 2 {
            throw .sequenceLengthsMismatch(sum: rewards.count, count: groupSize)
        }
        var result = rewards
        for start in stride(from: 0, to: rewards.count, by: groupSize) {
            var sum = 0.0
            for i in start..<(start + groupSize) { sum += rewards[i] }
            for i in start..<(start + groupSize) {
                switch self {
                case .mean: result[i] = rewards[i] - sum / Double(groupSize)
                case .leaveOneOut: result[i] = rewards[i] - (sum - rewards[i]) / Double(groupSize - 1)
                }
            }
        }
        return result
    }
}
