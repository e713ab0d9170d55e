import Foundation
import Rein
import ReinTracker

/// The XHTML page of a report: one self-contained file, inline CSS and SVG, no scripts, no
/// network resources; well-formed XML.
enum HTML {
    static func escape(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.count)
        for c in s {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(c)
            }
        }
        return out
    }

    static func number(_ v: Double?, digits: Int = 4) -> String {
        guard let v, v.isFinite else { return "–" }
        if v != 0 && (abs(v) < 1e-3 || abs(v) >= 1e5) { return String(format: "%.2e", v) }
        return String(format: "%.\(digits)g", v)
    }

    static func percent(_ v: Double?) -> String {
        guard let v, v.isFinite else { return "–" }
        return String(format: "%.1f%%", 100 * v)
    }

    static let style = """
        body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px auto; max-width: 1200px; color: #222; line-height: 1.45; padding: 0 16px; }
        h1 { font-size: 1.6em; margin-bottom: 0.2em; }
        h2 { font-size: 1.25em; border-bottom: 1px solid #ddd; padding-bottom: 4px; margin-top: 2em; }
        h3 { font-size: 1.05em; margin-bottom: 0.3em; }
        table { border-collapse: collapse; margin: 8px 0 16px; font-size: 0.88em; }
        th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; }
        th { background: #f4f4f4; }
        td.name, th.name { text-align: left; font-family: ui-monospace, Menlo, monospace; }
        .note { color: #555; font-size: 0.92em; }
        .charts { display: flex; flex-wrap: wrap; gap: 12px; }
        svg { background: #fff; border: 1px solid #eee; }
        svg .chart-title { font-size: 13px; font-weight: 600; fill: #222; }
        svg .tick { font-size: 10px; fill: #555; }
        svg .label { font-size: 11px; fill: #333; }
        svg .legend { font-size: 10.5px; fill: #222; font-family: ui-monospace, Menlo, monospace; }
        svg .frame { fill: none; stroke: #bbb; }
        svg .grid { stroke: #eee; }
        svg .axis { stroke: #888; }
        svg .guide { stroke: #666; stroke-dasharray: 4 3; }
        svg .empty { font-size: 12px; fill: #999; }
        code { background: #f6f6f6; padding: 0 3px; }
        details { margin: 8px 0 16px; }
        summary { cursor: pointer; color: #225; font-weight: 600; }
        """

    static func table(header: [String], rows: [[String]], nameColumns: Int = 1) -> String {
        var s = "<table><thead><tr>"
        for (i, h) in header.enumerated() {
            s += i < nameColumns ? "<th class=\"name\">\(escape(h))</th>" : "<th>\(escape(h))</th>"
        }
        s += "</tr></thead><tbody>\n"
        for row in rows {
            s += "<tr>"
            for (i, cell) in row.enumerated() {
                s += i < nameColumns ? "<td class=\"name\">\(escape(cell))</td>" : "<td>\(escape(cell))</td>"
            }
            s += "</tr>\n"
        }
        return s + "</tbody></table>\n"
    }

    /// The whole page.
    static func page(_ document: ReportDocument, title: String) -> String {
        let runs = document.runs
        var body = "<h1>\(escape(title))</h1>\n"
        body +=
            "<p class=\"note\">\(runs.count) run(s); report schema v\(document.schemaVersion). Data: <code>report.json</code> and the CSV files beside this page.</p>\n"
        body += "<h2>Runs</h2>\n"
        let groups = seedGroups(runs)
        if groups.contains(where: { $0.runs.count > 1 }) {
            body +=
                "<p class=\"note\">Runs that differ only in their seed, averaged (± the standard deviation over seeds).</p>\n"
                + groupTable(groups)
        }
        if runs.count > 14 {
            body += "<details><summary>Every run (\(runs.count))</summary>\n" + runTable(runs) + "</details>\n"
        } else {
            body += runTable(runs)
        }
        body += "<h2>Closing note: what the tracker measured</h2>\n" + closingNote(runs)
        if let outcome = document.outcome {
            body +=
                "<p>The training outcome (section “Does the bias matter?”):</p>\n"
                + claimsTable(outcome.claims)
        }
        body += outcomeSection(document.outcome)
        body += biasSection(runs)
        body += curvesSection(runs)
        body += lagSection(runs)
        body += importanceSection(runs)
        body += selectionSection(runs)
        return """
            <?xml version="1.0" encoding="UTF-8"?>
            <!DOCTYPE html>
            <html xmlns="http://www.w3.org/1999/xhtml" lang="en">
            <head>
            <meta charset="UTF-8"/>
            <title>\(escape(title))</title>
            <style>
            \(style)
            </style>
            </head>
            <body>
            \(body)
            </body>
            </html>

            """
    }

    static func tail(_ values: [Double]) -> Double? {
        let finite = values.filter(\.isFinite)
        guard !finite.isEmpty else { return nil }
        let n = max(1, finite.count / 10)
        return finite.suffix(n).reduce(0, +) / Double(n)
    }

    static func describe(_ run: RunReport) -> String {
        let s = run.settings
        var parts: [String] = []
        let beta = s["beta"].flatMap(Double.init)
        if beta == 0 {
            parts.append("no KL (β = 0)")
        } else {
            if let e = s["estimator"] { parts.append("\(e) \(s["placement"] ?? "")") }
            if let r = s["ratio"], r != "none" { parts.append("ratio \(r) (\(s["ratio_grad"] ?? ""))") }
            if let c = s["correction"], c != "none" { parts.append("correction \(c)") }
            if let beta { parts.append("β \(number(beta, digits: 3))") } else if let b = s["beta"] { parts.append("β \(b)") }
        }
        if let l = s["inject_lag"] { parts.append("lag \(l)") }
        return parts.joined(separator: ", ")
    }

    /// Runs grouped by name without a trailing `-seedN`, in first-seen order.
    static func seedGroups(_ runs: [RunReport]) -> [(name: String, runs: [RunReport])] {
        var order: [String] = []
        var members: [String: [RunReport]] = [:]
        for r in runs {
            var name = r.name
            if let range = name.range(of: "-seed[0-9]+$", options: .regularExpression) {
                name.removeSubrange(range)
            }
            if members[name] == nil { order.append(name) }
            members[name, default: []].append(r)
        }
        return order.map { ($0, members[$0]!) }
    }

    /// "mean ± sd" of the finite values (just the value for one; "–" for none).
    static func meanSD(_ values: [Double?], format: (Double) -> String) -> String {
        let xs = values.compactMap { $0 }.filter(\.isFinite)
        guard !xs.isEmpty else { return "–" }
        let mean = xs.reduce(0, +) / Double(xs.count)
        guard xs.count > 1 else { return format(mean) }
        let sd = (xs.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(xs.count - 1)).squareRoot()
        return "\(format(mean)) ± \(format(sd))"
    }

    static func groupTable(_ groups: [(name: String, runs: [RunReport])]) -> String {
        table(
            header: [
                "runs (seeds averaged)", "settings", "seeds", "greedy end", "sampled end", "exact KL (last 10%)",
            ],
            rows: groups.map { g in
                [
                    g.name, describe(g.runs[0]), "\(g.runs.count)",
                    meanSD(g.runs.map(\.greedyEnd)) { percent($0) },
                    meanSD(g.runs.map(\.sampledEnd)) { percent($0) },
                    meanSD(g.runs.map { tail($0.curves.map(\.exactKL)) }) { number($0, digits: 3) },
                ]
            }, nameColumns: 2)
    }

    static func runTable(_ runs: [RunReport]) -> String {
        table(
            header: [
                "run", "settings", "steps", "greedy start", "greedy end", "sampled start", "sampled end",
                "exact KL (last 10%)", "entropy (last 10%)", "tracker obs.", "tracker time / learner time",
            ],
            rows: runs.map { r in
                [
                    r.name, describe(r), "\(r.steps)", percent(r.greedyStart), percent(r.greedyEnd),
                    percent(r.sampledStart), percent(r.sampledEnd), number(tail(r.curves.map(\.exactKL))),
                    number(tail(r.curves.map(\.entropy))), "\(r.tracker.observations)",
                    r.tracker.observations > 0 && r.tracker.learnerSeconds > 0
                        ? percent(r.tracker.overheadFraction) : "–",
                ]
            }, nameColumns: 2)
    }

    static func closingNote(_ runs: [RunReport]) -> String {
        var s =
            "<p class=\"note\">Relative L2 error of each form's exact expected logit-space gradient to ∇KL(π_θ‖π_ref), position-weighted over the tracker's observations. Theory: on-policy, k2-as-loss and k1-in-reward are unbiased and k3-as-loss follows the forward KL; off-policy the naive forms drift with the lag while sg(w)·k2 and w·k3 stay unbiased at the token level.</p>\n"
        let checked = runs.filter { !$0.theory.isEmpty }
        guard !checked.isEmpty else {
            return s + "<p>No tracker observations in these runs (tracker_every 0, or an old run).</p>\n"
        }
        // One row per prediction, over every run that could check it.
        var claims: [String] = []
        var verdicts: [String: [(run: String, check: TheoryCheck)]] = [:]
        for r in checked {
            for c in r.theory {
                if verdicts[c.claim] == nil { claims.append(c.claim) }
                verdicts[c.claim, default: []].append((r.name, c))
            }
        }
        s += table(
            header: ["theory says", "runs checked", "runs agreeing", "disagreeing runs"],
            rows: claims.map { claim in
                let all = verdicts[claim]!
                let against = all.filter { !$0.check.agrees }.map(\.run)
                return [
                    claim, "\(all.count)", "\(all.count - against.count)",
                    against.isEmpty ? "none" : against.joined(separator: ", "),
                ]
            })
        let watched = paperForms
        s += "<details><summary>Per-run numbers behind each verdict</summary>\n"
        for r in checked {
            let lags = Set(r.bias.map(\.lag)).sorted()
            var items: [String] = []
            for lag in lags.count > 1 ? [lags[0], lags[lags.count - 1]] : Array(lags.prefix(1)) {
                let here = r.bias.filter { $0.lag == lag && watched.contains($0.implementation) }
                let text = here.map { "\($0.implementation) \(number($0.relativeError, digits: 3))" }
                    .joined(separator: ", ")
                items.append("lag \(lag): \(text)")
            }
            s += "<p><b>\(escape(r.name))</b> — \(escape(items.joined(separator: "; ")))</p>\n"
            s += table(
                header: ["\(r.name): theory says", "measured", "agrees"],
                rows: r.theory.map { [$0.claim, $0.measured, $0.agrees ? "yes" : "NO"] },
                nameColumns: 2)
        }
        return s + "</details>\n"
    }

    /// The forms of the seed paper's comparison, the ones the bias charts draw.
    static let paperForms = [
        "k1_loss", "k2_loss", "k3_loss", "k1_reward", "k2_loss_sgw_token", "k3_loss_w_token",
        "k2_loss_coefclip_token",
    ]

    static func biasSection(_ runs: [RunReport]) -> String {
        var s = "<h2>Bias versus lag per implementation</h2>\n"
        s +=
            "<p class=\"note\">Exact, per visited prefix: Σ_y μ(y|s)·c(y)·∇_z log π_θ(y|s) versus ∇_z KL(π_θ(·|s)‖π_ref(·|s)). Log scale; values below 1e-12 (exactly unbiased up to rounding) are drawn at 1e-12. Charts draw the seed paper's forms; the tables list every form measured. Lines that coincide hide each other: k2 as loss and k1 in reward have the same expected gradient at every lag, and so do sg(w)·k2 and w·k3.</p>\n"
        let withBias = runs.filter { !$0.bias.isEmpty }
        var pooledRuns = withBias
        if withBias.count > 1 {
            // Every run pooled (position-weighted): the bias is a property of θ, μ and π_ref at the
            // visited prefixes, whatever form trained the run.
            pooledRuns = [pooled(withBias)] + withBias
        }
        for (index, r) in pooledRuns.enumerated() {
            if index == 1 { s += "<details><summary>Each run on its own</summary>\n" }
            let ids = r.bias.reduce(into: [String]()) {
                if !$0.contains($1.implementation) { $0.append($1.implementation) }
            }
            // The chart shows the paper's forms (when measured); the table lists every form.
            let charted = ids.filter { paperForms.contains($0) }
            let series = (charted.isEmpty ? ids : charted).map { id in
                ChartSeries(
                    name: id,
                    points: r.bias.filter { $0.implementation == id }.map {
                        (Double($0.lag), $0.relativeError)
                    })
            }
            s += "<h3>\(escape(r.name))</h3>\n<div class=\"charts\">"
            s += SVG.lineChart(
                title: "Relative error to ∇RKL — \(r.name)", xLabel: "token lag (versions)",
                yLabel: "relative L2 error", series: series, logY: true, width: 760, height: 330)
            s += "</div>\n"
            let lags = Set(r.bias.map(\.lag)).sorted()
            s += table(
                header: ["implementation"] + lags.flatMap { ["rel. err. lag \($0)", "cos lag \($0)"] },
                rows: ids.map { id in
                    [id]
                        + lags.flatMap { lag -> [String] in
                            guard let p = r.bias.first(where: { $0.implementation == id && $0.lag == lag })
                            else {
                                return ["–", "–"]
                            }
                            return [number(p.relativeError, digits: 3), number(p.cosine, digits: 4)]
                        }
                })
        }
        if pooledRuns.count > 1 { s += "</details>\n" }
        if runs.allSatisfy({ $0.bias.isEmpty }) { s += "<p>No tracker data.</p>\n" }
        for r in runs where !r.parameterBias.isEmpty {
            s += "<h3>\(escape(r.name)): parameter space</h3>\n"
            s +=
                "<p class=\"note\">Each form's expected logit-space gradient back-propagated through θ over the whole batch (all lags), against the back-propagated ∇KL(π_θ‖π_ref); mean over \(r.parameterBias[0].observations) observation(s).</p>\n"
            s += table(
                header: ["implementation", "relative error", "cosine"],
                rows: r.parameterBias.map {
                    [$0.implementation, number($0.relativeError, digits: 3), number($0.cosine, digits: 4)]
                })
        }
        return s
    }

    /// All runs' bias points pooled, position-weighted, as one pseudo-run named "all runs".
    static func pooled(_ runs: [RunReport]) -> RunReport {
        var sums: [String: [Int: (n: Int, rel: Double, cos: Double, fwd: Double)]] = [:]
        var order: [String] = []
        for r in runs {
            for p in r.bias {
                if sums[p.implementation] == nil { order.append(p.implementation) }
                var e = sums[p.implementation, default: [:]][p.lag] ?? (0, 0, 0, 0)
                let w = Double(p.positions)
                e = (
                    e.n + p.positions, e.rel + w * p.relativeError, e.cos + w * p.cosine,
                    e.fwd + w * p.forwardRelativeError
                )
                sums[p.implementation, default: [:]][p.lag] = e
            }
        }
        var bias: [BiasPoint] = []
        for id in order {
            for (lag, e) in sums[id]!.sorted(by: { $0.key < $1.key }) {
                let n = Double(max(e.n, 1))
                bias.append(
                    BiasPoint(
                        implementation: id, lag: lag, positions: e.n, relativeError: e.rel / n,
                        cosine: e.cos / n,
                        forwardRelativeError: e.fwd / n))
            }
        }
        var all = runs[0]
        all.name = "all \(runs.count) runs pooled"
        all.bias = bias
        return all
    }

    static func curvesSection(_ runs: [RunReport]) -> String {
        var s = "<h2>Training curves</h2>\n<div class=\"charts\">\n"
        let metrics: [(String, String, KeyPath<CurvePoint, Double>)] = [
            ("Reward", "mean reward", \.reward), ("Accuracy (batch)", "fraction correct", \.accuracy),
            ("Exact KL(π_θ‖π_ref)", "nats / position", \.exactKL),
            ("Log-prob gap log π_θ − log π_ref", "nats / token", \.logProbGap),
            ("Entropy of π_θ", "nats / position", \.entropy),
            ("PPO clip fraction", "fraction of tokens", \.ppoClipFraction),
            ("KL clip / clamp fraction", "fraction of terms", \.klClampFraction),
        ]
        for (title, unit, key) in metrics {
            let series = runs.map { r in
                ChartSeries(
                    name: r.name, points: smooth(r.curves.map { (Double($0.step), $0[keyPath: key]) }))
            }
            s += SVG.lineChart(
                title: title, xLabel: "step", yLabel: unit, series: series, width: 520, height: 270,
                markers: false)
            s += "\n"
        }
        return s
            + "</div>\n<p class=\"note\">Curves longer than 200 steps are shown as a moving average over 1% of the steps.</p>\n"
    }

    static func smooth(_ points: [(Double, Double)]) -> [(x: Double, y: Double)] {
        guard points.count > 200 else { return points.map { (x: $0.0, y: $0.1) } }
        let w = max(2, points.count / 100)
        var out: [(x: Double, y: Double)] = []
        for i in stride(from: 0, to: points.count, by: max(1, w / 2)) {
            let window = points[max(0, i - w + 1)...i].map(\.1).filter(\.isFinite)
            guard !window.isEmpty else { continue }
            out.append((points[i].0, window.reduce(0, +) / Double(window.count)))
        }
        return out
    }

    static func lagSection(_ runs: [RunReport]) -> String {
        var s = "<h2>Lag histogram</h2>\n"
        let lags = Set(runs.flatMap { $0.lagHistogram.map(\.lag) }).sorted()
        guard !lags.isEmpty else { return s + "<p>No tracker data.</p>\n" }
        func fractions(_ r: RunReport, _ key: KeyPath<LagCount, Int>) -> [Double] {
            let total = Double(max(1, r.lagHistogram.reduce(0) { $0 + $1[keyPath: key] }))
            return lags.map { lag in
                Double(r.lagHistogram.first { $0.lag == lag }?[keyPath: key] ?? 0) / total
            }
        }
        s += "<div class=\"charts\">"
        s += SVG.barChart(
            title: "Token-weighted lag", xLabel: "lag", yLabel: "fraction of tokens",
            categories: lags.map(String.init),
            series: runs.map { ($0.name, fractions($0, \.tokens)) }, width: 520)
        s += SVG.barChart(
            title: "Sequence-weighted lag (oldest token)", xLabel: "lag", yLabel: "fraction of sequences",
            categories: lags.map(String.init), series: runs.map { ($0.name, fractions($0, \.sequences)) },
            width: 520)
        s += "</div>\n"
        // Partial rollouts: how many observed sequences moved to newer weights mid-way.
        for r in runs {
            guard let spans = r.versionSpans, spans.contains(where: { $0.span > 0 }) else { continue }
            let counts = spans.map { "span \($0.span): \($0.sequences)" }.joined(separator: ", ")
            s += "<p>\(escape(r.name)): sequences by version span (partial rollouts) — \(counts).</p>\n"
        }
        s += "<h3>Lag over time</h3>\n<div class=\"charts\">"
        s += SVG.lineChart(
            title: "Mean lag per step", xLabel: "step", yLabel: "versions",
            series: runs.map { r in
                ChartSeries(name: r.name, points: smooth(r.curves.map { (Double($0.step), $0.lagMean) }))
            },
            width: 620, height: 240, markers: false)
        return s + "</div>\n"
    }

    static func importanceSection(_ runs: [RunReport]) -> String {
        var s = "<h2>Importance sampling diagnostics (ESS)</h2>\n"
        guard runs.contains(where: { !$0.importance.isEmpty }) else { return s + "<p>No tracker data.</p>\n" }
        var series: [ChartSeries] = []
        for r in runs where !r.importance.isEmpty {
            series.append(
                ChartSeries(
                    name: "\(r.name) token", points: r.importance.map { (Double($0.lag), $0.essFraction) }))
            series.append(
                ChartSeries(
                    name: "\(r.name) sequence",
                    points: r.importance.map { (Double($0.lag), $0.sequenceESSFraction) },
                    dashed: true))
        }
        s +=
            "<div class=\"charts\">"
            + SVG.lineChart(
                title: "ESS / N of the token and sequence ratios", xLabel: "lag", yLabel: "ESS / N",
                series: series,
                yDomain: 0...1.05, width: 620, height: 280) + "</div>\n"
        for r in runs where !r.importance.isEmpty {
            s += "<h3>\(escape(r.name))</h3>\n"
            s += table(
                header: [
                    "lag", "positions", "ratio mean", "ratio max", "ESS/N token", "ESS/N sequence",
                    "ESS/N prefix", "prefix shift", "KL(μ‖π_θ) / position",
                ],
                rows: r.importance.map {
                    [
                        "\($0.lag)", "\($0.positions)", number($0.ratioMean), number($0.ratioMax),
                        number($0.essFraction), number($0.sequenceESSFraction),
                        number($0.prefixESSFraction), number($0.prefixShift),
                        number($0.behaviourKL),
                    ]
                })
        }
        return s
    }

    static func selectionSection(_ runs: [RunReport]) -> String {
        var s = "<h2>Selection skew of the staleness policy</h2>\n"
        let rows = runs.flatMap { r -> [[String]] in
            guard let sel = r.selection else { return [] }
            return [("trained", sel.trained), ("dropped", sel.dropped)].map { side, x in
                [
                    r.name, side, "\(x.count)", x.count > 0 ? number(x.lengthMean) : "–", "\(x.lengthP50)",
                    "\(x.lengthP90)", x.count > 0 ? number(x.rewardMean) : "–",
                    x.count > 0 ? percent(x.rewardPositiveFraction) : "–",
                ]
            }
        }
        guard !rows.isEmpty else { return s + "<p>No selection data (runs without the tracker).</p>\n" }
        s +=
            "<p class=\"note\">Samples dropped for staleness (lag above max_staleness) versus trained, since the start of each run.</p>\n"
        return s
            + table(
                header: [
                    "run", "side", "samples", "length mean", "length p50", "length p90", "reward mean",
                    "reward > 0",
                ],
                rows: rows, nameColumns: 2)
    }

    /// The seed paper's Figure 1: the score-function coefficient c of each form against
    /// log π_θ(y|x), with π_ref(y|x) = 0.25.
    static func figureOne() -> String {
        let ref = 0.25
        let xs = stride(from: -4.0, through: -0.01, by: 0.05).map { $0 }
        let series = [
            ChartSeries(name: "k1 in reward / k2 as loss", points: xs.map { ($0, $0 - log(ref)) }),
            // Points below the plotted range are left out, so the curve leaves the chart instead of
            // running along its edge (which would read as a saturating coefficient).
            ChartSeries(
                name: "k3 as loss: 1 − π_ref/π_θ",
                points: xs.map { ($0, 1 - ref / exp($0)) }.filter { $0.1 >= -4 }),
            ChartSeries(name: "k1 as loss: 1", points: xs.map { ($0, 1) }),
        ]
        var s = "<h2>Coefficient curves (the seed paper's Figure 1)</h2>\n"
        s +=
            "<p class=\"note\">The scalar c multiplying ∇_θ log π_θ(y|x) on-policy, against log π_θ(y|x), with π_ref(y|x) = 0.25 (dashed line). k3 as loss diverges as π_θ → 0 (it leaves the chart below −4). The second chart shows the same coefficients against the ratio δ = π_ref/π_θ: k3's 1 − δ is the first-order Taylor surrogate of −log δ at δ = 1, loose for small δ (π_θ ≫ π_ref) and unbounded for large δ (π_θ ≪ π_ref). Off-policy the corrected forms multiply c by the token ratio w = π_θ/μ.</p>\n"
        s +=
            "<div class=\"charts\">"
            + SVG.lineChart(
                title: "Gradient coefficient c vs log π_θ (π_ref = 0.25)", xLabel: "log π_θ(y|x)",
                yLabel: "c",
                series: series, yDomain: -4...2.5, guides: [(log(ref), "log π_ref")], width: 760, height: 320,
                markers: false)
        // The same coefficients against the ratio δ = π_ref/π_θ that k3 expands around (δ = 1).
        let deltas = stride(from: 0.05, through: 4.0, by: 0.05).map { $0 }
        s += SVG.lineChart(
            title: "Gradient coefficient c vs the ratio δ = π_ref/π_θ", xLabel: "δ = π_ref(y|x) / π_θ(y|x)",
            yLabel: "c",
            series: [
                ChartSeries(name: "k1 in reward / k2 as loss: −log δ", points: deltas.map { ($0, -log($0)) }),
                ChartSeries(name: "k3 as loss: 1 − δ", points: deltas.map { ($0, 1 - $0) }),
                ChartSeries(name: "k1 as loss: 1", points: deltas.map { ($0, 1) }),
            ], yDomain: -3...3, guides: [(1, "δ = 1 (π_θ = π_ref)")], width: 760, height: 320, markers: false)
        return s + "</div>\n"
    }
}
