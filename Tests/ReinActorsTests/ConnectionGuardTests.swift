import Foundation
import Logging
import Testing
import ZeroMQ

@testable import ReinActors

/// The connection cap closes connections named by monitor events that are read after the fact: the
/// descriptor may have been closed and reused since. A CI run aborted in libzmq's accept
/// ("Invalid argument (src/tcp_listener.cpp:223)") after the cap shut down a descriptor that had
/// become another socket's listener.
@Suite struct ConnectionGuardTests {
    /// A TCP listener on 127.0.0.1 at an ephemeral port.
    private static func listener() throws -> (fd: Int32, port: UInt16) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        try #require(fd >= 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var size = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, size) == 0 && listen(fd, 8) == 0 && getsockname(fd, $0, &size) == 0
            }
        }
        try #require(bound)
        return (fd, UInt16(bigEndian: address.sin_port))
    }

    /// A client connected to `port` and the listener's end of it.
    private static func connection(to listener: Int32, port: UInt16) throws -> (
        client: Int32, accepted: Int32
    ) {
        let client = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = port.bigEndian
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(client, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
        try #require(connected)
        let accepted = accept(listener, nil, nil)
        try #require(accepted >= 0)
        return (client, accepted)
    }

    private static func isListening(_ fd: Int32) -> Bool {
        var listening: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        return getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &length) == 0 && listening == 1
    }

    @Test func onlyAConnectionOfTheNamedListenerCounts() throws {
        let (listener, port) = try Self.listener()
        defer { close(listener) }
        let (client, accepted) = try Self.connection(to: listener, port: port)
        defer {
            close(client)
            close(accepted)
        }
        #expect(!AcceptedDescriptor.isConnection(listener, of: "tcp://127.0.0.1:\(port)"))
        #expect(AcceptedDescriptor.isConnection(accepted, of: "tcp://127.0.0.1:\(port)"))
        #expect(AcceptedDescriptor.isConnection(accepted, of: "tcp://0.0.0.0:\(port)"))
        #expect(!AcceptedDescriptor.isConnection(accepted, of: "tcp://127.0.0.1:\(port &+ 1)"))
        #expect(!AcceptedDescriptor.isConnection(accepted, of: "ipc:///tmp/rein-not-this.sock"))
        // The client's end has the listener's port as its peer, not as its own.
        #expect(!AcceptedDescriptor.isConnection(client, of: "tcp://127.0.0.1:\(port)"))
        #expect(!AcceptedDescriptor.isConnection(-1, of: "tcp://127.0.0.1:\(port)"))
    }

    @Test func aStaleAcceptEventNeverShutsDownAListeningSocket() throws {
        let (listener, port) = try Self.listener()
        defer { close(listener) }
        let context = try ZMQContext()
        let router = try context.socket(.router)
        let rejections = WireRejections()
        let guarded = try ConnectionGuard(
            socket: router, limits: WireLimits(maxConnections: 1), rejections: rejections,
            logger: Logger(label: "test.guard"))
        defer {
            router.close()
            guarded.close()
        }
        // The cap is full; the next accept event names a descriptor that is now a listener.
        guarded.handle(ZMQMonitorEvent(kind: .accepted, value: 1_000_000, endpoint: "tcp://127.0.0.1:1"))
        guarded.handle(
            ZMQMonitorEvent(
                kind: .accepted, value: UInt32(bitPattern: listener), endpoint: "tcp://127.0.0.1:\(port)"))
        #expect(rejections.count(WireRejections.tooManyConnections) == 1)
        #expect(Self.isListening(listener))
        let (client, accepted) = try Self.connection(to: listener, port: port)
        close(client)
        close(accepted)

        // A connection of the named listener over the cap is shut down (the peer reads end of stream).
        let (peer, over) = try Self.connection(to: listener, port: port)
        defer {
            close(peer)
            close(over)
        }
        guarded.handle(
            ZMQMonitorEvent(
                kind: .accepted, value: UInt32(bitPattern: over), endpoint: "tcp://127.0.0.1:\(port)"))
        var byte: UInt8 = 0
        #expect(recv(peer, &byte, 1, 0) == 0)
    }
}
