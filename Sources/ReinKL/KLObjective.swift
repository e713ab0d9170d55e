import RealModule

/// The production KL term: evaluates one ``KLConfiguration`` on a batch of sequences given
/// per-token log-probabilities, and returns the loss, ∂loss/∂ log π_θ per token, the detached
/// per-token KL reward and diagnostics.
///
/// ```swift
/// let objective = try KLObjective(KLConfiguration(estimator: .k2, ratio: .token))
/// let result = try objective.evaluate(
///     logPolicy: logPi, logBehaviour: logMu, logReference: logRef,
///     mask: mask, sequenceLengths: lengths)
/// // model.backward(dLogProb: result.dLogPolicy.map { beta * $0 })
/// ```
///
/// Everything is per unit KL coefficient: multiply `loss` and `dLogPolicy` by β before adding
/// them to the policy-gradient loss, and subtract β·`klReward[t]` from the reward of token t for
/// in-reward placement (then compute returns / advantages as usual; with γ = 1 the reward-to-go
/// of these per-token rewards is the coefficient ``KLRewardAggregation/toGo`` uses).
///
/// Do not use both: for in-reward placement `dLogPolicy` is the gradient the KL reward would
/// produce if it were the only reward with no baseline and advantage = the aggregated KL reward;
/// it is meant for learners that keep the KL term separate, and for measurement.
///
/// Numerics: inputs may be Float; all arithmetic is in Double; ℓ is formed from
/// log-probabilities; k3 uses `expm1`. Applied ratios are formed in log space and their
/// logarithm is held at ``logRatioCeiling`` (counted in the diagnostics), so no output is NaN or
/// infinite for finite inputs.
public struct KLObjective: Sendable {
    /// The largest log of an applied ratio (ratios above e^300 are held there and carry no
    /// gradient); keeps every product finite in Double.
    public static let logRatioCeiling = 300.0

    /// The validated configuration.
    public let configuration: KLConfiguration

    /// Validates the configuration.
    public init(_ configuration: KLConfiguration) throws(KLConfigurationError) {
        try configuration.validate()
        self.configuration = configuration
    }

    /// Evaluates a batch of Float log-probabilities (the learner's path).
    ///
    /// - Parameters:
    ///   - logPolicy: log π_θ(y_t|s_t) of every token, sequences laid end to end.
    ///   - logBehaviour: log μ(y_t|s_t) recorded at sampling.
    ///   - logReference: log π_ref(y_t|s_t).
    ///   - mask: `true` for tokens that take part (response tokens); `nil` means all. Masked
    ///     tokens are removed from their sequence entirely: they enter no sum, product or
    ///     length, and get zero gradient and zero reward.
    ///   - sequenceLengths: the number of tokens (masked or not) of each sequence, in order;
    ///     they must add up to the array length. Use ``sequenceLengths(offsets:count:)`` to
    ///     convert start offsets.
    public func evaluate(
        logPolicy: [Float], logBehaviour: [Float], logReference: [Float],
        mask: [Bool]? = nil, sequenceLengths: [Int]
    ) throws(KLInputError) -> KLResult<Float> {
        try evaluateBatch(
            logPolicy: logPolicy, logBehaviour: logBehaviour, logReference: logReference,
            mask: mask, sequenceLengths: sequenceLengths)
    }

    /// Evaluates a batch of Double log-probabilities (exact tests and enumeration).
    public func evaluate(
        logPolicy: [Double], logBehaviour: [Double], logReference: [Double],
        mask: [Bool]? = nil, sequenceLengths: [Int]
    ) throws(KLInputError) -> KLResult<Double> {
        try evaluateBatch(
            logPolicy: logPolicy, logBehaviour: logBehaviour, logReference: logReference,
            mask: mask, sequenceLengths: sequenceLengths)
    }

    /// Converts sequence start offsets (ascending, the first one 0) and the total token
    /// count into lengths.
    public static func sequenceLengths(offsets: [Int], count: Int) throws(KLInputError) -> [Int] {
        var lengths: [Int] = []
        lengths.reserveCapacity(offsets.count)
        for (i, start) in offsets.enumerated() {
            let end = i + 1 < offsets.count ? offsets[i + 1] : count
            if (i == 0 && start != 0) || end < start {
                throw .badOffsets(index: i)
            }
            lengths.append(end - start)
        }
        if offsets.isEmpty && count != 0 { throw .badOffsets(index: 0) }
        return lengths
    }

    private func evaluateBatch<Scalar: BinaryFloatingPoint & Sendable>(
        logPolicy: [Scalar], logBehaviour: [Scalar], logReference: [Scalar],
        mask: [Bool]?, sequenceLengths: [Int]
    ) throws(KLInputError) -> KLResult<Scalar> {
        let count = logPolicy.count
        guard logBehaviour.count == count else {
            throw .lengthMismatch(name: "logBehaviour", expected: count, actual: logBehaviour.count)
        }
        guard logReference.count == count else {
            throw .lengthMismatch(name: "logReference", expected: count, actual: logReference.count)
        }
        if let mask, mask.count != count {
            throw .lengthMismatch(name: "mask", expected: count, actual: mask.count)
        }
        var lengthSum = 0
        var longest = 0
        for (i, length) in sequenceLengths.enumerated() {
            guard length >= 0 else { throw .negativeLength(sequence: i, length: length) }
            lengthSum += length
            longest = Swift.max(longest, length)
        }
        guard lengthSum == count else { throw .sequenceLengthsMismatch(sum: lengthSum, count: count) }

        // Validate inputs and collect per-token statistics.
        var tokenCount = 0
        var sequenceCount = 0
        var k1Sum = 0.0
        var k2Sum = 0.0
        var k3Sum = 0.0
        var maxAbsLogRatio = 0.0
        var maxAbsLogWeight = 0.0
        var tokenRatios = RatioAccumulator()
        var exactOnPolicy = 0
        var exactReference = 0
        var start = 0
        for length in sequenceLengths {
            var valid = 0
            for i in start..<(start + length) where mask?[i] ?? true {
                let a = logPolicy[i]
                let b = logBehaviour[i]
                let r = logReference[i]
                guard a.isFinite else { throw .nonFinite(name: "logPolicy", index: i) }
                guard b.isFinite else { throw .nonFinite(name: "logBehaviour", index: i) }
                guard r.isFinite else { throw .nonFinite(name: "logReference", index: i) }
                valid += 1
                if a == b { exactOnPolicy += 1 }
                if a == r { exactReference += 1 }
                let l = Double(a) - Double(r)
                let lw = Double(a) - Double(b)
                k1Sum += l
                k2Sum += KLEstimator.k2.value(l)
                k3Sum += KLEstimator.k3.value(l)
                maxAbsLogRatio = Swift.max(maxAbsLogRatio, abs(l))
                maxAbsLogWeight = Swift.max(maxAbsLogWeight, abs(lw))
                tokenRatios.add(Double.exp(Swift.min(lw, Self.logRatioCeiling)))
            }
            tokenCount += valid
            if valid > 0 { sequenceCount += 1 }
            start += length
        }

        var kernel = SequenceKernel(configuration: configuration)
        kernel.reserve(longest)
        var dLogPolicy = [Scalar](repeating: 0, count: count)
        var klReward = [Scalar](repeating: 0, count: count)
        var loss = 0.0
        var saturated = 0
        let largest = Double(Scalar.greatestFiniteMagnitude)
        var positions = [Int](repeating: 0, count: longest)
        start = 0
        for length in sequenceLengths {
            var n = 0
            for i in start..<(start + length) where mask?[i] ?? true {
                kernel.policy[n] = Double(logPolicy[i])
                kernel.behaviour[n] = Double(logBehaviour[i])
                kernel.reference[n] = Double(logReference[i])
                positions[n] = i
                n += 1
            }
            start += length
            guard n > 0 else { continue }
            let scale: Double
            switch configuration.normalization {
            case .sum: scale = 1 / Double(sequenceCount)
            case .tokenMean: scale = 1 / Double(tokenCount)
            case .sequenceMean: scale = 1 / (Double(sequenceCount) * Double(n))
            }
            loss += scale * kernel.run(count: n)
            for t in 0..<n {
                var g = scale * kernel.gradient[t]
                if abs(g) > largest {
                    g = g > 0 ? largest : -largest
                    saturated += 1
                }
                dLogPolicy[positions[t]] = Scalar(g)
                var q = kernel.reward[t]
                if abs(q) > largest { q = q > 0 ? largest : -largest }
                klReward[positions[t]] = Scalar(q)
            }
        }

        let c = kernel.counters
        let estimates = Double(Swift.max(c.estimates, 1))
        let terms = Double(Swift.max(c.applied.count, c.clipTerms, 1))
        let anyClamp = Double(c.valueClamps + c.bounds + c.clips + c.dualClips + c.caps + c.overflows)
        let denominators = Double(Swift.max(c.estimates + c.applied.count, 1))
        let tokens = Double(Swift.max(tokenCount, 1))
        let diagnostics = KLDiagnostics(
            tokenCount: tokenCount,
            sequenceCount: sequenceCount,
            k1Mean: k1Sum / tokens,
            k2Mean: k2Sum / tokens,
            k3Mean: k3Sum / tokens,
            maxAbsLogRatio: maxAbsLogRatio,
            maxAbsLogWeight: maxAbsLogWeight,
            tokenRatio: tokenRatios.statistics,
            appliedRatio: c.applied.statistics,
            clipFraction: Double(c.clips) / Double(Swift.max(c.clipTerms, 1)),
            dualClipFraction: Double(c.dualClips) / Double(Swift.max(c.clipTerms, 1)),
            ratioCapFraction: Double(c.caps) / Double(Swift.max(c.applied.count, 1)),
            ratioOverflowCount: c.overflows,
            valueClampFraction: Double(c.valueClamps) / estimates,
            coefficientBoundFraction: Double(c.bounds) / estimates,
            anyClampFraction: Swift.min(1, anyClamp / Swift.max(denominators, terms)),
            exactOnPolicyTokens: exactOnPolicy,
            exactReferenceTokens: exactReference,
            saturatedGradientCount: saturated
        )
        return KLResult(
            loss: loss, dLogPolicy: dLogPolicy, klReward: klReward, diagnostics: diagnostics)
    }
}

/// The output of `KLObjective.evaluate(logPolicy:logBehaviour:logReference:mask:sequenceLengths:)`.
public struct KLResult<Scalar: BinaryFloatingPoint & Sendable>: Sendable {
    /// The normalised loss value (per unit β). For in-reward placement this is the value of the
    /// score-function surrogate Σ sg(c_t)·log π_θ, whose gradient is right but whose value means
    /// nothing: log ``KLDiagnostics/k1Mean`` (etc.) as the KL estimate instead.
    public var loss: Double
    /// ∂loss/∂ log π_θ(y_t|s_t) per token (per unit β; zero on masked tokens): hand it to the
    /// model's backward pass.
    public var dLogPolicy: [Scalar]
    /// The detached per-token KL value (per unit β, not aggregated, not ratio-weighted): k(ℓ_t)
    /// at token level; at sequence level k(Σ_t ℓ_t) on the last valid token and 0 elsewhere.
    /// In-reward placement: value-clamped and coefficient-bounded as configured, computed from
    /// ``KLConfiguration/rewardSource``; subtract β·klReward[t] from token t's reward.
    public var klReward: [Scalar]
    /// Ratio, clip and clamp statistics.
    public var diagnostics: KLDiagnostics
}

/// Inputs that ``KLObjective`` cannot evaluate.
public enum KLInputError: Error, Sendable, Hashable, CustomStringConvertible {
    /// An array whose length differs from `logPolicy`'s.
    case lengthMismatch(name: String, expected: Int, actual: Int)
    /// Sequence lengths that do not add up to the token count.
    case sequenceLengthsMismatch(sum: Int, count: Int)
    /// A negative sequence length.
    case negativeLength(sequence: Int, length: Int)
    /// Offsets that do not start at 0 or are not ascending.
    case badOffsets(index: Int)
    /// A NaN or infinite log-probability on a valid token.
    case nonFinite(name: String, index: Int)

    /// One line naming the problem.
    public var description: String {
        switch self {
        case .lengthMismatch(let name, let expected, let actual):
            return "\(name) has \(actual) entries, expected \(expected) (one per token)"
        case .sequenceLengthsMismatch(let sum, let count):
            return "sequence lengths add up to \(sum) but there are \(count) tokens"
        case .negativeLength(let sequence, let length):
            return "sequence \(sequence) has negative length \(length)"
        case .badOffsets(let index):
            return "sequence offsets must start at 0 and ascend (problem at offset \(index))"
        case .nonFinite(let name, let index):
            return "\(name)[\(index)] is not finite"
        }
    }
}
