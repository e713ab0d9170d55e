import Foundation
import Rein
import ReinKL
import ReinTasks
import ReinTracker

/// A few lines about one finished run, for the end of `make demo` and `rein summarize --brief`:
/// held-out accuracy before and after, the lag trained, how far the run's KL form was from the
/// reverse-KL gradient at that lag next to its importance-corrected counterpart (from the staleness
/// tracker), and the sample ledger.
public struct RunBrief: Sendable, Codable, Hashable {
    /// Held-out greedy and sampled accuracy before the first step (nil without `eval-start.json`).
    public var start: HeldOutEvaluation?
    /// Held-out accuracy at the end (nil without `eval.json`).
    public var end: HeldOutEvaluation?
    /// Batches trained or dropped (lines of `metrics.jsonl`).
    public var steps: Int
    /// Mean lag of the batches trained (versions).
    public var lagMean: Double
    /// Largest lag trained.
    public var lagMax: Int
    /// The run's KL bias against its corrected counterpart (nil without tracker records, or when
    /// the run's form is not one the tracker measures).
    public var bias: Bias?
    /// The ledger (nil without `ledger.json`).
    public var ledger: SampleLedger?

    /// Position-weighted mean relative error of two KL implementations' expected gradients against
    /// ∇KL(π_θ‖π_ref), over every tracker observation of the run (lag > 0 positions only, when the
    /// run had any).
    public struct Bias: Sendable, Codable, Hashable {
        /// The run's implementation id (e.g. `k2_loss`).
        public var form: String
        /// Its relative error.
        public var formError: Double
        /// The importance-corrected implementation it is compared with (e.g. `k2_loss_sgw_token`).
        public var corrected: String
        /// Its relative error.
        public var correctedError: Double
        /// The lags pooled (all lags when the run was on-policy throughout).
        public var lags: ClosedRange<Int>
        /// Positions pooled.
        public var positions: Int
    }

    /// The brief of the run in `folder`.
    /// - Throws: ``Rein/RunFolderError`` if a file is there but does not decode.
    public init(folder: RunFolder) throws(RunFolderError) {
        start = try folder.evaluation(start: true)
        end = try folder.evaluation()
        let metrics = folder.has(.metrics) ? try folder.metrics() : []
        steps = metrics.count
        let trained = metrics.filter { $0.learner != nil }
        lagMean = trained.isEmpty ? 0 : trained.map(\.lagMean).reduce(0, +) / Double(trained.count)
        lagMax = trained.map(\.lagMax).max() ?? 0
        ledger = try folder.ledger(SampleLedger.self)
        let records = folder.has(.tracker) ? try StalenessTracker.readRecords(in: folder) : []
        let configuration = try folder.config()?.train.kl ?? KLConfiguration(estimator: .k2)
        bias = Self.bias(of: configuration, in: records)
    }

    /// The importance-corrected implementation compared with `form`: the token-ratio correction
    /// of the same estimator where the catalogue has one, the sequence ratio for k1 in reward, and
    /// sg(w)·k2 otherwise.
    public static func correctedCounterpart(of form: String) -> String {
        switch form {
        case "k3_loss": return "k3_loss_w_token"
        case "k1_reward": return "k1_reward_sgW"
        default: return "k2_loss_sgw_token"
        }
    }

    /// Pools `records` for the implementation configured as `configuration` and its corrected
    /// counterpart.
    static func bias(of configuration: KLConfiguration, in records: [TrackerRecord]) -> Bias? {
        guard
            let form = KLImplementation.catalog.first(where: { $0.configuration == configuration })?.id
        else { return nil }
        let corrected = correctedCounterpart(of: form)
        let buckets = records.flatMap(\.buckets)
        let stale = buckets.filter { $0.lag > 0 }
        let pooled = stale.isEmpty ? buckets : stale
        guard !pooled.isEmpty else { return nil }
        func error(_ id: String) -> Double? {
            var weighted = 0.0
            var positions = 0
            for bucket in pooled {
                guard let found = bucket.implementations.first(where: { $0.id == id }) else { return nil }
                weighted += found.relativeError * Double(bucket.positions)
                positions += bucket.positions
            }
            return positions > 0 ? weighted / Double(positions) : nil
        }
        guard let formError = error(form), let correctedError = error(corrected) else { return nil }
        let lags = pooled.map(\.lag)
        return Bias(
            form: form, formError: formError, corrected: corrected, correctedError: correctedError,
            lags: lags.min()!...lags.max()!, positions: pooled.map(\.positions).reduce(0, +))
    }

    /// The brief as lines of text.
    public var lines: [String] {
        var out: [String] = []
        if let end {
            var line = "held-out accuracy (greedy): "
            if let start {
                let gain = 100 * (end.greedy.accuracy - start.greedy.accuracy)
                line += "\(percent(start.greedy.accuracy)) → \(percent(end.greedy.accuracy)) "
                line += String(format: "(%+.1f points)", gain)
            } else {
                line += percent(end.greedy.accuracy)
            }
            if let sampled = end.sampled {
                line += "; sampled "
                if let before = start?.sampled { line += "\(percent(before.accuracy)) → " }
                line += percent(sampled.accuracy)
            }
            out.append(line)
        }
        out.append(
            String(format: "lag trained: mean %.2f, max %d versions over %d steps", lagMean, lagMax, steps))
        if let bias {
            let lags =
                bias.lags.lowerBound == bias.lags.upperBound
                ? "lag \(bias.lags.lowerBound)" : "lags \(bias.lags.lowerBound)–\(bias.lags.upperBound)"
            out.append(
                "KL gradient bias at \(lags) (tracker, \(bias.positions) positions): \(bias.form) "
                    + "\(percent(bias.formError)) relative error vs \(bias.corrected) "
                    + percent(bias.correctedError))
        }
        if let ledger { out.append("ledger: \(ledger.summary)") }
        return out
    }
}
