import Foundation
import ReinKL

/// The training loop on a tabular autoregressive policy small enough to enumerate every
/// sequence, so the sequence-level bias of every KL implementation versus lag is exact.
///
/// Per lag L, θ follows gradient ascent on a fixed random sequence reward minus β times the KL
/// gradient (the exact ∇KL(π_θ‖π_ref) over sequences, or the stale expected gradient of
/// ``Options/trainWith``); the behaviour at step s is θ_{max(0, s−L)}. At every step each
/// implementation's exact expected gradient under that behaviour is compared with the exact
/// sequence-level ∇KL(π_θ‖π_ref) (`rkl_seq` of `rein kl exact`).
public struct TabularExperiment: Sendable {
    /// What to run.
    public struct Options: Sendable, Hashable {
        /// Vocabulary size.
        public var vocab = 3
        /// Sequence length.
        public var length = 3
        /// Seed of θ_0, π_ref and the reward.
        public var seed: UInt64 = 1
        /// Optimisation steps per lag.
        public var steps = 30
        /// Step size on the logits.
        public var learningRate = 0.5
        /// KL weight β.
        public var beta = 1.0
        /// Injected lags.
        public var lags = [0, 1, 2, 4, 8]
        /// Implementations compared.
        public var implementations = StalenessTracker.defaultImplementations
        /// The implementation whose stale gradient trains θ (nil: the exact ∇KL(π_θ‖π_ref)).
        public var trainWith: KLImplementation?

        /// The defaults.
        public init() {}
    }

    /// One implementation at one lag.
    public struct Cell: Sendable, Codable, Hashable {
        /// Implementation id.
        public var id: String
        /// Lag.
        public var lag: Int
        /// Mean over steps of the relative L2 error to the sequence-level ∇KL(π_θ‖π_ref).
        public var meanRelativeError: Double
        /// Mean over steps of the cosine with it.
        public var meanCosine: Double
        /// Relative error at the last step (the policy of ``LagResult/finalPolicy``).
        public var finalRelativeError: Double
        /// Cosine at the last step.
        public var finalCosine: Double

        enum CodingKeys: String, CodingKey {
            case id, lag
            case meanRelativeError = "mean_relative_error"
            case meanCosine = "mean_cosine"
            case finalRelativeError = "final_relative_error"
            case finalCosine = "final_cosine"
        }
    }

    /// Everything measured at one lag.
    public struct LagResult: Sendable, Codable, Hashable {
        /// Lag.
        public var lag: Int
        /// Per implementation, in option order.
        public var cells: [Cell]
        /// Mean over steps of the exact sequence-ratio ESS / N = 1 / E_μ[W²].
        public var meanSequenceESS: Double
        /// Exact KL(π_θ‖π_ref) over sequences at the last step.
        public var finalReverseKL: Double
        /// Expected reward under θ at the last step.
        public var finalReward: Double
        /// θ, behaviour and reference of the last step (the JSON `rein kl exact --policy` reads).
        public var finalPolicy: TabularPolicy

        enum CodingKeys: String, CodingKey {
            case lag, cells
            case meanSequenceESS = "mean_sequence_ess"
            case finalReverseKL = "final_reverse_kl"
            case finalReward = "final_reward"
            case finalPolicy = "final_policy"
        }
    }

    /// The options.
    public let options: Options

    /// An experiment with `options` (validated in ``run()``).
    public init(options: Options) { self.options = options }

    /// Runs every lag.
    public func run() throws(TrackerError) -> [LagResult] {
        let o = options
        guard o.steps >= 1, o.lags.allSatisfy({ $0 >= 0 }), o.learningRate.isFinite, o.beta.isFinite else {
            throw .shape("tabular experiment: steps ≥ 1, lags ≥ 0, finite learning rate and β")
        }
        let start: TabularPolicy
        do {
            start = try TabularPolicy.random(vocab: o.vocab, length: o.length, seed: o.seed)
        } catch {
            throw .shape("\(error)")
        }
        // A fixed reward per sequence, in [0, 1], indexed lexicographically.
        var generator = SeededGenerator(seed: o.seed &+ 0x5EED)
        let rewards = (0..<start.sequenceCount).map { _ in Double(generator.next() >> 11) / Double(1 << 53) }
        var results: [LagResult] = []
        for lag in o.lags {
            results.append(try runLag(lag, start: start, rewards: rewards))
        }
        return results
    }

    func policy(theta: [[Double]], behaviour: [[Double]], reference: [[Double]]) throws(TrackerError)
        -> TabularPolicy
    {
        do {
            return try TabularPolicy(
                vocab: options.vocab, length: options.length, theta: theta, behaviour: behaviour,
                reference: reference)
        } catch {
            throw .shape("\(error)")
        }
    }

    func runLag(_ lag: Int, start: TabularPolicy, rewards: [Double]) throws(TrackerError) -> LagResult {
        let o = options
        var history = [start.theta]
        let n = o.implementations.count
        var relSum = [Double](repeating: 0, count: n)
        var cosSum = [Double](repeating: 0, count: n)
        var last: (rel: [Double], cos: [Double]) = ([], [])
        var essSum = 0.0
        var current = start
        for s in 0..<o.steps {
            let theta = history[s]
            let behaviour = history[max(0, s - lag)]
            current = try policy(theta: theta, behaviour: behaviour, reference: start.reference)
            let target = current.exactGradient(of: .rklSeq)
            let gradients: [[[Double]]]
            do {
                gradients = try o.implementations.map { i throws(KLConfigurationError) in
                    try current.expectedGradient(of: i.configuration)
                }
            } catch {
                throw .badImplementation("\(error)")
            }
            var rel: [Double] = []
            var cos: [Double] = []
            for i in 0..<n {
                rel.append(GradientComparison.relativeError(gradients[i], to: target))
                cos.append(numericalCosine(gradients[i], target))
                relSum[i] += rel[i]
                cosSum[i] += cos[i]
            }
            last = (rel, cos)
            var secondMoment = 0.0
            current.forEachSequence { sequence in
                var logW = 0.0
                var logMu = 0.0
                for t in 0..<sequence.logPolicy.count {
                    logW += sequence.logPolicy[t] - sequence.logBehaviour[t]
                    logMu += sequence.logBehaviour[t]
                }
                secondMoment += Foundation.exp(logMu + 2 * logW)
            }
            essSum += secondMoment > 0 ? 1 / secondMoment : 1
            // The update: exact reward gradient minus β times the KL gradient used for training.
            let rewardGradient = current.expectedScoreGradient(sampler: .theta) { sequence, c in
                let r = rewards[Self.sequenceIndex(sequence.tokens, vocab: o.vocab)]
                for t in c.indices { c[t] = r }
            }
            let kl: [[Double]]
            if let train = o.trainWith {
                do {
                    kl = try current.expectedGradient(of: train.configuration)
                } catch {
                    throw .badImplementation("\(error)")
                }
            } else {
                kl = target
            }
            var next = theta
            for r in next.indices {
                for v in next[r].indices {
                    next[r][v] += o.learningRate * (rewardGradient[r][v] - o.beta * kl[r][v])
                }
            }
            history.append(next)
        }
        let steps = Double(o.steps)
        var expectedReward = 0.0
        current.forEachSequence { sequence in
            expectedReward +=
                Foundation.exp(sequence.logPolicy.reduce(0, +))
                * rewards[Self.sequenceIndex(sequence.tokens, vocab: o.vocab)]
        }
        return LagResult(
            lag: lag,
            cells: o.implementations.indices.map { i in
                Cell(
                    id: o.implementations[i].id, lag: lag, meanRelativeError: relSum[i] / steps,
                    meanCosine: cosSum[i] / steps, finalRelativeError: last.rel[i], finalCosine: last.cos[i])
            }, meanSequenceESS: essSum / steps, finalReverseKL: current.reverseKL,
            finalReward: expectedReward,
            finalPolicy: current)
    }

    static func sequenceIndex(_ tokens: [Int], vocab: Int) -> Int {
        tokens.reduce(0) { $0 * vocab + $1 }
    }
}

/// The cosine, or 0 when `a` is rounding noise next to `b` (‖a‖ ≤ 1e-12·‖b‖), where the
/// direction of `a` means nothing.
func numericalCosine(_ a: [[Double]], _ b: [[Double]]) -> Double {
    let na = GradientComparison.norm(Array(a.joined()))
    let nb = GradientComparison.norm(Array(b.joined()))
    return na <= 1e-12 * nb ? 0 : GradientComparison.cosine(a, b)
}
