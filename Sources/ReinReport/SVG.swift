import Foundation

/// One line of a chart.
struct ChartSeries {
    var name: String
    var points: [(x: Double, y: Double)]
    var dashed = false
}

/// Inline SVG charts (XML-well-formed, no scripts, no external resources).
enum SVG {
    static let palette = [
        "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
        "#bcbd22", "#17becf", "#393b79", "#ad494a", "#637939", "#843c39", "#7b4173", "#3182bd",
    ]

    static func color(_ i: Int) -> String { palette[i % palette.count] }

    /// A legend label of at most `limit` characters (the full name stays in the tooltip).
    static func short(_ name: String, limit: Int = 26) -> String {
        name.count <= limit ? name : String(name.prefix(limit - 1)) + "…"
    }

    /// Width of a legend column that fits the longest name (monospace, about 6.5 px a character),
    /// between 190 and 330 px; and how many characters it holds.
    static func legend(for series: [ChartSeries]) -> (width: Double, characters: Int) {
        let longest = Double(series.map(\.name.count).max() ?? 0)
        let width = min(330, max(190, 34 + 6.5 * longest))
        return (width, Int((width - 34) / 6.5))
    }

    /// One horizontal grid line at height `y` across a plot starting at `left`, with its tick
    /// `label` left of the plot.
    static func gridLine(y: Double, left: Double, width: Double, label: String) -> String {
        func f(_ v: Double) -> String { String(format: "%.1f", v) }
        return
            "<line x1=\"\(f(left))\" x2=\"\(f(left + width))\" y1=\"\(f(y))\" y2=\"\(f(y))\" class=\"grid\"/>"
            + "<text x=\"\(f(left - 6))\" y=\"\(f(y + 4))\" class=\"tick\" text-anchor=\"end\">\(label)</text>\n"
    }

    /// The y axis's title, rotated, beside a plot from `top` of `height`.
    static func yTitle(_ title: String, top: Double, height: Double) -> String {
        let y = String(format: "%.1f", top + height / 2)
        return
            "<text x=\"14\" y=\"\(y)\" class=\"label\" text-anchor=\"middle\" transform=\"rotate(-90 14 \(y))\">\(HTML.escape(title))</text>\n"
    }

    /// A legend entry: its `marker` (SVG), then `name` at `textX` (cut to `limit` characters; the
    /// whole name in the tooltip).
    static func legendEntry(_ name: String, marker: String, textX: Double, y: Double, limit: Int) -> String {
        let (x, y) = (String(format: "%.1f", textX), String(format: "%.1f", y + 4))
        return marker
            + "<text x=\"\(x)\" y=\"\(y)\" class=\"legend\">\(HTML.escape(short(name, limit: limit)))<title>\(HTML.escape(name))</title></text>\n"
    }

    /// Whether positive `values` span more than `ratio` (one outlier would flatten the rest on a
    /// linear axis); `false` for values at or below 0, which a log axis cannot show.
    static func spansDecades(_ values: [Double], ratio: Double = 20) -> Bool {
        let finite = values.filter(\.isFinite)
        guard let lo = finite.min(), let hi = finite.max(), lo > 0 else { return false }
        return hi / lo > ratio
    }

    /// Tick values covering `lo...hi` at a 1-2-5 step.
    static func ticks(_ lo: Double, _ hi: Double, count: Int = 5) -> [Double] {
        guard hi > lo, lo.isFinite, hi.isFinite else { return [lo] }
        let raw = (hi - lo) / Double(count)
        let magnitude = pow(10, floor(log10(raw)))
        let step = [1.0, 2, 5, 10].map { $0 * magnitude }.first { $0 >= raw } ?? 10 * magnitude
        var t = ceil(lo / step) * step
        var out: [Double] = []
        while t <= hi + step * 1e-9 {
            out.append(abs(t) < step * 1e-9 ? 0 : t)
            t += step
        }
        return out
    }

    static func format(_ v: Double) -> String {
        if v == 0 { return "0" }
        let a = abs(v)
        if a >= 1e4 || a < 1e-3 { return String(format: "%.0e", v) }
        if a >= 100 { return String(format: "%.0f", v) }
        if a >= 1 { return String(format: "%.3g", v) }
        return String(format: "%.2g", v)
    }

    /// A line chart with axes, ticks, a legend and optional vertical guides.
    ///
    /// - Parameters:
    ///   - logY: plot log10(y) (values ≤ `floor` are drawn at `floor`).
    ///   - yDomain: fixed y range (values outside are clipped).
    static func lineChart(
        title: String, xLabel: String, yLabel: String, series: [ChartSeries], logY: Bool = false,
        floor: Double = 1e-12, yDomain: ClosedRange<Double>? = nil, guides: [(x: Double, label: String)] = [],
        width requestedWidth: Double = 620, height requested: Double = 300, markers: Bool = true
    ) -> String {
        let legend = legend(for: series)
        let legendWidth = series.count > 1 ? legend.width : 0
        // The plot keeps the width it would have had next to a 190 px legend.
        let width = requestedWidth + max(0, legendWidth - 190)
        // Tall enough for the legend (15 px per entry).
        let height = max(requested, 28 + 16 + Double(series.count) * 15 + 44)
        let (left, right, top, bottom) = (62.0, 14.0 + legendWidth, 28.0, 44.0)
        let plotW = width - left - right
        let plotH = height - top - bottom
        func ty(_ y: Double) -> Double { logY ? log10(max(y, floor)) : y }
        let all = series.flatMap(\.points).filter { $0.x.isFinite && $0.y.isFinite }
        var svg = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" \
            viewBox="0 0 \(Int(width)) \(Int(height))" role="img" aria-label="\(HTML.escape(title))">
            <title>\(HTML.escape(title))</title>
            <text x="\(left)" y="18" class="chart-title">\(HTML.escape(title))</text>

            """
        guard !all.isEmpty else {
            svg += "<text x=\"\(left)\" y=\"\(top + plotH / 2)\" class=\"empty\">no data</text></svg>"
            return svg
        }
        var xLo = all.map(\.x).min()!
        var xHi = all.map(\.x).max()!
        if xLo == xHi { (xLo, xHi) = (xLo - 1, xHi + 1) }
        for g in guides {
            xLo = min(xLo, g.x)
            xHi = max(xHi, g.x)
        }
        var yLo = yDomain?.lowerBound ?? all.map { ty($0.y) }.min()!
        var yHi = yDomain?.upperBound ?? all.map { ty($0.y) }.max()!
        if logY {
            yLo = Foundation.floor(yLo)
            yHi = ceil(yHi)
        }
        if yLo == yHi {
            (yLo, yHi) = (
                yLo - (abs(yLo) > 0 ? abs(yLo) * 0.1 : 1), yHi + (abs(yHi) > 0 ? abs(yHi) * 0.1 : 1)
            )
        }
        if yDomain == nil && !logY {
            let pad = (yHi - yLo) * 0.05
            (yLo, yHi) = (yLo - pad, yHi + pad)
        }
        func px(_ x: Double) -> Double { left + (x - xLo) / (xHi - xLo) * plotW }
        func py(_ y: Double) -> Double { top + (1 - (min(max(y, yLo), yHi) - yLo) / (yHi - yLo)) * plotH }
        func f(_ v: Double) -> String { String(format: "%.1f", v) }
        svg +=
            "<rect x=\"\(f(left))\" y=\"\(f(top))\" width=\"\(f(plotW))\" height=\"\(f(plotH))\" class=\"frame\"/>\n"
        // Y ticks.
        let yTicks =
            logY
            ? stride(from: yLo, through: yHi, by: max(1, ((yHi - yLo) / 6).rounded(.up))).map { $0 }
            : ticks(yLo, yHi)
        for t in yTicks where t >= yLo - 1e-9 && t <= yHi + 1e-9 {
            let label = logY ? "1e\(Int(t))" : format(t)
            svg += gridLine(y: py(t), left: left, width: plotW, label: label)
        }
        let integerX = all.allSatisfy { $0.x == $0.x.rounded() }
        for t in ticks(xLo, xHi, count: 6) where !integerX || t == t.rounded() {
            svg +=
                "<line x1=\"\(f(px(t)))\" x2=\"\(f(px(t)))\" y1=\"\(f(top + plotH))\" y2=\"\(f(top + plotH + 4))\" class=\"axis\"/>"
            svg +=
                "<text x=\"\(f(px(t)))\" y=\"\(f(top + plotH + 16))\" class=\"tick\" text-anchor=\"middle\">\(format(t))</text>\n"
        }
        svg +=
            "<text x=\"\(f(left + plotW / 2))\" y=\"\(f(height - 8))\" class=\"label\" text-anchor=\"middle\">\(HTML.escape(xLabel))</text>\n"
        svg += yTitle(yLabel, top: top, height: plotH)
        for g in guides {
            svg +=
                "<line x1=\"\(f(px(g.x)))\" x2=\"\(f(px(g.x)))\" y1=\"\(f(top))\" y2=\"\(f(top + plotH))\" class=\"guide\"/>"
            svg +=
                "<text x=\"\(f(px(g.x) + 4))\" y=\"\(f(top + 12))\" class=\"tick\">\(HTML.escape(g.label))</text>\n"
        }
        for (i, s) in series.enumerated() {
            let pts = s.points.filter { $0.x.isFinite && $0.y.isFinite }
            guard !pts.isEmpty else { continue }
            let d = pts.map { "\(f(px($0.x))),\(f(py(ty($0.y))))" }.joined(separator: " ")
            let dash = s.dashed || i >= palette.count ? " stroke-dasharray=\"6 3\"" : ""
            svg +=
                "<polyline points=\"\(d)\" fill=\"none\" stroke=\"\(color(i))\" stroke-width=\"1.8\"\(dash)><title>\(HTML.escape(s.name))</title></polyline>\n"
            if markers && pts.count <= 40 {
                for p in pts {
                    svg +=
                        "<circle cx=\"\(f(px(p.x)))\" cy=\"\(f(py(ty(p.y))))\" r=\"2.5\" fill=\"\(color(i))\"/>"
                }
                svg += "\n"
            }
        }
        if legendWidth > 0 {
            let lx = width - legendWidth + 6
            for (i, s) in series.enumerated() {
                let y = top + 6 + Double(i) * 15
                let dash = s.dashed || i >= palette.count ? " stroke-dasharray=\"6 3\"" : ""
                svg += legendEntry(
                    s.name,
                    marker:
                        "<line x1=\"\(f(lx))\" x2=\"\(f(lx + 18))\" y1=\"\(f(y))\" y2=\"\(f(y))\" stroke=\"\(color(i))\" stroke-width=\"2.5\"\(dash)/>",
                    textX: lx + 24, y: y, limit: legend.characters)
            }
        }
        svg += "</svg>"
        return svg
    }

    /// A grouped bar chart: one group per category, one bar per series.
    static func barChart(
        title: String, xLabel: String, yLabel: String, categories: [String],
        series: [(name: String, values: [Double])],
        width requestedWidth: Double = 620, height requested: Double = 260
    ) -> String {
        let legend = legend(for: series.map { ChartSeries(name: $0.name, points: []) })
        let legendWidth = legend.width
        let width = requestedWidth + legendWidth - 190
        let height = max(requested, 28 + 16 + Double(series.count) * 15 + 44)
        let (left, right, top, bottom) = (62.0, 14.0 + legendWidth, 28.0, 44.0)
        let plotW = width - left - right
        let plotH = height - top - bottom
        func f(_ v: Double) -> String { String(format: "%.1f", v) }
        let yHi = max(series.flatMap(\.values).filter(\.isFinite).max() ?? 1, 1e-12) * 1.05
        var svg = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" \
            viewBox="0 0 \(Int(width)) \(Int(height))" role="img" aria-label="\(HTML.escape(title))">
            <title>\(HTML.escape(title))</title>
            <text x="\(left)" y="18" class="chart-title">\(HTML.escape(title))</text>
            <rect x="\(f(left))" y="\(f(top))" width="\(f(plotW))" height="\(f(plotH))" class="frame"/>

            """
        func py(_ y: Double) -> Double { top + (1 - y / yHi) * plotH }
        for t in ticks(0, yHi) {
            svg += gridLine(y: py(t), left: left, width: plotW, label: format(t))
        }
        let groupW = plotW / Double(max(categories.count, 1))
        let barW = groupW * 0.8 / Double(max(series.count, 1))
        for (c, category) in categories.enumerated() {
            let x0 = left + Double(c) * groupW + groupW * 0.1
            for (s, entry) in series.enumerated() where c < entry.values.count && entry.values[c].isFinite {
                let v = entry.values[c]
                svg +=
                    "<rect x=\"\(f(x0 + Double(s) * barW))\" y=\"\(f(py(v)))\" width=\"\(f(barW))\" height=\"\(f(top + plotH - py(v)))\" fill=\"\(color(s))\"><title>\(HTML.escape(entry.name)) at \(HTML.escape(category)): \(format(v))</title></rect>"
            }
            svg +=
                "<text x=\"\(f(x0 + groupW * 0.4))\" y=\"\(f(top + plotH + 16))\" class=\"tick\" text-anchor=\"middle\">\(HTML.escape(category))</text>\n"
        }
        svg +=
            "<text x=\"\(f(left + plotW / 2))\" y=\"\(f(height - 8))\" class=\"label\" text-anchor=\"middle\">\(HTML.escape(xLabel))</text>\n"
        svg += yTitle(yLabel, top: top, height: plotH)
        let lx = width - legendWidth + 6
        for (i, s) in series.enumerated() {
            let y = top + 6 + Double(i) * 15
            svg += legendEntry(
                s.name,
                marker:
                    "<rect x=\"\(f(lx))\" y=\"\(f(y - 5))\" width=\"12\" height=\"10\" fill=\"\(color(i))\"/>",
                textX: lx + 18, y: y, limit: legend.characters)
        }
        svg += "</svg>"
        return svg
    }
}
