import Foundation
import Rein
import ReinKL
import ReinTasks
import ReinTracker

extension RunReport {
    /// Reads a run folder through ``Rein/RunFolder``: `metrics.jsonl`, `tracker.jsonl`,
    /// `eval-start.json`, `eval.json`, `config.yaml` (each optional, but one of the first two must
    /// exist). Folders of every schema version up to this build's load.
    public static func load(path: String, name: String) throws(ReportError) -> RunReport {
        do {
            let folder = try RunFolder.existing(path)
            guard folder.has(.metrics) || folder.has(.tracker) else { throw ReportError.notARun(path) }
            let curves = try folder.metrics().map(curve)
            let records = try StalenessTracker.readRecords(in: folder)
            let start = try folder.evaluation(start: true)
            let end = try folder.evaluation()
            let learnerSeconds = curves.reduce(0.0) {
                $0 + ($1.learnerSeconds.isFinite ? $1.learnerSeconds : 0)
            }
            let trackerSeconds = records.reduce(0.0) { $0 + $1.seconds }
            let bias = aggregateBias(records)
            return RunReport(
                name: name, path: path, settings: try folder.config().map(settings) ?? [:],
                steps: curves.count, greedyStart: start?.greedy.accuracy, greedyEnd: end?.greedy.accuracy,
                sampledStart: start?.sampled?.accuracy, sampledEnd: end?.sampled?.accuracy, curves: curves,
                bias: bias, importance: aggregateImportance(records), lagHistogram: aggregateLags(records),
                tracker: TrackerCost(
                    observations: records.count, seconds: trackerSeconds, learnerSeconds: learnerSeconds,
                    overheadFraction: learnerSeconds > 0 ? trackerSeconds / learnerSeconds : 0),
                parameterBias: aggregateParameterBias(records), theory: TheoryCheck.checks(bias),
                selection: records.last(where: { $0.selection != nil })?.selection,
                versionSpans: aggregateSpans(records))
        } catch let error as ReportError {
            throw error
        } catch let error as RunFolderError {
            throw .runFolder(error.description)
        } catch {
            throw .runFolder("\(path): \(error)")
        }
    }

    /// One step of `metrics.jsonl` as a curve point (NaN where the step has no learner part: a
    /// dropped batch).
    static func curve(_ step: StepMetrics) -> CurvePoint {
        let learner = step.learner
        return CurvePoint(
            step: step.step, reward: step.reward, accuracy: step.accuracy, exactKL: learner?.exactKL ?? .nan,
            logProbGap: learner?.logProbGap ?? .nan, entropy: learner?.entropy ?? .nan, lagMean: step.lagMean,
            learnerSeconds: learner?.seconds ?? .nan, ppoClipFraction: learner?.clipFraction ?? .nan,
            klClampFraction: learner?.kl?.anyClampFraction ?? .nan)
    }

    /// The KL form, β, lag settings, steps and seed of a run's configuration, as shown in reports.
    static func settings(_ config: RunConfig) -> [String: String] {
        let t = config.train
        return [
            "estimator": t.kl.estimator.rawValue, "placement": t.kl.placement.rawValue,
            "ratio": t.kl.ratio.rawValue, "ratio_grad": t.kl.ratioGradient.rawValue,
            "level": t.kl.level.rawValue, "correction": t.kl.correction.rawValue, "beta": "\(t.beta)",
            "inject_lag": "\(t.injectLag)", "max_staleness": "\(t.maxStaleness)", "train.steps": "\(t.steps)",
            "seed": "\(config.seed)", "tracker_every": "\(t.trackerEvery)",
        ]
    }

    static func aggregateBias(_ records: [TrackerRecord]) -> [BiasPoint] {
        struct Sum {
            var n = 0
            var rel = 0.0
            var cos = 0.0
            var fwd = 0.0
        }
        var sums: [String: [Int: Sum]] = [:]
        var order: [String] = []
        // Buckets where θ = π_ref exactly (the first step) have a zero target and no relative
        // error; leave them out unless nothing else was observed.
        let informative = records.flatMap(\.buckets).contains { $0.reverseKL > 0 }
        for record in records {
            for bucket in record.buckets where !informative || bucket.reverseKL > 0 {
                for b in bucket.implementations {
                    if sums[b.id] == nil { order.append(b.id) }
                    var s = sums[b.id, default: [:]][bucket.lag, default: Sum()]
                    let w = Double(bucket.positions)
                    s.n += bucket.positions
                    s.rel += w * b.relativeError
                    s.cos += w * b.cosine
                    s.fwd += w * b.forwardRelativeError
                    sums[b.id, default: [:]][bucket.lag] = s
                }
            }
        }
        var points: [BiasPoint] = []
        for id in order {
            for (lag, s) in sums[id]!.sorted(by: { $0.key < $1.key }) {
                let n = Double(max(s.n, 1))
                points.append(
                    BiasPoint(
                        implementation: id, lag: lag, positions: s.n, relativeError: s.rel / n,
                        cosine: s.cos / n, forwardRelativeError: s.fwd / n))
            }
        }
        return points
    }

    static func aggregateParameterBias(_ records: [TrackerRecord]) -> [ParameterBiasPoint] {
        var order: [String] = []
        var sums: [String: ParameterBiasPoint] = [:]
        for record in records {
            for b in record.parameterBias ?? [] {
                if sums[b.id] == nil {
                    order.append(b.id)
                    sums[b.id] = ParameterBiasPoint(
                        implementation: b.id, observations: 0, relativeError: 0, cosine: 0)
                }
                sums[b.id]!.observations += 1
                sums[b.id]!.relativeError += b.relativeError
                sums[b.id]!.cosine += b.cosine
            }
        }
        return order.map { id in
            var p = sums[id]!
            p.relativeError /= Double(p.observations)
            p.cosine /= Double(p.observations)
            return p
        }
    }

    static func aggregateImportance(_ records: [TrackerRecord]) -> [ImportancePoint] {
        var byLag: [Int: ImportancePoint] = [:]
        var prefix: [Int: (positions: Double, ess: Double, shift: Double)] = [:]
        for record in records {
            for b in record.buckets {
                var p =
                    byLag[b.lag]
                    ?? ImportancePoint(
                        lag: b.lag, positions: 0, ratioMean: 0, ratioMax: 0, essFraction: 0,
                        sequenceESSFraction: 0, behaviourKL: 0)
                let w = Double(b.positions)
                p.positions += b.positions
                p.ratioMean += w * b.tokenRatio.mean
                p.ratioMax = max(p.ratioMax, b.tokenRatio.max)
                p.essFraction += w * b.tokenRatio.essFraction
                p.sequenceESSFraction += w * b.sequenceRatio.essFraction
                p.behaviourKL += w * b.behaviourKL
                byLag[b.lag] = p
                if let ratio = b.prefixRatio, let shift = b.prefixShift {
                    var sums = prefix[b.lag] ?? (0, 0, 0)
                    sums.positions += w
                    sums.ess += w * ratio.essFraction
                    sums.shift += w * shift
                    prefix[b.lag] = sums
                }
            }
        }
        return byLag.values.sorted { $0.lag < $1.lag }.map { p in
            var q = p
            if let sums = prefix[p.lag], sums.positions > 0 {
                q.prefixESSFraction = sums.ess / sums.positions
                q.prefixShift = sums.shift / sums.positions
            }
            let n = Double(max(p.positions, 1))
            q.ratioMean /= n
            q.essFraction /= n
            q.sequenceESSFraction /= n
            q.behaviourKL /= n
            return q
        }
    }

    /// Sequences per version span over every record that has spans; nil if none has.
    static func aggregateSpans(_ records: [TrackerRecord]) -> [SpanCount]? {
        let recorded = records.compactMap(\.versionSpans)
        guard !recorded.isEmpty else { return nil }
        var bySpan: [Int: Int] = [:]
        for c in recorded.joined() { bySpan[c.span, default: 0] += c.sequences }
        return bySpan.keys.sorted().map { SpanCount(span: $0, sequences: bySpan[$0]!) }
    }

    static func aggregateLags(_ records: [TrackerRecord]) -> [LagCount] {
        var byLag: [Int: LagCount] = [:]
        for record in records {
            for c in record.lagHistogram {
                var total = byLag[c.lag] ?? LagCount(lag: c.lag, sequences: 0, tokens: 0)
                total.sequences += c.sequences
                total.tokens += c.tokens
                byLag[c.lag] = total
            }
        }
        return byLag.values.sorted { $0.lag < $1.lag }
    }
}
