import RealModule

/// An exact gradient target over whole sequences of a ``TabularPolicy``.
public enum KLTarget: String, Sendable, Codable, Hashable, CaseIterable {
    /// ∇ KL(π_θ‖π_ref) over whole sequences = E_{π_θ}[Σ_t G_t·s_t].
    case rklSeq = "rkl_seq"
    /// ∇ KL(π_ref‖π_θ) over whole sequences = −E_{π_ref}[Σ_t s_t].
    case fklSeq = "fkl_seq"
    /// E_{π_θ}[Σ_t ℓ_t·s_t]: the on-policy per-token k2 (partial) gradient.
    case k2TokenOnPolicy = "k2_token_onpolicy"
    /// E_{π_θ}[Σ_t (1 − e^{−ℓ_t})·s_t] = Σ_t E_{s_t~π_θ}[∇KL(π_ref(·|s_t)‖π_θ(·|s_t))] with
    /// the prefix distribution held fixed: the on-policy per-token k3 gradient.
    case fklToken = "fkl_token"

    /// The three targets `rein kl exact` prints.
    public static let required: [KLTarget] = [.rklSeq, .fklSeq, .k2TokenOnPolicy]
}

/// Which table samples the sequences of an enumeration.
public enum TabularSampler: Sendable, Hashable {
    /// π_θ.
    case theta
    /// μ.
    case behaviour
    /// π_ref.
    case reference
}

/// One enumerated sequence: its tokens, the row of each prefix and the log-probabilities of
/// each token under the three tables.
public struct TabularSequence: Sendable {
    /// y_1 … y_T.
    public internal(set) var tokens: [Int]
    /// The row of the prefix before each token.
    public internal(set) var rows: [Int]
    /// log π_θ(y_t|s_t).
    public internal(set) var logPolicy: [Double]
    /// log μ(y_t|s_t).
    public internal(set) var logBehaviour: [Double]
    /// log π_ref(y_t|s_t).
    public internal(set) var logReference: [Double]
}

extension TabularPolicy {
    /// The three tables as log-probabilities (log-softmax of each row).
    public var logProbabilities: (theta: [[Double]], behaviour: [[Double]], reference: [[Double]]) {
        (
            theta.map(Softmax.logProbabilities), behaviour.map(Softmax.logProbabilities),
            reference.map(Softmax.logProbabilities)
        )
    }

    /// Calls `body` for every one of the V^T sequences, in lexicographic order.
    public func forEachSequence(_ body: (TabularSequence) throws -> Void) rethrows {
        let logs = logProbabilities
        let zeros = [Double](repeating: 0, count: length)
        var sequence = TabularSequence(
            tokens: [Int](repeating: 0, count: length), rows: [Int](repeating: 0, count: length),
            logPolicy: zeros, logBehaviour: zeros, logReference: zeros)
        while true {
            var offset = 0
            var power = 1
            var index = 0
            for t in 0..<length {
                if t > 0 { index = index * vocab + sequence.tokens[t - 1] }
                let row = offset + index
                let y = sequence.tokens[t]
                sequence.rows[t] = row
                sequence.logPolicy[t] = logs.theta[row][y]
                sequence.logBehaviour[t] = logs.behaviour[row][y]
                sequence.logReference[t] = logs.reference[row][y]
                offset += power
                power *= vocab
            }
            try body(sequence)
            var position = length - 1
            while position >= 0 {
                sequence.tokens[position] += 1
                if sequence.tokens[position] < vocab { break }
                sequence.tokens[position] = 0
                position -= 1
            }
            if position < 0 { return }
        }
    }

    /// E_{y~sampler}[Σ_t c_t(y)·∇_z log π_θ(y_t|s_t)] in row layout, where `coefficients` writes
    /// c_t for one sequence. Uses ∂ log π_θ(y|s)/∂z_{s,v} = 1[v = y] − π_θ(v|s).
    public func expectedScoreGradient(
        sampler: TabularSampler,
        coefficients: (TabularSequence, inout [Double]) -> Void
    ) -> [[Double]] {
        var accumulated = [[Double]](
            repeating: [Double](repeating: 0, count: vocab), count: rowCount)
        var rowTotals = [Double](repeating: 0, count: rowCount)
        var c = [Double](repeating: 0, count: length)
        forEachSequence { sequence in
            var logWeight = 0.0
            for t in 0..<length {
                switch sampler {
                case .theta: logWeight += sequence.logPolicy[t]
                case .behaviour: logWeight += sequence.logBehaviour[t]
                case .reference: logWeight += sequence.logReference[t]
                }
            }
            let weight = Double.exp(logWeight)
            coefficients(sequence, &c)
            for t in 0..<length {
                let amount = weight * c[t]
                accumulated[sequence.rows[t]][sequence.tokens[t]] += amount
                rowTotals[sequence.rows[t]] += amount
            }
        }
        let probabilities = theta.map(Softmax.probabilities)
        for row in 0..<rowCount {
            for v in 0..<vocab {
                accumulated[row][v] -= probabilities[row][v] * rowTotals[row]
            }
        }
        return accumulated
    }

    /// The exact expected gradient w.r.t. the θ logits of one configuration when every
    /// sequence is drawn from the behaviour table: each sequence is evaluated by the same
    /// kernel as ``KLObjective`` (a batch of one sequence of T tokens).
    public func expectedGradient(of configuration: KLConfiguration) throws(KLConfigurationError)
        -> [[Double]]
    {
        try configuration.validate()
        var kernel = SequenceKernel(configuration: configuration)
        kernel.reserve(length)
        let scale: Double
        switch configuration.normalization {
        case .sum: scale = 1
        case .tokenMean, .sequenceMean: scale = 1 / Double(length)
        }
        return expectedScoreGradient(sampler: .behaviour) { sequence, c in
            for t in 0..<length {
                kernel.policy[t] = sequence.logPolicy[t]
                kernel.behaviour[t] = sequence.logBehaviour[t]
                kernel.reference[t] = sequence.logReference[t]
            }
            _ = kernel.run(count: length)
            for t in 0..<length { c[t] = scale * kernel.gradient[t] }
        }
    }

    /// ``expectedGradient(of:)`` for each implementation, keyed by id.
    public func expectedGradients(of implementations: [KLImplementation]) throws(KLConfigurationError)
        -> [String: [[Double]]]
    {
        var result: [String: [[Double]]] = [:]
        for implementation in implementations {
            result[implementation.id] = try expectedGradient(of: implementation.configuration)
        }
        return result
    }

    /// The exact gradient of a target w.r.t. the θ logits (independent of the behaviour table).
    public func exactGradient(of target: KLTarget) -> [[Double]] {
        switch target {
        case .rklSeq:
            return expectedScoreGradient(sampler: .theta) { sequence, c in
                var toGo = 0.0
                for t in stride(from: length - 1, through: 0, by: -1) {
                    toGo += sequence.logPolicy[t] - sequence.logReference[t]
                    c[t] = toGo
                }
            }
        case .fklSeq:
            return expectedScoreGradient(sampler: .reference) { _, c in
                for t in 0..<length { c[t] = -1 }
            }
        case .k2TokenOnPolicy:
            return expectedScoreGradient(sampler: .theta) { sequence, c in
                for t in 0..<length { c[t] = sequence.logPolicy[t] - sequence.logReference[t] }
            }
        case .fklToken:
            return expectedScoreGradient(sampler: .theta) { sequence, c in
                for t in 0..<length {
                    c[t] = -Double.expMinusOne(sequence.logReference[t] - sequence.logPolicy[t])
                }
            }
        }
    }

    /// KL(π_θ‖π_ref) over whole sequences.
    public var reverseKL: Double {
        var kl = 0.0
        forEachSequence { sequence in
            var logP = 0.0
            var logRef = 0.0
            for t in 0..<length {
                logP += sequence.logPolicy[t]
                logRef += sequence.logReference[t]
            }
            kl += Double.exp(logP) * (logP - logRef)
        }
        return kl
    }

    /// KL(π_ref‖π_θ) over whole sequences.
    public var forwardKL: Double {
        var kl = 0.0
        forEachSequence { sequence in
            var logP = 0.0
            var logRef = 0.0
            for t in 0..<length {
                logP += sequence.logPolicy[t]
                logRef += sequence.logReference[t]
            }
            kl += Double.exp(logRef) * (logRef - logP)
        }
        return kl
    }
}
