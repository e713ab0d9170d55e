import Foundation

/// The statistics of an outcome experiment (pure: records in, tables out): each outcome as mean
/// with its 95 % percentile-bootstrap interval per form × lag, naive against corrected forms as
/// paired differences over seeds with the design's minimal detectable effect, whether the
/// tracker's bias predicts the outcome gap (least squares over form × lag cells), and the seed
/// paper's training-outcome claims with a verdict.
public struct OutcomeAnalysis: Sendable, Codable, Hashable {
    /// An outcome measured per run.
    public enum Metric: String, Sendable, Codable, Hashable, CaseIterable {
        /// Exact KL(π_θ‖π_ref), last 10 % of steps.
        case finalKL = "final_kl"
        /// Held-out greedy accuracy at the end.
        case greedyAccuracy = "greedy_accuracy"
        /// Entropy of π_θ, last 10 % of steps.
        case entropy
        /// Standard deviation of the batch reward over the second half.
        case rewardSD = "reward_sd"

        /// The metric's value in a record (nil when missing or not finite).
        public func value(_ r: OutcomeRecord) -> Double? {
            let v: Double?
            switch self {
            case .finalKL: v = r.finalKL
            case .greedyAccuracy: v = r.greedyAccuracy
            case .entropy: v = r.finalEntropy
            case .rewardSD: v = r.rewardSD
            }
            return v.flatMap { $0.isFinite ? $0 : nil }
        }

        /// How tables name it.
        public var title: String {
            switch self {
            case .finalKL: return "final exact KL(π_θ‖π_ref)"
            case .greedyAccuracy: return "held-out greedy accuracy"
            case .entropy: return "entropy (nats)"
            case .rewardSD: return "reward SD (2nd half)"
            }
        }
    }

    /// One form at one lag over its seeds.
    public struct Cell: Sendable, Codable, Hashable {
        /// Form id.
        public var form: String
        /// Injected lag.
        public var lag: Int
        /// Seeds.
        public var seeds: [Int]
        /// Mean and 95 % bootstrap interval of each ``Metric`` (keyed by its raw value).
        public var outcomes: [String: Statistics.Interval]
        /// The tracker's pooled bias of the form (mean over seeds with its interval; nil for no KL).
        public var trackerBias: Statistics.Interval?
        /// The parameter-space bias (nil unless measured).
        public var parameterBias: Statistics.Interval?

        enum CodingKeys: String, CodingKey {
            case form, lag, seeds, outcomes
            case trackerBias = "tracker_bias"
            case parameterBias = "parameter_bias"
        }
    }

    /// Naive minus corrected at one lag, paired by seed.
    public struct Comparison: Sendable, Codable, Hashable {
        /// The naive form.
        public var naive: String
        /// Its corrected counterpart.
        public var corrected: String
        /// Injected lag.
        public var lag: Int
        /// The metric compared.
        public var metric: Metric
        /// Mean of naive − corrected over the paired seeds, with its 95 % percentile-bootstrap interval.
        public var difference: Statistics.Interval
        /// Standard deviation of the paired differences.
        public var differenceSD: Double
        /// The smallest true difference this design detects at 95 % / 80 % power
        /// (``Statistics/minimalDetectableEffect(n:sd:level:power:)``).
        public var minimalDetectableEffect: Double
        /// The paired t-interval of the same mean difference.
        public var tInterval: Statistics.Interval
        /// Whether both intervals exclude zero.
        public var detected: Bool

        enum CodingKeys: String, CodingKey {
            case naive, corrected, lag, metric, difference
            case tInterval = "t_interval"
            case differenceSD = "difference_sd"
            case minimalDetectableEffect = "minimal_detectable_effect"
            case detected
        }
    }

    /// Tracker bias (x) against the outcome gap to the baseline (y), one point per form × lag.
    public struct Prediction: Sendable, Codable, Hashable {
        /// One form × lag cell.
        public struct Point: Sendable, Codable, Hashable {
            /// Form id.
            public var form: String
            /// Injected lag.
            public var lag: Int
            /// Mean tracker relative error of the form over the cell's seeds.
            public var bias: Double
            /// Mean over seeds of (the run's metric − the same seed's baseline run's metric).
            public var gap: Double
        }

        /// The outcome.
        public var metric: Metric
        /// The baseline every gap is measured from: the same seed's `k2_loss_sgw_token` run at the
        /// same lag (its expected gradient is ∇KL(π_θ‖π_ref) at every lag).
        public var baseline: String
        /// The cells.
        public var points: [Point]
        /// The least-squares line through them, with its slope's 95 % interval (nil below 3 points).
        public var fit: Statistics.LineFit?
        /// The cell that moves the line most (largest Cook's distance), and the line without it:
        /// a relation that one cell carries is not one a user can act on (nil below 4 cells).
        public var mostInfluential: Influence?

        enum CodingKeys: String, CodingKey {
            case metric, baseline, points, fit
            case mostInfluential = "most_influential"
        }

        /// The most influential cell of a fit and the fit without it.
        public struct Influence: Sendable, Codable, Hashable {
            /// The cell.
            public var point: Point
            /// Its Cook's distance.
            public var cooksDistance: Double
            /// The line through the other cells.
            public var fitWithout: Statistics.LineFit?

            enum CodingKeys: String, CodingKey {
                case point
                case cooksDistance = "cooks_distance"
                case fitWithout = "fit_without"
            }
        }

        /// Whether the bias predicts the gap: the slope's interval excludes 0, and still does, on
        /// the same side, without the most influential cell.
        public var predicts: Bool {
            guard let fit, fit.slope.excludesZero else { return false }
            guard let influence = mostInfluential else { return true }
            guard let without = influence.fitWithout, without.slope.excludesZero else { return false }
            return (without.slope.estimate > 0) == (fit.slope.estimate > 0)
        }
    }

    /// A training-outcome claim of the seed paper and what this experiment says about it.
    public struct Claim: Sendable, Codable, Hashable {
        /// A verdict.
        public enum Verdict: String, Sendable, Codable, Hashable {
            /// Both intervals (bootstrap and t) agree with the claim.
            case agreed
            /// Both intervals exclude what the claim says.
            case refuted
            /// The intervals allow both.
            case undetermined
        }

        /// The claim, in words.
        public var claim: String
        /// The numbers behind the verdict.
        public var measured: String
        /// The verdict.
        public var verdict: Verdict
    }

    /// Every form × lag cell, in the order first seen.
    public var cells: [Cell]
    /// Naive − corrected for each pair of ``OutcomeExperiment/corrections``, lag and metric.
    public var comparisons: [Comparison]
    /// Does the tracker's bias predict the outcome gap (final KL, accuracy)?
    public var predictions: [Prediction]
    /// The seed paper's training-outcome claims (at the smallest lag).
    public var claims: [Claim]
    /// Mean exact-KL trajectory per form and lag over the seeds: (step, KL) pairs.
    public var trajectories: [Trajectory]

    /// The mean KL trajectory of one cell.
    public struct Trajectory: Sendable, Codable, Hashable {
        /// Form id.
        public var form: String
        /// Injected lag.
        public var lag: Int
        /// (step, mean exact KL over seeds) at the steps every seed recorded.
        public var points: [[Double]]
    }

    /// The analysis of `records` (nil unless some form × lag has two seeds or more; a second
    /// record of the same form, lag and seed is left out).
    public init?(records: [OutcomeRecord], resamples: Int = Statistics.defaultResamples) {
        var order: [String] = []
        var groups: [String: [OutcomeRecord]] = [:]
        for r in records {
            let key = "\(r.form)\u{1}\(r.lag)"
            if groups[key] == nil { order.append(key) }
            // One record per seed (the same run folder given twice counts once).
            if groups[key]?.contains(where: { $0.seed == r.seed }) == true { continue }
            groups[key, default: []].append(r)
        }
        guard groups.values.contains(where: { $0.count >= 2 }) else { return nil }
        func group(_ form: String, _ lag: Int) -> [OutcomeRecord] { groups["\(form)\u{1}\(lag)"] ?? [] }
        cells = order.map { key in
            let rs = groups[key]!
            func interval(_ xs: [Double?]) -> Statistics.Interval? {
                let v = xs.compactMap { $0 }.filter(\.isFinite)
                return v.isEmpty ? nil : Statistics.bootstrapMean(v, resamples: resamples)
            }
            var outcomes: [String: Statistics.Interval] = [:]
            for m in Metric.allCases { outcomes[m.rawValue] = interval(rs.map(m.value)) }
            return Cell(
                form: rs[0].form, lag: rs[0].lag, seeds: rs.map(\.seed), outcomes: outcomes,
                trackerBias: interval(rs.map(\.trackerBias)), parameterBias: interval(rs.map(\.parameterBias))
            )
        }
        let lags = Set(records.map(\.lag)).sorted()
        comparisons = OutcomeExperiment.corrections.flatMap { pair in
            lags.flatMap { lag in
                [Metric.finalKL, .greedyAccuracy, .entropy].compactMap { metric in
                    Self.compare(
                        group(pair.naive, lag), group(pair.corrected, lag), metric: metric,
                        resamples: resamples
                    ).map { p in
                        Comparison(
                            naive: pair.naive, corrected: pair.corrected, lag: lag, metric: metric,
                            difference: p.bootstrap, differenceSD: p.sd, minimalDetectableEffect: p.mde,
                            tInterval: p.t, detected: p.above || p.below)
                    }
                }
            }
        }
        // The baseline of a run: the same seed's run of the token-corrected k2 at the same lag, whose
        // gradient is the exact ∇KL(π_θ‖π_ref) at every lag; so the gap is what the form's KL
        // gradient does, not what the lag does to the policy-gradient term.
        let baseline = "k2_loss_sgw_token"
        predictions = [Metric.finalKL, .greedyAccuracy].map { metric in
            let points = order.compactMap { key -> Prediction.Point? in
                let rs = groups[key]!
                guard rs[0].form != "no_kl", rs[0].form != baseline else { return nil }
                let base = Dictionary(group(baseline, rs[0].lag).map { ($0.seed, $0) }) { a, _ in a }
                let pairs = rs.compactMap { r -> (bias: Double, gap: Double)? in
                    guard let b = r.trackerBias, let v = metric.value(r),
                        let w = base[r.seed].flatMap(metric.value)
                    else { return nil }
                    return (b, v - w)
                }
                guard !pairs.isEmpty else { return nil }
                return Prediction.Point(
                    form: rs[0].form, lag: rs[0].lag, bias: Statistics.mean(pairs.map(\.bias)),
                    gap: Statistics.mean(pairs.map(\.gap)))
            }
            let (x, y) = (points.map(\.bias), points.map(\.gap))
            var influence: Prediction.Influence?
            if points.count >= 4, let distances = Statistics.cooksDistances(x: x, y: y),
                let most = distances.indices.max(by: { distances[$0] < distances[$1] })
            {
                let others = points.indices.filter { $0 != most }
                influence = Prediction.Influence(
                    point: points[most], cooksDistance: distances[most],
                    fitWithout: Statistics.fitLine(x: others.map { x[$0] }, y: others.map { y[$0] }))
            }
            return Prediction(
                metric: metric, baseline: "\(baseline) at the same lag", points: points,
                fit: Statistics.fitLine(x: x, y: y), mostInfluential: influence)
        }
        trajectories = order.map { key in
            let rs = groups[key]!
            var sums: [Double: (sum: Double, n: Int)] = [:]
            for r in rs {
                for p in r.klTrajectory where p.count == 2 && p[1].isFinite {
                    sums[p[0], default: (0, 0)].sum += p[1]
                    sums[p[0], default: (0, 0)].n += 1
                }
            }
            let points = sums.filter { $0.value.n == rs.count }.sorted { $0.key < $1.key }
                .map { [$0.key, $0.value.sum / Double($0.value.n)] }
            return Trajectory(form: rs[0].form, lag: rs[0].lag, points: points)
        }
        claims = Self.claims(at: lags.first ?? 0, group: group, resamples: resamples)
    }

    /// A paired difference: its bootstrap and t intervals, the SD of the differences and the
    /// minimal detectable effect.
    struct Paired {
        var bootstrap: Statistics.Interval
        var t: Statistics.Interval
        var sd: Double
        var mde: Double
        /// Both intervals above zero.
        var above: Bool { bootstrap.low > 0 && t.low > 0 }
        /// Both intervals below zero.
        var below: Bool { bootstrap.high < 0 && t.high < 0 }
    }

    /// Paired a − b over the seeds both have (nil below two pairs).
    static func compare(
        _ a: [OutcomeRecord], _ b: [OutcomeRecord], metric: Metric, resamples: Int
    ) -> Paired? {
        let right = Dictionary(b.compactMap { r in metric.value(r).map { (r.seed, $0) } }) { x, _ in x }
        let pairs = a.compactMap { r -> (Double, Double)? in
            guard let x = metric.value(r), let y = right[r.seed] else { return nil }
            return (x, y)
        }
        guard pairs.count >= 2 else { return nil }
        let diff = Statistics.pairedDifference(pairs.map(\.0), pairs.map(\.1), resamples: resamples)
        let differences = pairs.map { $0.0 - $0.1 }
        let sd = Statistics.standardDeviation(differences)
        return Paired(
            bootstrap: diff, t: Statistics.tInterval(differences), sd: sd,
            mde: Statistics.minimalDetectableEffect(n: pairs.count, sd: sd))
    }

    /// The seed paper's training-outcome claims, judged by paired intervals at `lag`.
    static func claims(at lag: Int, group: (String, Int) -> [OutcomeRecord], resamples: Int) -> [Claim] {
        func diff(_ a: String, _ b: String, _ m: Metric) -> Paired? {
            compare(group(a, lag), group(b, lag), metric: m, resamples: resamples)
        }
        func text(_ name: String, _ d: Paired) -> String {
            "lag \(lag), "
                + String(
                    format: "%@ %.4g [%.4g, %.4g] (n %d, MDE %.3g)", name, d.bootstrap.estimate,
                    d.bootstrap.low,
                    d.bootstrap.high, d.bootstrap.count, d.mde)
        }
        /// "a exceeds b": agreed when both intervals of a − b lie above 0, refuted below.
        func greater(_ claim: String, _ a: String, _ b: String, _ m: Metric) -> Claim? {
            guard let d = diff(a, b, m) else { return nil }
            let verdict: Claim.Verdict = d.above ? .agreed : (d.below ? .refuted : .undetermined)
            return Claim(claim: claim, measured: text("\(a) − \(b), \(m.title):", d), verdict: verdict)
        }
        var out: [Claim] = []
        // Figures 2 and 4: k1 as loss trains like no KL. Agreed only if the design could have seen
        // a difference the size of what a working KL term makes (no KL − k2 as loss).
        if let d = diff("k1_loss", "no_kl", .finalKL) {
            let effect = diff("no_kl", "k2_loss", .finalKL)
            let verdict: Claim.Verdict
            if d.above || d.below {
                verdict = .refuted
            } else if let effect, effect.above, d.mde < effect.bootstrap.estimate {
                verdict = .agreed
            } else {
                verdict = .undetermined
            }
            out.append(
                Claim(
                    claim: "k1 as loss is not a KL regulariser: its final KL matches no KL (Figures 2 and 4)",
                    measured: text("k1_loss − no_kl, final KL:", d)
                        + (effect.map { "; " + text("no_kl − k2_loss (what a working KL does):", $0) } ?? ""),
                    verdict: verdict))
        }
        let constrain = ["k2_loss", "k3_loss"].compactMap { form in
            diff("no_kl", form, .finalKL).map { (form, $0) }
        }
        if !constrain.isEmpty {
            let verdict: Claim.Verdict =
                constrain.contains { $0.1.below }
                ? .refuted : (constrain.allSatisfy { $0.1.above } ? .agreed : .undetermined)
            out.append(
                Claim(
                    claim:
                        "k2 and k3 as loss both constrain the policy: final KL below no KL (Figures 3 and 5)",
                    measured: constrain.map { text("no_kl − \($0.0), final KL:", $0.1) }.joined(
                        separator: "; "),
                    verdict: verdict))
        }
        if let c = greater(
            "k2 as loss keeps π_θ closer to π_ref than k3 as loss (Figures 3 and 5)", "k3_loss", "k2_loss",
            .finalKL)
        {
            out.append(c)
        }
        if let c = greater(
            "k2 as loss gives a lower reward variance than k3 as loss (Figures 3 and 5)", "k3_loss",
            "k2_loss",
            .rewardSD)
        {
            out.append(c)
        }
        return out
    }
}
