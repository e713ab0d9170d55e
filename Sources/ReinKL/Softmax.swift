import RealModule

/// Log-softmax and softmax over one row of logits, via log-sum-exp.
public enum Softmax {
    /// log Σ_v e^{z_v}, shifted by the maximum so it never overflows.
    public static func logSumExp(_ logits: [Double]) -> Double {
        guard let maximum = logits.max(), maximum.isFinite else { return logits.max() ?? -.infinity }
        var sum = 0.0
        for z in logits { sum += Double.exp(z - maximum) }
        return maximum + Double.log(sum)
    }

    /// log softmax(z)_v = z_v − logSumExp(z).
    public static func logProbabilities(_ logits: [Double]) -> [Double] {
        let normaliser = logSumExp(logits)
        return logits.map { $0 - normaliser }
    }

    /// softmax(z).
    public static func probabilities(_ logits: [Double]) -> [Double] {
        logProbabilities(logits).map { Double.exp($0) }
    }
}
