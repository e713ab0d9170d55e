import Foundation
import Logging
import Rein
import ReinKL

/// One visited prefix s of a batch, with the exact rows the tracker compares at it.
public struct TrackedPosition: Sendable {
    /// Learner version − the version that sampled the token at s.
    public var lag: Int
    /// The sequence (row of the batch) the position belongs to.
    public var sequence: Int
    /// The sampled token y at s.
    public var token: Int
    /// log π_θ(·|s), log μ(·|s), log π_ref(·|s).
    public var rows: KLPosition

    /// A position from its rows.
    public init(lag: Int, sequence: Int, token: Int, rows: KLPosition) {
        self.lag = lag
        self.sequence = sequence
        self.token = token
        self.rows = rows
    }
}

/// Measures, per lag bucket and per KL implementation, how far the exact expected logit-space
/// gradient under the behaviour policy μ is from the exact ∇_z KL(π_θ‖π_ref) at every visited
/// prefix of a batch, with importance-sampling diagnostics and lag histograms.
///
/// ``analyse(step:version:positions:sequenceLags:maxBehaviourLogProbError:seconds:)`` is pure
/// arithmetic on rows (what the tests check);
/// ``observe(step:batch:version:policy:reference:behaviour:temperature:threads:scratch:parameterSpace:)``
/// recomputes the rows of a real batch with the model.
public struct StalenessTracker: Sendable {
    /// The implementations measured by default: the ten of `rein kl exact` and the
    /// coefficient-level corrections (with and without the PPO clip).
    public static let defaultImplementations: [KLImplementation] =
        KLImplementation.required
        + KLImplementation.catalog.dropFirst(10).filter { $0.id.contains("coef") }

    /// The implementations measured, in record order.
    public let implementations: [KLImplementation]
    /// Observe every `every` trainer steps (step 1 and then every `every`-th).
    public let every: Int
    /// Run the parameter-space comparison on every `parameterEvery`-th observation (0: never).
    public let parameterEvery: Int
    let logger: Logger

    /// - Parameters:
    ///   - implementations: what to measure (validated here).
    ///   - every: the observation interval in trainer steps (≥ 1).
    ///   - parameterEvery: the parameter-space comparison runs on every `parameterEvery`-th
    ///     observation (0: never; it costs one backward pass per implementation).
    ///   - logger: where to log (the CLI configures it).
    public init(
        implementations: [KLImplementation] = StalenessTracker.defaultImplementations, every: Int = 10,
        parameterEvery: Int = 0, logger: Logger
    ) throws(TrackerError) {
        guard every >= 1 else { throw .shape("tracker interval must be at least 1, got \(every)") }
        guard parameterEvery >= 0 else {
            throw .shape("parameter interval must be ≥ 0, got \(parameterEvery)")
        }
        for implementation in implementations {
            do {
                try implementation.configuration.validate()
            } catch {
                throw .badImplementation("\(implementation.id): \(error)")
            }
        }
        self.implementations = implementations
        self.every = every
        self.parameterEvery = parameterEvery
        self.logger = logger
    }

    /// True on the trainer steps (1-based) the tracker observes: 1, 1 + every, 1 + 2·every, …
    public func shouldObserve(step: Int) -> Bool { (step - 1) % every == 0 }

    /// True on the observed steps that also run the parameter-space comparison.
    public func shouldCompareParameters(step: Int) -> Bool {
        shouldObserve(step: step) && parameterEvery > 0 && ((step - 1) / every) % parameterEvery == 0
    }

    /// Computes a record from rows already at hand.
    ///
    /// - Parameters:
    ///   - step: the trainer step (1-based).
    ///   - version: the learner's version θ.
    ///   - positions: every visited prefix of the batch.
    ///   - sequenceLags: the lag of each sequence (its oldest token), indexed by
    ///     ``TrackedPosition/sequence``.
    ///   - maxBehaviourLogProbError: carried into the record.
    ///   - seconds: time already spent (recomputing rows), added to the analysis time.
    public func analyse(
        step: Int, version: Int, positions: [TrackedPosition], sequenceLags: [Int],
        maxBehaviourLogProbError: Double = 0, seconds: Double = 0
    ) throws(TrackerError) -> TrackerRecord {
        let clock = ContinuousClock()
        let start = clock.now
        for p in positions where p.sequence < 0 || p.sequence >= sequenceLags.count {
            throw .shape("position of sequence \(p.sequence) outside \(sequenceLags.count) sequences")
        }
        // Histograms.
        var tokensAt: [Int: Int] = [:]
        var sequencesAt: [Int: Int] = [:]
        for p in positions { tokensAt[p.lag, default: 0] += 1 }
        for lag in sequenceLags { sequencesAt[lag, default: 0] += 1 }
        let lags = Set(tokensAt.keys).union(sequencesAt.keys).sorted()
        let histogram = lags.map {
            LagCount(lag: $0, sequences: sequencesAt[$0] ?? 0, tokens: tokensAt[$0] ?? 0)
        }
        // Sequence ratios W = Π_t w_t, and prefix ratios ρ_s = Π_{t' < t} w_t' (positions of a
        // sequence come in time order).
        var logW = [Double](repeating: 0, count: sequenceLags.count)
        var logPrefix = [Double](repeating: 0, count: positions.count)
        for (i, p) in positions.enumerated() {
            logPrefix[i] = logW[p.sequence]
            logW[p.sequence] += p.rows.logPolicy[p.token] - p.rows.logBehaviour[p.token]
        }
        var buckets: [LagBucket] = []
        for lag in lags {
            let members = positions.indices.filter { positions[$0].lag == lag }
            let sequenceRatios = sequenceLags.indices.filter { sequenceLags[$0] == lag }.map {
                Foundation.exp(logW[$0])
            }
            buckets.append(
                try bucket(
                    lag: lag, positions: members.map { positions[$0] }, sequenceRatios: sequenceRatios,
                    prefixRatios: members.map { Foundation.exp(logPrefix[$0]) }))
        }
        let elapsed = ReinTracker.seconds(clock.now - start)
        var record = TrackerRecord(
            step: step, version: version, positions: positions.count, sequences: sequenceLags.count,
            lagHistogram: histogram, buckets: buckets, maxBehaviourLogProbError: maxBehaviourLogProbError,
            seconds: seconds + elapsed)
        record.analysisSeconds = elapsed
        return record
    }

    func bucket(
        lag: Int, positions: [TrackedPosition], sequenceRatios: [Double], prefixRatios: [Double]
    ) throws(TrackerError) -> LagBucket {
        let n = implementations.count
        var errorSquares = [Double](repeating: 0, count: n)
        var forwardErrorSquares = [Double](repeating: 0, count: n)
        var dots = [Double](repeating: 0, count: n)
        var gradientSquares = [Double](repeating: 0, count: n)
        var meanRelative = [Double](repeating: 0, count: n)
        var meanCosine = [Double](repeating: 0, count: n)
        var targetSquares = 0.0
        var forwardSquares = 0.0
        var behaviourKL = 0.0
        var behaviourKLMax = 0.0
        var reverseKL = 0.0
        var ratios: [Double] = []
        ratios.reserveCapacity(positions.count)
        var targetNorms: [Double] = []
        targetNorms.reserveCapacity(positions.count)
        for p in positions {
            let rows = p.rows
            let target = rows.reverseKLGradient
            let forward = rows.forwardKLGradient
            let gradients: [[Double]]
            do {
                gradients = try rows.expectedGradients(of: implementations)
            } catch {
                throw .badImplementation("\(error)")
            }
            let tt = dot(target, target)
            targetSquares += tt
            targetNorms.append(tt)
            forwardSquares += dot(forward, forward)
            for i in 0..<n {
                let g = gradients[i]
                errorSquares[i] += distanceSquared(g, target)
                forwardErrorSquares[i] += distanceSquared(g, forward)
                dots[i] += dot(g, target)
                gradientSquares[i] += dot(g, g)
                meanRelative[i] += GradientComparison.relativeError(g, to: target)
                meanCosine[i] += dot(g, g) > 1e-24 * tt ? GradientComparison.cosine(g, target) : 0
            }
            var kl = 0.0
            for v in rows.logBehaviour.indices {
                kl += Foundation.exp(rows.logBehaviour[v]) * (rows.logBehaviour[v] - rows.logPolicy[v])
            }
            behaviourKL += kl
            behaviourKLMax = max(behaviourKLMax, kl)
            reverseKL += rows.reverseKL
            ratios.append(Foundation.exp(rows.logPolicy[p.token] - rows.logBehaviour[p.token]))
        }
        let count = Double(max(positions.count, 1))
        var biases: [ImplementationBias] = []
        for i in 0..<n {
            let relative =
                targetSquares > 0
                ? (errorSquares[i] / targetSquares).squareRoot() : errorSquares[i].squareRoot()
            let forwardRelative =
                forwardSquares > 0
                ? (forwardErrorSquares[i] / forwardSquares).squareRoot() : forwardErrorSquares[i].squareRoot()
            let cosine =
                targetSquares > 0 && gradientSquares[i] > 1e-24 * targetSquares
                ? dots[i] / (targetSquares * gradientSquares[i]).squareRoot() : 0
            biases.append(
                ImplementationBias(
                    id: implementations[i].id, relativeError: relative, cosine: cosine,
                    meanRelativeError: meanRelative[i] / count, meanCosine: meanCosine[i] / count,
                    forwardRelativeError: forwardRelative))
        }
        var result = LagBucket(
            lag: lag, positions: positions.count, behaviourKL: behaviourKL / count,
            behaviourKLMax: behaviourKLMax, reverseKL: reverseKL / count,
            tokenRatio: RatioSummary(ratios), sequenceRatio: RatioSummary(sequenceRatios),
            implementations: biases)
        result.prefixRatio = RatioSummary(prefixRatios)
        result.prefixShift = Self.prefixShift(prefixRatios: prefixRatios, targetSquares: targetNorms)
        return result
    }

    /// The prefix-distribution part of the bias, estimated: with self-normalised prefix ratios
    /// ρ̃_s = ρ_s·N/Σρ, the relative L2 distance √(Σ_s (1 − ρ̃_s)²‖t_s‖² / Σ_s ρ̃_s²‖t_s‖²) between the
    /// exact per-position targets t_s as sampled (prefixes from μ) and reweighted to π_θ's prefix
    /// distribution, stacked over positions as ``ImplementationBias/relativeError`` is. It is what
    /// remains for a form whose per-position (token-level) bias is zero; a sample estimate, so it
    /// carries the ratios' noise (read it with the prefix ESS). 0 when every ρ is 1.
    public static func prefixShift(prefixRatios: [Double], targetSquares: [Double]) -> Double {
        let total = prefixRatios.reduce(0, +)
        guard total > 0, total.isFinite else { return 0 }
        let scale = Double(prefixRatios.count) / total
        var shift = 0.0
        var reweighted = 0.0
        for (rho, tt) in zip(prefixRatios, targetSquares) {
            let r = rho * scale
            shift += (1 - r) * (1 - r) * tt
            reweighted += r * r * tt
        }
        return reweighted > 0 ? (shift / reweighted).squareRoot() : 0
    }

    /// Encodes `record` as one JSON line (the run folder's coding: snake_case keys, sorted).
    public static func jsonLine(_ record: TrackerRecord) throws -> String {
        String(decoding: try RunCoding.encoder().encode(record), as: UTF8.self)
    }

    /// Reads every record of the `tracker.jsonl` file of `folder` (none if it has none).
    /// - Throws: ``Rein/RunFolderError`` naming the first bad line.
    public static func readRecords(in folder: RunFolder) throws(RunFolderError) -> [TrackerRecord] {
        try folder.records(TrackerRecord.self, of: .tracker)
    }
}

func dot(_ a: [Double], _ b: [Double]) -> Double {
    var s = 0.0
    for i in a.indices { s += a[i] * b[i] }
    return s
}

func distanceSquared(_ a: [Double], _ b: [Double]) -> Double {
    var s = 0.0
    for i in a.indices { s += (a[i] - b[i]) * (a[i] - b[i]) }
    return s
}

/// A duration in seconds.
func seconds(_ d: Duration) -> Double {
    Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
}
