import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Prometheus
import ServiceLifecycle

/// An HTTP/1.1 listener serving `GET /metrics` in the Prometheus text format (``MetricsExposition``)
/// as a `Service`: ``run()`` serves until graceful shutdown (or cancellation), then closes the
/// listening socket.
///
/// Other paths answer 404, other methods 405. There is no authentication and no TLS: bind it to
/// localhost (or a private interface a scraper reaches). Each connection serves one request and is
/// closed.
public final class MetricsEndpoint: Service, Sendable {
    typealias Connection = NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>

    /// The host it is bound to.
    public let host: String
    /// The port it is bound to (the one chosen when asked for port 0).
    public let port: Int
    private let listener: NIOAsyncChannel<Connection, Never>
    private let registry: PrometheusCollectorRegistry
    private let logger: Logger

    private init(
        host: String, port: Int, listener: NIOAsyncChannel<Connection, Never>,
        registry: PrometheusCollectorRegistry, logger: Logger
    ) {
        self.host = host
        self.port = port
        self.listener = listener
        self.registry = registry
        self.logger = logger
    }

    /// The URL scrapers use.
    public var url: String { "http://\(host.contains(":") ? "[\(host)]" : host):\(port)/metrics" }

    /// Binds `host:port` (port 0: any free port) now, so that a busy port fails before the run.
    /// - Throws: ``MetricsEndpointError`` naming the address and the reason.
    public static func bind(
        host: String, port: Int, registry: PrometheusCollectorRegistry = MetricsExposition.registry,
        logger: Logger
    ) async throws(MetricsEndpointError) -> MetricsEndpoint {
        let listener: NIOAsyncChannel<Connection, Never>
        do {
            listener = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .bind(host: host, port: port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                        return try Connection(wrappingChannelSynchronously: channel)
                    }
                }
        } catch {
            throw MetricsEndpointError("cannot serve metrics on \(host):\(port): \(error)")
        }
        let bound = listener.channel.localAddress?.port ?? port
        return MetricsEndpoint(
            host: host, port: bound, listener: listener, registry: registry, logger: logger)
    }

    /// Serves scrapes until graceful shutdown or cancellation.
    public func run() async throws {
        let listener = self.listener
        try await withGracefulShutdownHandler {
            try await withThrowingDiscardingTaskGroup { group in
                defer { group.cancelAll() }  // connections still open end with the listener
                do {
                    try await listener.executeThenClose { connections in
                        for try await connection in connections {
                            group.addTask { await self.serve(connection) }
                        }
                    }
                } catch ChannelError.alreadyClosed {
                    // Closed by graceful shutdown.
                }
            }
        } onGracefulShutdown: {
            listener.channel.close(promise: nil)
        }
        logger.debug("metrics endpoint on \(host):\(port) stopped")
    }

    /// Answers one request on `connection`, then closes it.
    private func serve(_ connection: Connection) async {
        do {
            try await connection.executeThenClose { inbound, outbound in
                var request: HTTPRequestHead?
                for try await part in inbound {
                    switch part {
                    case .head(let head): request = head
                    case .body: continue
                    case .end:
                        guard let request else { return }
                        let reply = MetricsReply(method: request.method, uri: request.uri) {
                            MetricsExposition.text(of: registry)
                        }
                        var headers = HTTPHeaders()
                        headers.add(name: "Content-Type", value: reply.contentType)
                        headers.add(name: "Content-Length", value: String(reply.body.utf8.count))
                        headers.add(name: "Connection", value: "close")
                        try await outbound.write(
                            .head(
                                HTTPResponseHead(
                                    version: request.version, status: reply.status, headers: headers)))
                        if request.method != .HEAD {
                            try await outbound.write(.body(.byteBuffer(ByteBuffer(string: reply.body))))
                        }
                        try await outbound.write(.end(nil))
                        return
                    }
                }
            }
        } catch {
            logger.debug("metrics request failed: \(error)")
        }
    }
}

/// What the endpoint answers to a request (pure: the tests check it without a socket).
struct MetricsReply {
    var status: HTTPResponseStatus
    var contentType: String
    var body: String

    /// The reply to `method` on `uri`; `exposition` is read only for a scrape.
    init(method: HTTPMethod, uri: String, exposition: () -> String) {
        let path = uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        guard path == "/metrics" else {
            (status, contentType, body) = (
                .notFound, "text/plain; charset=utf-8", "not found: try /metrics\n"
            )
            return
        }
        guard method == .GET || method == .HEAD else {
            (status, contentType, body) = (.methodNotAllowed, "text/plain; charset=utf-8", "only GET\n")
            return
        }
        (status, contentType, body) = (.ok, MetricsExposition.contentType, exposition())
    }
}

/// The metrics endpoint could not start, as one line.
public struct MetricsEndpointError: Error, CustomStringConvertible, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
