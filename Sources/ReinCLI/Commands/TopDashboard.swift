import Foundation
import Rein
import ReinMetrics

/// The samples of a Prometheus text page (what `rein top` reads): `name{labels} value` lines;
/// comments and lines that do not parse are skipped.
struct MetricsPage {
    struct Sample: Equatable {
        var name: String
        var labels: [String: String]
        var value: Double
    }

    var samples: [Sample] = []

    init(parsing text: String) {
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            if let sample = Self.sample(line) { samples.append(sample) }
        }
    }

    private static func sample(_ line: Substring) -> Sample? {
        var labels: [String: String] = [:]
        let name: Substring
        var rest: Substring
        if let brace = line.firstIndex(of: "{"), let close = line.lastIndex(of: "}"), brace < close {
            name = line[..<brace]
            var body = line[line.index(after: brace)..<close]
            while let eq = body.firstIndex(of: "=") {
                let key = body[..<eq].trimmingCharacters(in: CharacterSet(charactersIn: ", "))
                body = body[body.index(after: eq)...]
                guard body.first == "\"" else { return nil }
                body = body.dropFirst()
                var value = ""
                var escaped = false
                while let c = body.first {
                    body = body.dropFirst()
                    if escaped {
                        value.append(c == "n" ? "\n" : c)
                        escaped = false
                    } else if c == "\\" {
                        escaped = true
                    } else if c == "\"" {
                        break
                    } else {
                        value.append(c)
                    }
                }
                labels[key] = value
            }
            rest = line[line.index(after: close)...]
        } else {
            guard let space = line.firstIndex(of: " ") else { return nil }
            name = line[..<space]
            rest = line[space...]
        }
        let fields = rest.split(separator: " ")
        guard !name.isEmpty, let first = fields.first, let value = Double(first) else { return nil }
        return Sample(name: String(name), labels: labels, value: value)
    }

    /// The value of `metric`'s sample (`suffix`: `_sum`, `_count`, `_bucket` of a histogram) with
    /// exactly `labels`.
    func value(_ metric: ReinMetric, _ suffix: String = "", labels: [String: String] = [:]) -> Double? {
        samples.first { $0.name == metric.name + suffix && $0.labels == labels }?.value
    }

    /// Every sample of `metric` (with `suffix`).
    func series(_ metric: ReinMetric, _ suffix: String = "") -> [Sample] {
        samples.filter { $0.name == metric.name + suffix }
    }

    /// A histogram's mean (`_sum` / `_count`), if it has observations.
    func mean(_ metric: ReinMetric) -> Double? {
        guard let count = value(metric, "_count"), count > 0, let sum = value(metric, "_sum") else {
            return nil
        }
        return sum / count
    }

    /// A histogram's observations per bucket: (label, count), buckets in order, empty ones left out.
    func buckets(_ metric: ReinMetric) -> [(label: String, count: Double)] {
        let cumulative = series(metric, "_bucket").compactMap { sample in
            sample.labels["le"].flatMap { $0 == "+Inf" ? Double.infinity : Double($0) }.map {
                ($0, sample.value)
            }
        }.sorted { $0.0 < $1.0 }
        var result: [(String, Double)] = []
        var previous: (bound: Double, count: Double)?
        for (bound, count) in cumulative {
            let inBucket = count - (previous?.count ?? 0)
            let label: String
            if bound.isInfinite {
                label = "> \(Self.number(previous?.bound ?? 0))"
            } else if let low = previous?.bound, bound - low > 1 {
                label = "\(Self.number(low + 1))–\(Self.number(bound))"
            } else {
                label = Self.number(bound)
            }
            if inBucket > 0 { result.append((label, inBucket)) }
            previous = (bound, count)
        }
        return result
    }

    static func number(_ x: Double) -> String {
        x == x.rounded() && abs(x) < 1e15 ? String(Int(x)) : String(format: "%.3g", x)
    }
}

/// The frame `rein top` draws from a metrics page (pure: the tests check it).
enum TopDashboard {
    static func lines(_ page: MetricsPage, source: String, at time: Date = Date()) -> [String] {
        var out = [
            "rein top · \(source) · \(time.formatted(.iso8601.time(includingFractionalSeconds: false)))", "",
        ]
        func n(_ metric: ReinMetric, labels: [String: String] = [:]) -> String {
            page.value(metric, labels: labels).map(MetricsPage.number) ?? "–"
        }
        func ms(_ seconds: Double?) -> String { seconds.map { String(format: "%.1f ms", $0 * 1000) } ?? "–" }
        if page.value(.policyVersion) != nil || page.value(.samplesProduced) != nil {
            let busy = page.value(.learnerBusyFraction).map { percent($0) } ?? "–"
            let rate = page.value(.tokensPerSecond).map { String(format: "%.0f", $0) } ?? "–"
            out.append(
                "learner  version \(n(.policyVersion)) · batches \(n(.batchesConsumed)) · workers "
                    + "\(n(.workersConnected)) · busy \(busy) · \(rate) tokens/s")
            let ess = page.value(.tokenRatioESSFraction).map { String(format: "%.4f", $0) } ?? "–"
            out.append(
                "         step \(ms(page.mean(.learnerStepSeconds))) · broadcast "
                    + "\(ms(page.mean(.broadcastSeconds))) (means) · IS ratio ESS/N \(ess)")
            let dropped = page.series(.samplesDropped).filter { $0.value > 0 }
                .map { "\($0.labels["reason"] ?? "?") \(MetricsPage.number($0.value))" }
            let droppedTotal = page.series(.samplesDropped).reduce(0) { $0 + $1.value }
            let refused = page.series(.samplesRefused).filter { $0.value > 0 }
                .map { "\($0.labels["reason"] ?? "?") \(MetricsPage.number($0.value))" }
            out.append(
                "ledger   produced \(n(.samplesProduced)) = trained \(n(.samplesTrained)) + dropped "
                    + MetricsPage.number(droppedTotal)
                    + (dropped.isEmpty ? "" : " (\(dropped.joined(separator: ", ")))")
                    + " + in flight \(n(.samplesInFlight)) + lost \(n(.samplesLost))"
                    + (refused.isEmpty ? "" : "; refused: \(refused.joined(separator: ", "))"))
            let lags = page.buckets(.tokenLag)
            let total = lags.reduce(0) { $0 + $1.count }
            if total > 0 {
                out.append("lag      tokens by lag (versions)")
                for (label, count) in lags {
                    let share = count / total
                    let bar = String(repeating: "█", count: Int((share * 40).rounded()))
                    out.append(
                        "  " + label.padding(toLength: 7, withPad: " ", startingAt: 0)
                            + (percent(share)).padding(toLength: 7, withPad: " ", startingAt: 0) + bar)
                }
            }
            let tracked = page.series(.trackerRatioESSFraction).compactMap { $0.labels["lag"] }
                .compactMap(Int.init).sorted()
            if !tracked.isEmpty {
                let form = page.series(.trackerKLBias).first?.labels["form"]
                out.append(
                    "tracker  latest observation at step \(n(.trackerStep))"
                        + (form.map { " · form \($0)" } ?? ""))
                out.append("  lag   ESS/N    p1       p99      KL(μ‖π_θ)  bias")
                for lag in tracked {
                    let l = ["lag": String(lag)]
                    func f(_ metric: ReinMetric, _ labels: [String: String]) -> String {
                        (page.value(metric, labels: labels).map { String(format: "%.4g", $0) } ?? "–")
                            .padding(toLength: 9, withPad: " ", startingAt: 0)
                    }
                    let bias = form.map { f(.trackerKLBias, ["lag": String(lag), "form": $0]) } ?? "–"
                    out.append(
                        "  " + String(lag).padding(toLength: 6, withPad: " ", startingAt: 0)
                            + f(.trackerRatioESSFraction, l) + f(.trackerRatioP1, l) + f(.trackerRatioP99, l)
                            + f(.trackerBehaviourKL, l).padding(toLength: 11, withPad: " ", startingAt: 0)
                            + bias)
                }
            }
        }
        if page.value(.workerBatches) != nil {
            out.append(
                "workers  batches \(n(.workerBatches)) · samples \(n(.workerSamples)) · tokens "
                    + "\(n(.workerTokens)) · version \(n(.workerWeightsVersion)) · sampling "
                    + "\(ms(page.mean(.workerSampleSeconds))) per batch (mean)")
        }
        let rejections = page.series(.wireRejections).filter { $0.value > 0 }
            .map { "\($0.labels["reason"] ?? "?") \(MetricsPage.number($0.value))" }
        out.append("wire     rejected: " + (rejections.isEmpty ? "none" : rejections.joined(separator: ", ")))
        return out
    }
}
