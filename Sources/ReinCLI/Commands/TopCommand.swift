import ArgumentParser
import Foundation
import Rein
import ReinMetricsServer

/// `rein top`: a live terminal view of a learner (or worker) from its metrics endpoint.
struct TopCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "top",
        abstract: "Watch a running learner or worker live, from its metrics endpoint (--metrics-bind).",
        discussion: """
            Reads http://ADDRESS/metrics every --interval seconds and redraws: policy version, \
            batches, workers, busy fraction, tokens/s, step and broadcast time, IS-ratio ESS/N, the \
            sample ledger, the token-lag histogram, the staleness tracker's latest ratio tails, \
            KL(μ‖π_θ) and bias per lag, the workers' counts and the wire rejections. Ctrl-C quits. \
            While the endpoint cannot be reached it says so and keeps trying.
            """)

    @Argument(help: "HOST:PORT of the metrics endpoint; default runtime.metrics_bind of the config.")
    var address: String?

    @OptionGroup var options: ConfigOptions

    @Option(name: .long, help: "Seconds between two frames.")
    var interval = 2.0

    @Flag(name: .long, help: "Print one frame and exit (status 1 if the endpoint cannot be read).")
    var once = false

    func validate() throws {
        guard interval >= 0.1 else { throw ValidationError("--interval must be at least 0.1 s") }
    }

    /// The host and port to read: the argument, or the config's `runtime.metrics_bind` (a
    /// wildcard host read on loopback).
    func endpoint() throws -> (host: String, port: Int) {
        let bind: MetricsBind
        if let address {
            do { bind = try MetricsBind(parsing: address) } catch {
                throw CLIError("address: \(error.problem)")
            }
        } else {
            bind = try options.load().runtime.metricsBind
        }
        guard case .address(let host, let port) = bind, port != 0 else {
            throw CLIError("give the metrics endpoint as HOST:PORT (no runtime.metrics_bind with a port)")
        }
        return (["0.0.0.0", "::", "*"].contains(host) ? "127.0.0.1" : host, port)
    }

    func run() async throws {
        let (host, port) = try endpoint()
        let source = "http://\(host.contains(":") ? "[\(host)]" : host):\(port)/metrics"
        let clear = isatty(STDOUT_FILENO) != 0 && !once
        while true {
            var frame: [String]
            do {
                let text = try await MetricsClient.get(host: host, port: port)
                frame = TopDashboard.lines(MetricsPage(parsing: text), source: source)
            } catch {
                if once { throw CLIError("\(error)") }
                frame = ["rein top · \(source)", "", "waiting: \(error)"]
            }
            emit((clear ? "\u{1B}[H\u{1B}[2J" : "") + frame.joined(separator: "\n"))
            if once { return }
            try await Task.sleep(for: .milliseconds(Int(interval * 1000)))
        }
    }
}
