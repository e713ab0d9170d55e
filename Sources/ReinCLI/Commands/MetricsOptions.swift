import ArgumentParser
import Logging
import Rein
import ReinMetricsServer
import ServiceLifecycle

/// `--metrics-bind HOST:PORT`: serve Prometheus metrics at `http://HOST:PORT/metrics` (the flag
/// over `runtime.metrics_bind`; off by default). Only the command line bootstraps swift-metrics
/// (``ReinMetricsServer/MetricsExposition/registry``), and only when an endpoint is asked for.
struct MetricsOptions: ParsableArguments {
    @Option(
        name: .long,
        help: """
            Serve Prometheus metrics at http://HOST:PORT/metrics (no authentication: bind 127.0.0.1; \
            port 0 picks a free one; none: off); default runtime.metrics_bind.
            """)
    var metricsBind: String?

    func validate() throws {
        guard let metricsBind else { return }
        do {
            _ = try MetricsBind(parsing: metricsBind)
        } catch {
            throw ValidationError("--metrics-bind: \(error.problem)")
        }
    }

    /// Where to serve: the flag over `runtime.metrics_bind`.
    func bind(_ config: RunConfig) throws -> MetricsBind {
        guard let metricsBind else { return config.runtime.metricsBind }
        do {
            return try MetricsBind(parsing: metricsBind)
        } catch {
            throw CLIError("--metrics-bind: \(error.problem)")
        }
    }

    /// Binds the endpoint, if one is asked for (port + `offset`), and says where it is.
    func start(_ config: RunConfig, offset: Int = 0, logger: Logger) async throws -> MetricsEndpoint? {
        guard case .address(let host, let port) = try bind(config).offset(by: offset) else { return nil }
        let endpoint = try await MetricsEndpoint.bind(host: host, port: port, logger: logger)
        emit("metrics on \(endpoint.url)")
        return endpoint
    }

    /// The endpoint as a member of a service group (none without one).
    static func services(_ endpoint: MetricsEndpoint?) -> [ServiceGroupConfiguration.ServiceConfiguration] {
        endpoint.map { [.init(service: $0)] } ?? []
    }

    /// `--metrics-bind` for child `index` of `rein launch` (0: the learner; i: worker i): the port
    /// plus `index`, so that every child has its own (port 0: each picks a free one).
    /// - Throws: ``CLIError`` when the last child's port would pass 65535.
    func childArguments(_ config: RunConfig, index: Int, children: Int) throws -> [String] {
        let bind = try bind(config)
        guard case .address(_, let port) = bind else { return [] }
        guard port + children - 1 <= 65535 || port == 0 else {
            throw CLIError("--metrics-bind: ports \(port)...\(port + children - 1) pass 65535")
        }
        return ["--metrics-bind", bind.offset(by: index).description]
    }
}
