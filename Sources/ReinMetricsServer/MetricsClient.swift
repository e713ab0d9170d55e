import NIOCore
import NIOHTTP1
import NIOPosix

/// Fetches a metrics page over HTTP/1.1 (what `rein top` reads).
public enum MetricsClient {
    /// The body of `GET path` on `host:port`.
    /// - Throws: ``MetricsEndpointError`` naming the address when the connection fails or the
    ///   reply is not 200.
    public static func get(host: String, port: Int, path: String = "/metrics")
        async throws(MetricsEndpointError)
        -> String
    {
        let address = "\(host.contains(":") ? "[\(host)]" : host):\(port)"
        do {
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connectTimeout(.seconds(5))
                .connect(host: host, port: port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHTTPClientHandlers()
                        return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(
                            wrappingChannelSynchronously: channel)
                    }
                }
            return try await channel.executeThenClose { inbound, outbound in
                var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: path)
                head.headers.add(name: "Host", value: address)
                head.headers.add(name: "Connection", value: "close")
                try await outbound.write(.head(head))
                try await outbound.write(.end(nil))
                var status = HTTPResponseStatus.ok
                var body = ByteBuffer()
                for try await part in inbound {
                    switch part {
                    case .head(let reply): status = reply.status
                    case .body(var chunk): body.writeBuffer(&chunk)
                    case .end:
                        guard status == .ok else {
                            throw MetricsEndpointError("\(status.code) \(status.reasonPhrase)")
                        }
                        return String(buffer: body)
                    }
                }
                throw MetricsEndpointError("the connection closed before the reply ended")
            }
        } catch let error as MetricsEndpointError {
            throw MetricsEndpointError("GET http://\(address)\(path): \(error)")
        } catch {
            throw MetricsEndpointError("GET http://\(address)\(path): \(error)")
        }
    }
}
