import Foundation

/// The report's "Does the bias matter?" section (``OutcomeAnalysis``).
extension HTML {
    /// "mean [low, high]" of an interval, formatted by `f`.
    static func interval(_ i: Statistics.Interval?, _ f: (Double) -> String) -> String {
        guard let i, i.estimate.isFinite else { return "–" }
        return i.count < 2 ? f(i.estimate) : "\(f(i.estimate)) [\(f(i.low)), \(f(i.high))]"
    }

    static func formatter(_ m: OutcomeAnalysis.Metric) -> (Double) -> String {
        switch m {
        case .greedyAccuracy: return { String(format: "%.1f%%", 100 * $0) }
        default: return { number($0, digits: 3) }
        }
    }

    /// The difference formatter: accuracy differences in percentage points.
    static func differenceFormatter(_ m: OutcomeAnalysis.Metric) -> (Double) -> String {
        switch m {
        case .greedyAccuracy: return { String(format: "%+.1f pt", 100 * $0) }
        default: return { String(format: "%+.3g", $0) }
        }
    }

    /// The training-outcome verdicts of the seed paper's claims.
    static func claimsTable(_ claims: [OutcomeAnalysis.Claim]) -> String {
        guard !claims.isEmpty else {
            return
                "<p>No claim can be judged: each compares two of the forms no_kl, k1_loss, k2_loss and k3_loss at the smallest lag, with two seeds or more of each, and these runs lack them.</p>\n"
        }
        return table(
            header: ["the seed paper says (training outcome)", "measured: mean [95% CI]", "verdict"],
            rows: claims.map { [$0.claim, $0.measured, $0.verdict.rawValue] }, nameColumns: 2)
    }

    static func outcomeSection(_ analysis: OutcomeAnalysis?) -> String {
        var s = "<h2>Does the bias matter?</h2>\n"
        guard let a = analysis else {
            return s
                + "<p>No outcome experiment among these runs (`rein experiment outcome`: a KL form at a lag with two seeds or more).</p>\n"
                + figureOne()
        }
        let lags = Set(a.cells.map(\.lag)).sorted()
        let forms = a.cells.reduce(into: [String]()) { if !$0.contains($1.form) { $0.append($1.form) } }
        func cell(_ form: String, _ lag: Int) -> OutcomeAnalysis.Cell? {
            a.cells.first { $0.form == form && $0.lag == lag }
        }
        let seeds = Set(a.cells.flatMap(\.seeds)).sorted()
        s +=
            "<p class=\"note\">Each KL form trained at each injected lag with seeds \(seeds.map(String.init).joined(separator: ", ")), all from the same π_ref. Every number is the mean over seeds with its 95% percentile-bootstrap interval (10,000 resamples, seeded). Naive and corrected forms are compared seed by seed (paired differences). MDE is the smallest true difference the design detects with 80% power at the 5% level: (t<sub>n−1,0.975</sub> + t<sub>n−1,0.80</sub>)·SD/√n of the paired differences.</p>\n"
        if forms.contains("k2_loss_sgw_token") && forms.contains("k3_loss_w_token") {
            s +=
                "<p class=\"note\">k2_loss_sgw_token and k3_loss_w_token have the same per-token gradient, w·log(π_θ/π_ref)·∇log π_θ with w = π_θ/μ, so their runs coincide up to float rounding: equal rows for these two forms are a check that passed, not a copy.</p>\n"
        }
        for metric in OutcomeAnalysis.Metric.allCases {
            s += "<h3>\(escape(metric.title)) per form and lag</h3>\n"
            s += table(
                header: ["form"] + lags.map { "lag \($0)" },
                rows: forms.map { form in
                    [form]
                        + lags.map { interval(cell(form, $0)?.outcomes[metric.rawValue], formatter(metric)) }
                })
        }
        s += "<div class=\"charts\">"
        for metric in [OutcomeAnalysis.Metric.finalKL, .greedyAccuracy] {
            let series = lags.map { lag in
                (name: "lag \(lag)", values: forms.map { cell($0, lag)?.outcomes[metric.rawValue] })
            }
            let logY =
                metric == .finalKL
                && SVG.spansDecades(series.flatMap(\.values).compactMap { $0?.estimate })
            s += SVG.intervalChart(
                title: "\(metric.title): mean and 95% CI\(logY ? " (log scale)" : "")", yLabel: metric.title,
                categories: forms, series: series, scale: metric == .greedyAccuracy ? 100 : 1, logY: logY)
        }
        s += "</div>\n"
        s += "<h3>The tracker's bias of each form (pooled relative error to ∇KL(π_θ‖π_ref))</h3>\n"
        s += table(
            header: ["form"] + lags.flatMap { ["logit space, lag \($0)", "parameter space, lag \($0)"] },
            rows: forms.filter { $0 != "no_kl" }.map { form in
                [form]
                    + lags.flatMap { lag in
                        [
                            interval(cell(form, lag)?.trackerBias) { number($0, digits: 3) },
                            interval(cell(form, lag)?.parameterBias) { number($0, digits: 3) },
                        ]
                    }
            })
        s += "<h3>Naive against corrected, paired by seed</h3>\n"
        s +=
            "<p class=\"note\">naive − corrected per seed. “Detected” needs both the percentile-bootstrap and the paired t-interval to exclude 0 (with few seeds the bootstrap interval is too narrow: for 2 seeds it is the range of the two differences); otherwise the answer is “no detectable effect at this power”, and MDE says how large a true effect the design would have detected. At lag 0 each pair has the same gradient: differences there are float rounding.</p>\n"
        s += table(
            header: [
                "naive", "corrected", "lag", "outcome", "naive − corrected [95% bootstrap CI]",
                "paired t 95% CI", "SD",
                "MDE", "answer",
            ],
            rows: a.comparisons.map { c in
                let d = differenceFormatter(c.metric)
                return [
                    c.naive, c.corrected, "\(c.lag)", c.metric.title,
                    "\(d(c.difference.estimate)) [\(d(c.difference.low)), \(d(c.difference.high))]",
                    "[\(d(c.tInterval.low)), \(d(c.tInterval.high))]", number(c.differenceSD, digits: 3),
                    d(c.minimalDetectableEffect).replacingOccurrences(of: "+", with: ""),
                    c.detected ? "detected" : "no detectable effect at this power",
                ]
            }, nameColumns: 2)
        s += "<h3>Does the tracker's bias predict the outcome?</h3>\n"
        s +=
            "<p class=\"note\">One point per form × lag (no KL left out): the tracker's pooled bias against the outcome's gap to the same seed's run of \(escape(a.predictions.first?.baseline ?? "the baseline")), averaged over seeds. Least-squares line with its 95% confidence band (t with n − 2 degrees of freedom). The bias predicts the gap only if the slope's interval excludes 0 with and without the cell that moves the line most (largest Cook's distance).</p>\n"
        s += "<div class=\"charts\">"
        for p in a.predictions {
            s += SVG.scatterChart(
                title: "\(p.metric.title) gap vs tracker bias", xLabel: "tracker relative error (pooled)",
                yLabel: "gap to baseline",
                points: p.points.map { ("\($0.form) lag \($0.lag)", $0.bias, $0.gap) },
                fit: p.fit)
        }
        s += "</div>\n"
        s += table(
            header: [
                "outcome", "cells", "slope [95% CI]", "R²", "most influential cell (Cook's D)",
                "slope without it", "answer",
            ],
            rows: a.predictions.map { p in
                guard let fit = p.fit else {
                    return [p.metric.title, "\(p.points.count)", "–", "–", "–", "–", "too few cells"]
                }
                let f = { (v: Double) in String(format: "%.3g", v) }
                let slope = { (l: Statistics.LineFit?) in
                    l.map { "\(f($0.slope.estimate)) [\(f($0.slope.low)), \(f($0.slope.high))]" } ?? "–"
                }
                let cell = p.mostInfluential.map { "\($0.point.form) lag \($0.point.lag)" }
                let without = p.mostInfluential?.fitWithout?.slope
                let answer =
                    p.predicts
                    ? "the bias predicts the gap"
                    : !fit.slope.excludesZero
                        ? "no detectable relation at this power"
                        : without?.excludesZero == true
                            ? "carried by one cell (\(cell ?? "?")): without it the slope has the other sign"
                            : "carried by one cell (\(cell ?? "?")): not without it"
                return [
                    p.metric.title, "\(p.points.count)", slope(fit), f(fit.rSquared),
                    p.mostInfluential.map { "\(cell!) (\(f($0.cooksDistance)))" } ?? "–",
                    slope(p.mostInfluential?.fitWithout), answer,
                ]
            })
        s += "<h3>Exact KL(π_θ‖π_ref) during training (mean over seeds)</h3>\n<div class=\"charts\">"
        for lag in lags {
            let series = a.trajectories.filter { $0.lag == lag }.map { t in
                ChartSeries(name: t.form, points: t.points.map { ($0[0], $0[1]) })
            }
            // A log axis when the forms end decades apart (the early steps always start near 0).
            let logY = SVG.spansDecades(series.compactMap { $0.points.last?.y })
            let kls = series.flatMap(\.points).map(\.y).filter { $0 > 0 }
            s += SVG.lineChart(
                title: "exact KL at lag \(lag)\(logY ? " (log scale)" : "")", xLabel: "step",
                yLabel: "KL(π_θ‖π_ref)", series: series, logY: logY, floor: (kls.min() ?? 1e-12),
                width: 520, height: 280, markers: false)
        }
        s += "</div>\n"
        s += "<h3>The seed paper's training-outcome claims</h3>\n" + claimsTable(a.claims)
        return s + figureOne()
    }
}

extension SVG {
    /// Means with interval whiskers: one group per category, one marker per series; with `logY`, on
    /// a log axis (one form that diverges would otherwise flatten every other).
    static func intervalChart(
        title: String, yLabel: String, categories: [String],
        series: [(name: String, values: [Statistics.Interval?])],
        scale: Double = 1, logY: Bool = false, width requestedWidth: Double = 620, height: Double = 300
    ) -> String {
        let legend = legend(for: series.map { ChartSeries(name: $0.name, points: []) })
        let legendWidth = legend.width
        let width = requestedWidth + legendWidth - 190
        let (left, right, top, bottom) = (62.0, 14.0 + legendWidth, 28.0, 70.0)
        let plotW = width - left - right
        let plotH = height - top - bottom
        func f(_ v: Double) -> String { String(format: "%.1f", v) }
        let values = series.flatMap(\.values).compactMap { $0 }.flatMap { [$0.low * scale, $0.high * scale] }
        // On a log axis, values at or below 0 are drawn at a tenth of the smallest positive one.
        let floor = (values.filter { $0 > 0 }.min() ?? 1) / 10
        func ty(_ y: Double) -> Double { logY ? log10(max(y, floor)) : y }
        let all = values.map(ty).filter(\.isFinite)
        var svg = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" \
            viewBox="0 0 \(Int(width)) \(Int(height))" role="img" aria-label="\(HTML.escape(title))">
            <title>\(HTML.escape(title))</title>
            <text x="\(left)" y="18" class="chart-title">\(HTML.escape(title))</text>
            <rect x="\(f(left))" y="\(f(top))" width="\(f(plotW))" height="\(f(plotH))" class="frame"/>

            """
        guard var lo = all.min(), var hi = all.max() else {
            return svg + "<text x=\"\(left)\" y=\"\(top + plotH / 2)\" class=\"empty\">no data</text></svg>"
        }
        if lo == hi { (lo, hi) = (lo - 1, hi + 1) }
        let pad = (hi - lo) * 0.08
        (lo, hi) = (lo - pad, hi + pad)
        func py(_ y: Double) -> Double { top + (1 - (ty(y) - lo) / (hi - lo)) * plotH }
        let yTicks = logY ? Array(stride(from: lo.rounded(.up), through: hi, by: 1)) : ticks(lo, hi)
        for t in yTicks where t >= lo && t <= hi {
            let (value, y) = logY ? (pow(10, t), top + (1 - (t - lo) / (hi - lo)) * plotH) : (t, py(t))
            svg += gridLine(y: y, left: left, width: plotW, label: format(value))
        }
        let groupW = plotW / Double(max(categories.count, 1))
        for (c, category) in categories.enumerated() {
            let x0 = left + Double(c) * groupW
            for (s, entry) in series.enumerated() {
                guard c < entry.values.count, let v = entry.values[c], v.estimate.isFinite else { continue }
                let x = x0 + groupW * (Double(s) + 1) / Double(series.count + 1)
                svg +=
                    "<line x1=\"\(f(x))\" x2=\"\(f(x))\" y1=\"\(f(py(v.low * scale)))\" y2=\"\(f(py(v.high * scale)))\" stroke=\"\(color(s))\" stroke-width=\"1.6\"/>"
                svg +=
                    "<circle cx=\"\(f(x))\" cy=\"\(f(py(v.estimate * scale)))\" r=\"3\" fill=\"\(color(s))\"><title>\(HTML.escape("\(entry.name), \(category): \(format(v.estimate * scale)) [\(format(v.low * scale)), \(format(v.high * scale))]"))</title></circle>"
            }
            let lx = x0 + groupW / 2
            let ly = top + plotH + 12
            svg +=
                "<text x=\"\(f(lx))\" y=\"\(f(ly))\" class=\"tick\" text-anchor=\"end\" transform=\"rotate(-30 \(f(lx)) \(f(ly)))\">\(HTML.escape(category))</text>\n"
        }
        svg += yTitle(yLabel, top: top, height: plotH)
        let lx = width - legendWidth + 6
        for (i, s) in series.enumerated() {
            let y = top + 6 + Double(i) * 15
            svg += legendEntry(
                s.name, marker: "<circle cx=\"\(f(lx + 6))\" cy=\"\(f(y))\" r=\"3.5\" fill=\"\(color(i))\"/>",
                textX: lx + 18, y: y, limit: legend.characters)
        }
        return svg + "</svg>"
    }

    /// Labelled points with a least-squares line and its confidence band.
    static func scatterChart(
        title: String, xLabel: String, yLabel: String, points: [(label: String, x: Double, y: Double)],
        fit: Statistics.LineFit?, width: Double = 520, height: Double = 320
    ) -> String {
        let (left, right, top, bottom) = (62.0, 14.0, 28.0, 44.0)
        let plotW = width - left - right
        let plotH = height - top - bottom
        func f(_ v: Double) -> String { String(format: "%.1f", v) }
        let pts = points.filter { $0.x.isFinite && $0.y.isFinite }
        var svg = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" \
            viewBox="0 0 \(Int(width)) \(Int(height))" role="img" aria-label="\(HTML.escape(title))">
            <title>\(HTML.escape(title))</title>
            <text x="\(left)" y="18" class="chart-title">\(HTML.escape(title))</text>
            <rect x="\(f(left))" y="\(f(top))" width="\(f(plotW))" height="\(f(plotH))" class="frame"/>

            """
        guard var xLo = pts.map(\.x).min(), var xHi = pts.map(\.x).max() else {
            return svg + "<text x=\"\(left)\" y=\"\(top + plotH / 2)\" class=\"empty\">no data</text></svg>"
        }
        if xLo == xHi { (xLo, xHi) = (xLo - 0.5, xHi + 0.5) }
        let xs = stride(from: xLo, through: xHi, by: (xHi - xLo) / 40).map { $0 }
        let bands = fit.map { fit in xs.map { fit.band(at: $0) } } ?? []
        let ys = pts.map(\.y) + bands.flatMap { [$0.low, $0.high] }.filter(\.isFinite)
        var yLo = ys.min()!
        var yHi = ys.max()!
        if yLo == yHi { (yLo, yHi) = (yLo - 1, yHi + 1) }
        let pad = (yHi - yLo) * 0.06
        (yLo, yHi) = (yLo - pad, yHi + pad)
        func px(_ x: Double) -> Double { left + (x - xLo) / (xHi - xLo) * plotW }
        func py(_ y: Double) -> Double { top + (1 - (y - yLo) / (yHi - yLo)) * plotH }
        for t in ticks(yLo, yHi) where t >= yLo && t <= yHi {
            svg += gridLine(y: py(t), left: left, width: plotW, label: format(t))
        }
        for t in ticks(xLo, xHi) where t >= xLo && t <= xHi {
            svg +=
                "<text x=\"\(f(px(t)))\" y=\"\(f(top + plotH + 16))\" class=\"tick\" text-anchor=\"middle\">\(format(t))</text>\n"
        }
        if let fit, !bands.isEmpty, bands.allSatisfy({ $0.low.isFinite && $0.high.isFinite }) {
            let upper = zip(xs, bands).map { "\(f(px($0))),\(f(py($1.high)))" }
            let lower = zip(xs, bands).reversed().map { "\(f(px($0))),\(f(py($1.low)))" }
            svg +=
                "<polygon points=\"\((upper + lower).joined(separator: " "))\" fill=\"#1f77b4\" fill-opacity=\"0.15\" stroke=\"none\"/>\n"
            svg +=
                "<line x1=\"\(f(px(xLo)))\" x2=\"\(f(px(xHi)))\" y1=\"\(f(py(fit.band(at: xLo).estimate)))\" y2=\"\(f(py(fit.band(at: xHi).estimate)))\" stroke=\"#1f77b4\" stroke-width=\"1.8\"/>\n"
        }
        if yLo < 0 && yHi > 0 {
            svg +=
                "<line x1=\"\(f(left))\" x2=\"\(f(left + plotW))\" y1=\"\(f(py(0)))\" y2=\"\(f(py(0)))\" class=\"guide\"/>\n"
        }
        for p in pts {
            svg +=
                "<circle cx=\"\(f(px(p.x)))\" cy=\"\(f(py(p.y)))\" r=\"3.5\" fill=\"#d62728\"><title>\(HTML.escape("\(p.label): bias \(format(p.x)), gap \(format(p.y))"))</title></circle>"
        }
        svg +=
            "\n<text x=\"\(f(left + plotW / 2))\" y=\"\(f(height - 8))\" class=\"label\" text-anchor=\"middle\">\(HTML.escape(xLabel))</text>\n"
        svg += yTitle(yLabel, top: top, height: plotH)
        return svg + "</svg>"
    }
}
