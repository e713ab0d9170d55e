import Foundation
import ReinTracker

extension RunReport {
    /// Reads a run folder: `metrics.jsonl`, `tracker.jsonl`, `eval-start.json`, `eval.json`,
    /// `config.yaml` (each optional, but one of the first two must exist).
    public static func load(path: String, name: String) throws(ReportError) -> RunReport {
        func file(_ n: String) -> String { (path as NSString).appendingPathComponent(n) }
        let fm = FileManager.default
        let hasMetrics = fm.fileExists(atPath: file("metrics.jsonl"))
        let hasTracker = fm.fileExists(atPath: file("tracker.jsonl"))
        guard hasMetrics || hasTracker else { throw .notARun(path) }
        let curves = hasMetrics ? try readCurves(file("metrics.jsonl")) : []
        var records: [TrackerRecord] = []
        if hasTracker {
            do {
                records = try StalenessTracker.readRecords(from: file("tracker.jsonl"))
            } catch {
                throw .unreadable(path: file("tracker.jsonl"), reason: "\(error)")
            }
        }
        let start = try readEval(file("eval-start.json"))
        let end = try readEval(file("eval.json"))
        let learnerSeconds = curves.reduce(0.0) { $0 + ($1.learnerSeconds.isFinite ? $1.learnerSeconds : 0) }
        let trackerSeconds = records.reduce(0.0) { $0 + $1.seconds }
        let bias = aggregateBias(records)
        return RunReport(
            name: name, path: path, settings: readSettings(file("config.yaml")), steps: curves.count,
            greedyStart: start?.greedy, greedyEnd: end?.greedy, sampledStart: start?.sampled,
            sampledEnd: end?.sampled, curves: curves, bias: bias,
            importance: aggregateImportance(records), lagHistogram: aggregateLags(records),
            tracker: TrackerCost(
                observations: records.count, seconds: trackerSeconds, learnerSeconds: learnerSeconds,
                overheadFraction: learnerSeconds > 0 ? trackerSeconds / learnerSeconds : 0),
            parameterBias: aggregateParameterBias(records), theory: TheoryCheck.checks(bias),
            selection: records.last(where: { $0.selection != nil })?.selection)
    }

    static func number(_ any: Any?) -> Double {
        if let n = any as? NSNumber { return n.doubleValue }
        if let s = any as? String { return Double(s) ?? .nan }
        return .nan
    }

    static func readCurves(_ path: String) throws(ReportError) -> [CurvePoint] {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw .unreadable(path: path, reason: "\(error)")
        }
        var points: [CurvePoint] = []
        for (i, line) in text.split(separator: "\n").enumerated() where !line.isEmpty {
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            else { throw .unreadable(path: path, reason: "line \(i + 1) is not a JSON object") }
            let learner = object["learner"] as? [String: Any]
            points.append(
                CurvePoint(
                    step: Int(number(object["step"]).isFinite ? number(object["step"]) : Double(i + 1)),
                    reward: number(object["reward"]), accuracy: number(object["accuracy"]),
                    exactKL: number(learner?["exact_kl"]), logProbGap: number(learner?["log_prob_gap"]),
                    entropy: number(learner?["entropy"]), lagMean: number(object["lag_mean"]),
                    learnerSeconds: number(learner?["seconds"]),
                    ppoClipFraction: number(learner?["clip_fraction"]),
                    klClampFraction: number((learner?["kl"] as? [String: Any])?["any_clamp_fraction"])))
        }
        return points
    }

    static func readEval(_ path: String) throws(ReportError) -> (greedy: Double, sampled: Double)? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw .unreadable(path: path, reason: "not a JSON object")
        }
        let greedy = number((object["greedy"] as? [String: Any])?["accuracy"])
        let sampled = number((object["sampled"] as? [String: Any])?["accuracy"])
        return (greedy, sampled)
    }

    /// A few `key: value` lines of `config.yaml` (the KL form, β, lag settings), without a YAML
    /// parser: the first occurrence of each key.
    static func readSettings(_ path: String) -> [String: String] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [:] }
        let wanted: Set = [
            "estimator", "placement", "ratio", "ratio_grad", "level", "correction", "beta", "inject_lag",
            "max_staleness", "steps", "seed", "tracker_every",
        ]
        var found: [String: String] = [:]
        var section = ""
        for raw in text.split(separator: "\n") {
            let indent = raw.prefix { $0 == " " }.count
            let line = raw.trimmingCharacters(in: .whitespaces)
            guard let colon = line.firstIndex(of: ":") else { continue }
            let key = String(line[..<colon])
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            if indent == 0 { section = key }
            let name = key == "steps" || key == "seed" ? "\(section).\(key)" : key
            if wanted.contains(key), !value.isEmpty, found[name] == nil,
                key != "steps" || section == "train", key != "seed" || indent == 0
            {
                found[name == "seed.seed" ? "seed" : name] = value
            }
        }
        return found
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
