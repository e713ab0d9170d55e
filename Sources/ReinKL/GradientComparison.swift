/// Cosine and relative error between gradients (flat or as rows), as the tracker and
/// `rein kl table` report them.
public enum GradientComparison {
    /// ⟨a, b⟩ / (‖a‖·‖b‖); 0 if either is the zero vector.
    public static func cosine(_ a: [Double], _ b: [Double]) -> Double {
        precondition(a.count == b.count, "gradients of different sizes")
        var dot = 0.0
        var aa = 0.0
        var bb = 0.0
        for i in a.indices {
            dot += a[i] * b[i]
            aa += a[i] * a[i]
            bb += b[i] * b[i]
        }
        guard aa > 0, bb > 0 else { return 0 }
        return dot / (aa.squareRoot() * bb.squareRoot())
    }

    /// ‖a − target‖ / ‖target‖ (‖a‖ if the target is zero).
    public static func relativeError(_ a: [Double], to target: [Double]) -> Double {
        precondition(a.count == target.count, "gradients of different sizes")
        var diff = 0.0
        var norm = 0.0
        for i in a.indices {
            diff += (a[i] - target[i]) * (a[i] - target[i])
            norm += target[i] * target[i]
        }
        return norm > 0 ? (diff / norm).squareRoot() : diff.squareRoot()
    }

    /// Euclidean norm.
    public static func norm(_ a: [Double]) -> Double {
        var s = 0.0
        for x in a { s += x * x }
        return s.squareRoot()
    }

    /// Cosine of two row layouts.
    public static func cosine(_ a: [[Double]], _ b: [[Double]]) -> Double {
        cosine(Array(a.joined()), Array(b.joined()))
    }

    /// Relative error of two row layouts.
    public static func relativeError(_ a: [[Double]], to target: [[Double]]) -> Double {
        relativeError(Array(a.joined()), to: Array(target.joined()))
    }
}
