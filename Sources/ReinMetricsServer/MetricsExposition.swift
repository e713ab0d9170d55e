import CoreMetrics
import Prometheus
import ReinMetrics

/// The process's Prometheus registry and the text it serves.
///
/// swift-metrics can be bootstrapped once per process: ``registry`` does it on first use (the
/// command line when `--metrics-bind` is given; a test process once for all its tests), with the
/// histogram buckets of ``ReinMetrics/ReinMetric``.
public enum MetricsExposition {
    /// The registry every metric of this process goes to; swift-metrics is bootstrapped to it the
    /// first time this is read.
    public static let registry: PrometheusCollectorRegistry = {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        for metric in ReinMetric.allCases where metric.kind == .histogram {
            factory.valueHistogramBuckets[metric.name] = metric.buckets
        }
        MetricsSystem.bootstrap(factory)
        return registry
    }()

    /// The content type of ``text(of:)``: the Prometheus text exposition format 0.0.4.
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    /// `registry` in the text exposition format, with a `# HELP` line before the `# TYPE` line of
    /// every metric ``ReinMetrics/ReinMetric`` defines.
    public static func text(of registry: PrometheusCollectorRegistry) -> String {
        withHelp(registry.emitToString())
    }

    /// `exposition` with `# HELP` lines added for Rein's metrics (swift-metrics carries no help
    /// text, so the registry has none).
    static func withHelp(_ exposition: String) -> String {
        var lines: [Substring] = []
        for line in exposition.split(separator: "\n") {
            if line.hasPrefix("# TYPE "),
                let name = line.dropFirst("# TYPE ".count).split(separator: " ").first,
                let metric = ReinMetric(name: String(name))
            {
                lines.append("# HELP \(name) \(metric.help)")
            }
            lines.append(line)
        }
        return lines.isEmpty ? "" : lines.joined(separator: "\n") + "\n"
    }
}
