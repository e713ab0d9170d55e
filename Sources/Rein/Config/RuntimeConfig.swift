/// The `runtime:` block: where a multi-process run's learner listens, where its workers connect,
/// the liveness settings of every node, and how a distributed run paces its workers. `rein learner` /
/// `rein worker` flags override the endpoints and timeouts.
///
/// Endpoints are ZeroMQ addresses: `tcp://HOST:PORT` (HOST may be `0.0.0.0` or `*` to bind every
/// interface; PORT may be `*` for any free port when binding) or `ipc://PATH`.
public struct RuntimeConfig: Codable, Sendable, Hashable {
    /// The value of `broadcast_bind` / `samples_bind` that derives the endpoint from `learner_bind`
    /// (same host, any free port for tcp; `PATH.weights` / `PATH.samples` for ipc).
    public static let automatic = "auto"

    /// Where `rein learner` listens for workers (its actor system's ROUTER socket).
    public var learnerBind = "tcp://0.0.0.0:7070"
    /// Where the learner publishes weights (PUB), or `auto`.
    public var broadcastBind = RuntimeConfig.automatic
    /// Where the learner pulls sample batches (PULL), or `auto`.
    public var samplesBind = RuntimeConfig.automatic
    /// The learner endpoint `rein worker` connects to (a host name or address, never `0.0.0.0`).
    public var learner = "tcp://127.0.0.1:7070"
    /// Seconds a silent peer is given before it is declared dead (its batch counted lost).
    public var heartbeatTimeout = 1.5
    /// The most heartbeats a second a node sends (and asks its peers to send it): a node with
    /// more peers than that allows at the base interval (250 ms) heartbeats them less often, and
    /// gives them the timeout plus what its interval grew before declaring them dead. A learner
    /// with 256 workers heartbeats every 1 s at the default 256.
    public var heartbeatsPerSecond = 256
    /// Seconds a remote call may wait for its reply.
    public var callTimeout = 30.0
    /// How far ahead of the learner batches are handed out in a distributed run (`rein train
    /// --workers`, `rein launch`, `rein learner`): `bound` (up to `train.max_staleness`) or `auto`
    /// (min-lag pacing: only as far as keeps the learner busy; see ``Pacer``). `auto` by default:
    /// `rein bench runtime --parts pacing` measured it as fast as `bound` (0.99–1.10× samples/s)
    /// with the lag trained down from ~14.5 to ~1.2 versions at the default `max_staleness` 16.
    public var pacing = PacingMode.auto
    /// `auto` pacing's margin: batches of lookahead added to sampling latency / learner step before
    /// rounding up (0 = the least lag, at the risk of the learner waiting on a slow batch).
    public var pacingMargin = Pacer.defaultMargin
    /// How many workers must have joined before the learner hands out the first batch (1: start
    /// with the first worker). A run that needs every worker to contribute, such as a test of a
    /// mixed fleet, sets it to the fleet's size; once reached, the run never waits for it again.
    public var minWorkers = 1
    /// Where `rein learner` / `rein worker` serve Prometheus metrics (`--metrics-bind`); off by default.
    public var metricsBind = MetricsBind.none
    /// The most workers one learner serves: each bound socket of the learner (its ROUTER, the
    /// sample PULL, the weight PUB) keeps this many connections plus
    /// ``operatorConnections`` (further ones are refused and counted), and `rein learner` raises
    /// its open-file limit to fit them.
    public var maxWorkers = 64
    /// How new weights reach the workers: `broadcast` (every version to every subscriber),
    /// `orders` (a work order carries its version's weights when the worker holds another) or
    /// `auto` (broadcast for partial rollouts or a few workers, orders beyond; see
    /// ``WeightDelivery``).
    public var weightDelivery = WeightDeliveryMode.auto

    /// Connections a learner's bound sockets keep beyond ``maxWorkers`` (`rein status`, `rein
    /// top`, reconnecting workers whose old connection is still being torn down).
    public static let operatorConnections = 16

    public init() {}

    enum CodingKeys: String, CodingKey {
        case learnerBind = "learner_bind"
        case broadcastBind = "broadcast_bind"
        case samplesBind = "samples_bind"
        case learner
        case heartbeatTimeout = "heartbeat_timeout"
        case heartbeatsPerSecond = "heartbeats_per_second"
        case callTimeout = "call_timeout"
        case pacing
        case pacingMargin = "pacing_margin"
        case minWorkers = "min_workers"
        case metricsBind = "metrics_bind"
        case maxWorkers = "max_workers"
        case weightDelivery = "weight_delivery"
    }

    public func validate() throws(ConfigError) {
        if let problem = Self.problem(bindEndpoint: learnerBind) {
            throw ConfigError(path: "runtime.learner_bind", problem)
        }
        for (value, path) in [
            (broadcastBind, "runtime.broadcast_bind"), (samplesBind, "runtime.samples_bind"),
        ]
        where value != Self.automatic {
            if let problem = Self.problem(bindEndpoint: value) {
                throw ConfigError(path: path, "\(problem), or `\(Self.automatic)`")
            }
        }
        if let problem = Self.problem(connectEndpoint: learner) {
            throw ConfigError(path: "runtime.learner", problem)
        }
        guard heartbeatTimeout > 0, heartbeatTimeout <= 3600 else {
            throw ConfigError(
                path: "runtime.heartbeat_timeout", "must be in (0, 3600] seconds, got \(heartbeatTimeout)")
        }
        guard heartbeatsPerSecond >= 1, heartbeatsPerSecond <= 1_000_000 else {
            throw ConfigError(
                path: "runtime.heartbeats_per_second", "must be in 1...1000000, got \(heartbeatsPerSecond)")
        }
        guard callTimeout > 0, callTimeout <= 86400 else {
            throw ConfigError(
                path: "runtime.call_timeout", "must be in (0, 86400] seconds, got \(callTimeout)")
        }
        guard maxWorkers >= 1, maxWorkers <= 65536 else {
            throw ConfigError(path: "runtime.max_workers", "must be in 1...65536, got \(maxWorkers)")
        }
        guard minWorkers >= 1, minWorkers <= maxWorkers else {
            throw ConfigError(
                path: "runtime.min_workers", "must be in 1...max_workers (\(maxWorkers)), got \(minWorkers)")
        }
        guard pacingMargin >= 0, pacingMargin <= 16 else {
            throw ConfigError(
                path: "runtime.pacing_margin", "must be in [0, 16] batches, got \(pacingMargin)")
        }
    }

    /// Why `endpoint` cannot be bound, or nil if it looks bindable.
    public static func problem(bindEndpoint endpoint: String) -> String? {
        problem(endpoint, bind: true)
    }

    /// Why `endpoint` cannot be connected to, or nil if it looks connectable.
    public static func problem(connectEndpoint endpoint: String) -> String? {
        problem(endpoint, bind: false)
    }

    private static func problem(_ endpoint: String, bind: Bool) -> String? {
        let expected =
            bind ? "tcp://HOST:PORT (PORT may be *) or ipc://PATH" : "tcp://HOST:PORT or ipc://PATH"
        if endpoint.hasPrefix("ipc://") {
            return endpoint.count > "ipc://".count ? nil : "expected \(expected), got '\(endpoint)'"
        }
        guard endpoint.hasPrefix("tcp://") else { return "expected \(expected), got '\(endpoint)'" }
        let address = endpoint.dropFirst("tcp://".count)
        guard let colon = address.lastIndex(of: ":") else {
            return "expected \(expected), got '\(endpoint)' (no port)"
        }
        let host = address[..<colon]
        let port = address[address.index(after: colon)...]
        guard !host.isEmpty else { return "expected \(expected), got '\(endpoint)' (no host)" }
        if bind, port == "*" { return nil }
        guard let number = Int(port), (1...65535).contains(number) else {
            return "port must be in 1...65535\(bind ? " or *" : ""), got '\(port)' in '\(endpoint)'"
        }
        if !bind, host == "0.0.0.0" || host == "*" {
            return "'\(endpoint)' is a bind address; give the learner's host name or address"
        }
        return nil
    }

    /// Why binding the learner's control socket to `bind` without CURVE lets anyone on the
    /// network in (join, read the weights, deliver batches), or `nil` for a loopback, `ipc://` or
    /// `inproc://` endpoint. The learner says it once at start; it refuses nothing.
    public static func exposure(bindEndpoint bind: String) -> String? {
        guard bind.hasPrefix("tcp://"), let colon = bind.lastIndex(of: ":") else { return nil }
        let host = bind[bind.index(bind.startIndex, offsetBy: 6)..<colon]
        let loopback = host == "localhost" || host.hasPrefix("127.") || host == "[::1]" || host == "::1"
        guard !loopback else { return nil }
        return "\(bind) is reachable from the network without CURVE: any peer that connects can join, "
            + "read the policy weights and deliver batches; give the learner security.curve_secret and "
            + "security.allow, or --curve-secret and --allow (see `rein keys`), or bind 127.0.0.1"
    }
}
