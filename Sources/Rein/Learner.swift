import Foundation
import RealModule
import ReinKL
import ReinModel
import ReinTasks

/// The learner side of the loop: GRPO updates with a PPO-clipped policy-gradient surrogate and
/// the configured KL term, on batches of rollouts. One optimizer step = one policy version.
///
/// The per-token gradient handed to the model is
/// dLoss/d log π_θ(y_t) = PG_t + β · KL_t, where PG_t is the clipped surrogate's derivative
/// (aggregated as configured) and KL_t is ``KLObjective``'s `dLogPolicy`. For in-reward
/// placement KL_t is the reward's own score-function coefficient (e.g. w_t·Σ_{u≥t} ℓ_u for
/// k1 in reward with token ratios), i.e. the KL reward is kept as a separate advantage term
/// instead of being folded into the normalised group advantage, so its gradient stays exactly the
/// one ReinKL proves.
public final class Learner {
    public let config: TrainConfig
    public let model: GPTModel
    public private(set) var optimizer: AdamW
    /// The policy version: optimizer steps taken.
    public private(set) var version: Int
    let reference: GPTModel
    let objective: KLObjective
    let surrogate: ClippedSurrogate
    let schedule: LRSchedule

    /// - Parameters:
    ///   - policy: the starting weights (usually the reference's).
    ///   - reference: the frozen π_ref.
    public init(
        config: TrainConfig, policy: GPTParameters, reference: GPTParameters, threads: Int, version: Int = 0
    ) throws {
        self.config = config
        self.model = GPTModel(parameters: policy, threads: threads)
        self.reference = GPTModel(parameters: reference, threads: threads)
        self.optimizer = AdamW(
            layout: policy.layout, config: AdamWConfig(weightDecay: Float(config.weightDecay)),
            threads: threads)
        self.version = version
        self.objective = try KLObjective(config.kl)
        self.surrogate = ClippedSurrogate(epsilonLow: config.clip[0], epsilonHigh: config.clip[1])
        let total = config.steps * config.epochs * config.minibatches
        self.schedule = LRSchedule(
            maxLR: Float(config.lr), minLR: Float(config.minLR), warmupSteps: config.warmupSteps,
            totalSteps: total)
    }

    /// Restores optimizer state and the policy version (for resume).
    public func restore(optimizer state: SafeTensors, version: Int) throws {
        try optimizer.restore(from: state)
        self.version = version
    }

    /// Trains on `batch` for `epochs × minibatches` optimizer steps; returns what happened.
    public func step(_ batch: RolloutBatch) throws -> LearnerStepMetrics {
        let clock = ContinuousClock()
        let start = clock.now
        let rows = batch.rollouts
        let advantages = Advantages.grouped(
            rows.map(\.reward), groupSize: batch.groupSize, config: config.advantage)
        let (tokens, length) = Self.pack(rows)
        var metrics = LearnerStepMetrics()
        metrics.versionBefore = version

        // Reference log-probs (and rows for the exact KL metric), once per batch: scored by the
        // sampler when it has π_ref (rollout workers do), else by the learner.
        let refLogProbs: [[Float]]
        let refRows: [Float]?
        if let scored = Self.scoredReference(rows, positions: length - 1, vocab: model.config.vocab) {
            (refLogProbs, refRows) = scored
        } else {
            let fullBatch = try TokenBatch(
                tokens: tokens, batch: rows.count, length: length, lengths: rows.map(Self.sequenceLength))
            let refOut = try reference.forward(fullBatch, logSoftmaxRows: true, keepActivations: false)
            refLogProbs = Self.completionRows(refOut.logProbs, rows: rows, positions: length - 1)
            refRows = refOut.logSoftmax
        }

        var exactSum = 0.0
        var entropySum = 0.0
        var exactCount = 0
        var order = Array(rows.indices)
        var random = TaskRandom(seed: UInt64(version), stream: 0x6C65_6172_6E65_72)
        for epoch in 0..<config.epochs {
            if epoch > 0 { random.shuffle(&order) }
            for m in 0..<config.minibatches {
                let chosen = Array(
                    order[
                        (m * order.count / config.minibatches)..<((m + 1) * order.count / config.minibatches)]
                )
                let sub = chosen.map { rows[$0] }
                let (subTokens, subLength) = Self.pack(sub)
                let subBatch = try TokenBatch(
                    tokens: subTokens, batch: sub.count, length: subLength,
                    lengths: sub.map(Self.sequenceLength))
                let first = epoch == 0 && m == 0
                let out = try model.forward(subBatch, logSoftmaxRows: epoch == 0)
                let positions = subLength - 1
                let terms = try lossTerms(
                    out, rows: sub, advantages: chosen.map { advantages[$0] },
                    referenceLogProbs: chosen.map { refLogProbs[$0] })
                let (logPi, logRef, kl) = (terms.logPolicy, terms.logReference, terms.kl)
                let tokenTotal = max(1, logPi.count)
                let logMu = sub.flatMap(\.behaviourLogProbs)
                // Back-propagate and step.
                model.zeroGradients()
                try model.backward(dLogProbs: Self.scatter(terms.dLogPolicy, rows: sub, positions: positions))
                var grads = model.gradients
                let norm = clipGradientNorm(&grads, maxNorm: Float(config.gradClip))
                let lr = schedule(optimizer.stepCount)
                optimizer.step(params: &model.parameters.values, grads: grads, lr: lr)
                version += 1

                metrics.optimizerSteps += 1
                metrics.pgLoss += terms.pgLoss
                metrics.klLoss += kl.loss
                metrics.gradNorm = Double(norm)
                metrics.learningRate = Double(lr)
                metrics.clipFraction += Double(terms.clipped) / Double(tokenTotal)
                if first {
                    metrics.kl = kl.diagnostics
                    var gap = 0.0
                    for (p, r) in zip(logPi, logRef) { gap += Double(p) - Double(r) }
                    metrics.logProbGap = gap / Double(tokenTotal)
                    let ratios = zip(logPi, logMu).map { Double.exp(Double($0 - $1)) }
                    metrics.ratioMean = ratios.reduce(0, +) / Double(max(1, ratios.count))
                    metrics.ratioMax = ratios.max() ?? 1
                }
                if epoch == 0, let rows = out.logSoftmax, let refRows {
                    let (kl, entropy, n) = Self.exactKL(
                        policy: rows, policyPositions: positions, reference: refRows,
                        referencePositions: length - 1,
                        rollouts: sub, rowsInBatch: chosen, vocab: model.config.vocab)
                    exactSum += kl
                    entropySum += entropy
                    exactCount += n
                }
            }
        }
        metrics.exactKL = exactSum / Double(max(exactCount, 1))
        metrics.entropy = entropySum / Double(max(exactCount, 1))
        let steps = Double(max(1, metrics.optimizerSteps))
        metrics.pgLoss /= steps
        metrics.klLoss /= steps
        metrics.clipFraction /= steps
        metrics.seconds = seconds(clock.now - start)
        return metrics
    }

    /// The loss of one minibatch and its derivative w.r.t. each completion token's log π_θ.
    public struct LossTerms {
        /// log π_θ, log π_ref of the completion tokens, row after row.
        public var logPolicy: [Float]
        public var logReference: [Float]
        /// The clipped policy-gradient surrogate (aggregated).
        public var pgLoss: Double
        /// The KL objective (per unit β).
        public var kl: KLResult<Float>
        /// dLoss/d log π_θ = PG + β·KL, per completion token.
        public var dLogPolicy: [Float]
        /// Tokens where the clipped surrogate branch was taken.
        public var clipped: Int
        /// pgLoss + β·kl.loss.
        public var total: Double
    }

    /// Evaluates the loss of `rows` from a forward pass `out` over them (same row order).
    public func lossTerms(
        _ out: ForwardOutput, rows: [Rollout], advantages: [Double], referenceLogProbs: [[Float]]
    ) throws -> LossTerms {
        let positions = out.positions
        let logPi = Self.completionValues(out.logProbs, rows: rows, positions: positions)
        let logMu = rows.flatMap(\.behaviourLogProbs)
        let logRef = referenceLogProbs.flatMap { $0 }
        let lengths = rows.map(\.completion.count)
        var dLogPi = [Float](repeating: 0, count: logPi.count)
        var pgLoss = 0.0
        var clipped = 0
        var offset = 0
        let tokenTotal = max(1, logPi.count)
        let sequenceTotal = max(1, lengths.filter { $0 > 0 }.count)
        for (i, n) in lengths.enumerated() {
            let weight =
                config.aggregation == .tokenMean
                ? 1 / Double(tokenTotal) : 1 / (Double(sequenceTotal) * Double(max(n, 1)))
            for t in offset..<(offset + n) {
                let r = surrogate.token(
                    logPolicy: Double(logPi[t]), logBehaviour: Double(logMu[t]), advantage: advantages[i])
                pgLoss += weight * r.loss
                dLogPi[t] = Float(weight * r.dLogPolicy)
                if r.clipped { clipped += 1 }
            }
            offset += n
        }
        let kl = try objective.evaluate(
            logPolicy: logPi, logBehaviour: logMu, logReference: logRef, mask: nil, sequenceLengths: lengths)
        if config.beta > 0 {
            for t in dLogPi.indices { dLogPi[t] += Float(config.beta) * kl.dLogPolicy[t] }
        }
        return LossTerms(
            logPolicy: logPi, logReference: logRef, pgLoss: pgLoss, kl: kl, dLogPolicy: dLogPi,
            clipped: clipped,
            total: pgLoss + config.beta * kl.loss)
    }

    /// Reference log-probs of the completion tokens of `rows`, one array per row.
    public func referenceLogProbs(_ rows: [Rollout]) throws -> [[Float]] {
        let (tokens, length) = Self.pack(rows)
        let batch = try TokenBatch(
            tokens: tokens, batch: rows.count, length: length, lengths: rows.map(Self.sequenceLength))
        return Self.completionRows(
            try reference.forward(batch, keepActivations: false).logProbs, rows: rows, positions: length - 1)
    }

    /// The reference values the sampler attached to every rollout (``Rollout/referenceLogProbs``,
    /// ``Rollout/referenceRows``), laid out as the learner's own reference forward would give them
    /// (rows: B × `positions` × `vocab`, zeros outside completions); nil unless every rollout has
    /// both, of the right sizes.
    public static func scoredReference(_ rows: [Rollout], positions: Int, vocab: Int)
        -> (logProbs: [[Float]], rows: [Float])?
    {
        var logProbs: [[Float]] = []
        logProbs.reserveCapacity(rows.count)
        var full = [Float](repeating: 0, count: rows.count * positions * vocab)
        for (b, r) in rows.enumerated() {
            guard let lp = r.referenceLogProbs, let rr = r.referenceRows, lp.count == r.completion.count,
                rr.count == r.completion.count * vocab
            else { return nil }
            logProbs.append(lp)
            let start = (b * positions + r.prompt.count - 1) * vocab
            full.replaceSubrange(start..<(start + rr.count), with: rr)
        }
        return (logProbs, full)
    }

    // MARK: Packing

    static func sequenceLength(_ r: Rollout) -> Int { r.prompt.count + r.completion.count }

    /// Rows padded with 0 to the longest sequence (at least 2 tokens).
    static func pack(_ rows: [Rollout]) -> (tokens: [Int32], length: Int) {
        let length = max(2, rows.map(sequenceLength).max() ?? 2)
        var tokens = [Int32](repeating: 0, count: rows.count * length)
        for (b, r) in rows.enumerated() {
            let seq = r.prompt + r.completion
            for (t, id) in seq.enumerated() { tokens[b * length + t] = id }
        }
        return (tokens, length)
    }

    /// The per-position values (B × positions) of the completion tokens, row by row, concatenated.
    static func completionValues(_ values: [Float], rows: [Rollout], positions: Int) -> [Float] {
        var out: [Float] = []
        for (b, r) in rows.enumerated() {
            let start = b * positions + r.prompt.count - 1
            out.append(contentsOf: values[start..<(start + r.completion.count)])
        }
        return out
    }

    /// Per-row completion values, one array per rollout.
    static func completionRows(_ values: [Float], rows: [Rollout], positions: Int) -> [[Float]] {
        rows.enumerated().map { b, r in
            let start = b * positions + r.prompt.count - 1
            return Array(values[start..<(start + r.completion.count)])
        }
    }

    /// The inverse of ``completionValues(_:rows:positions:)``: a B × positions array with zeros
    /// outside completions.
    static func scatter(_ flat: [Float], rows: [Rollout], positions: Int) -> [Float] {
        var out = [Float](repeating: 0, count: rows.count * positions)
        var k = 0
        for (b, r) in rows.enumerated() {
            let start = b * positions + r.prompt.count - 1
            for t in 0..<r.completion.count {
                out[start + t] = flat[k]
                k += 1
            }
        }
        return out
    }

    /// Sums of exact KL(π_θ(·|s) ‖ π_ref(·|s)) and of the entropy of π_θ(·|s) over the visited
    /// completion positions, and their count. `policy` rows are laid out for the minibatch,
    /// `reference` rows for the whole batch (`rowsInBatch` maps one to the other).
    static func exactKL(
        policy: [Float], policyPositions: Int, reference: [Float], referencePositions: Int,
        rollouts: [Rollout],
        rowsInBatch: [Int], vocab: Int
    ) -> (kl: Double, entropy: Double, count: Int) {
        var kl = 0.0
        var entropy = 0.0
        var n = 0
        for (b, r) in rollouts.enumerated() {
            for t in 0..<r.completion.count {
                let p0 = (b * policyPositions + r.prompt.count - 1 + t) * vocab
                let r0 = (rowsInBatch[b] * referencePositions + r.prompt.count - 1 + t) * vocab
                for j in 0..<vocab {
                    let lp = Double(policy[p0 + j])
                    let p = Double.exp(lp)
                    kl += p * (lp - Double(reference[r0 + j]))
                    entropy -= p * lp
                }
                n += 1
            }
        }
        return (kl, entropy, n)
    }

}

/// What one ``Learner/step(_:)`` did.
public struct LearnerStepMetrics: Sendable, Codable {
    public var versionBefore = 0
    public var optimizerSteps = 0
    public var pgLoss = 0.0
    /// The KL objective's value per unit β (surrogate value for in-reward placement).
    public var klLoss = 0.0
    public var gradNorm = 0.0
    public var learningRate = 0.0
    public var clipFraction = 0.0
    /// Exact full-vocabulary KL(π_θ‖π_ref) averaged over the sampled positions (first epoch).
    public var exactKL = 0.0
    /// Entropy of π_θ at the sampled positions (nats).
    public var entropy = 0.0
    /// Mean log π_θ − log π_ref over sampled tokens.
    public var logProbGap = 0.0
    public var ratioMean = 1.0
    public var ratioMax = 1.0
    public var kl: KLDiagnostics?
    public var seconds = 0.0

    /// The `metrics.jsonl` keys (snake_case; see ``RunCoding``).
    enum CodingKeys: String, CodingKey {
        case versionBefore = "version_before"
        case optimizerSteps = "optimizer_steps"
        case pgLoss = "pg_loss"
        case klLoss = "kl_loss"
        case gradNorm = "grad_norm"
        case learningRate = "learning_rate"
        case clipFraction = "clip_fraction"
        case exactKL = "exact_kl"
        case entropy
        case logProbGap = "log_prob_gap"
        case ratioMean = "ratio_mean"
        case ratioMax = "ratio_max"
        case kl, seconds
    }
}
