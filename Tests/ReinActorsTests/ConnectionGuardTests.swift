import Foundation
import Logging
import Synchronization
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
        let client = try #require(connectLoopback(port))
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
    @Test func aNewcomerAtTheCapDisplacesOnlyTheOldestConnectionSilentPastTheGrace() {
        var count = ConnectionCount(limit: 3, silentGrace: .seconds(1))
        let t0 = ContinuousClock.now
        let spoke: Set<UInt32> = [1]
        let silent = { (fd: UInt32, _: String) in !spoke.contains(fd) }
        for (fd, at) in [(UInt32(1), 0.0), (2, 0.1), (3, 0.2)] {
            #expect(
                count.accepted(fd, listener: "tcp://a:1", at: t0 + .seconds(at), isSilent: silent)
                    == .admitted)
        }
        // Nobody past the grace yet: refused.
        #expect(
            count.accepted(4, listener: "tcp://a:1", at: t0 + .seconds(0.5), isSilent: silent) == .refused)
        // Past it: the oldest silent one goes (1 spoke), then the next.
        #expect(
            count.accepted(4, listener: "tcp://a:1", at: t0 + .seconds(2), isSilent: silent)
                == .displacing(fd: 2, listener: "tcp://a:1"))
        #expect(
            count.accepted(5, listener: "tcp://a:1", at: t0 + .seconds(2), isSilent: silent)
                == .displacing(fd: 3, listener: "tcp://a:1"))
        // 1 spoke, 4 and 5 are new: nothing to displace.
        #expect(
            count.accepted(6, listener: "tcp://a:1", at: t0 + .seconds(2.1), isSilent: silent) == .refused)
        count.closed(1)
        #expect(
            count.accepted(6, listener: "tcp://a:1", at: t0 + .seconds(2.1), isSilent: silent) == .admitted)
        #expect(Set(count.open.keys) == [4, 5, 6])
    }

    /// The kernel's byte count read at `tcp_info`'s offset is the connection's (a wrong offset
    /// would read another field).
    @Test func aConnectionIsSilentUntilItsPeerSendsAByte() throws {
        let (listener, port) = try Self.listener()
        defer { close(listener) }
        let (client, accepted) = try Self.connection(to: listener, port: port)
        defer {
            close(client)
            close(accepted)
        }
        let endpoint = "tcp://127.0.0.1:\(port)"
        #expect(AcceptedDescriptor.bytesReceived(accepted) == 0)
        #expect(AcceptedDescriptor.isSilentConnection(accepted, of: endpoint))
        let bytes: [UInt8] = [1, 2, 3, 4, 5]
        #expect(send(client, bytes, bytes.count, 0) == 5)
        var buffer = [UInt8](repeating: 0, count: 5)
        #expect(recv(accepted, &buffer, 5, Int32(MSG_WAITALL)) == 5)
        #expect(AcceptedDescriptor.bytesReceived(accepted) == 5)
        #expect(!AcceptedDescriptor.isSilentConnection(accepted, of: endpoint))
        #expect(AcceptedDescriptor.bytesReceived(-1) == nil)
    }

    /// A stranger holds every place of the cap with connections that never send a byte and opens
    /// again, at once, any that is closed. A worker still gets in: its connection takes the place
    /// of a silent one. (Before, it was refused until the stranger's handshake deadline, here far
    /// away, and the stranger took the freed places back.)
    @Test(.timeLimit(.minutes(2)))
    func aStrangerHoldingTheCapWithSilentConnectionsCannotShutAWorkerOut() async throws {
        let limits = WireLimits(maxFrameBytes: 1 << 20, partialFrameTimeout: .seconds(600), maxConnections: 4)
        let (learner, port) = try InboundBudgetTests.listen(limits)
        let stranger = try SilentStranger(port: port, connections: 4)
        defer { stranger.stop() }
        let worker = try ReinActorSystem(
            context: try ZMQContext(), configuration: .init(name: "worker"), settings: testSettings,
            logger: quiet)
        let member = try await worker.connect(to: "tcp://127.0.0.1:\(port)", timeout: .seconds(60))
        #expect(member.node == learner.node)
        #expect(learner.rejections.count(WireRejections.silentConnection) >= 1)
        await worker.shutdown()
        await learner.shutdown()
    }
}

/// Holds `connections` TCP connections to a port on 127.0.0.1 without ever sending a byte, and
/// opens one again 10 ms after it is closed, until ``stop()``.
final class SilentStranger: @unchecked Sendable {
    private let port: UInt16
    private let stopped = Atomic<Bool>(false)
    private let finished = DispatchSemaphore(value: 0)

    init(port: UInt16, connections: Int) throws {
        self.port = port
        var opened: [Int32] = []
        for _ in 0..<connections { opened.append(try #require(connectLoopback(port))) }
        let thread = Thread { [self, opened] in
            defer { finished.signal() }
            var fds = opened
            var byte = [UInt8](repeating: 0, count: 256)
            while !stopped.load(ordering: .relaxed) {
                var polls = fds.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
                guard poll(&polls, nfds_t(polls.count), 50) > 0 else { continue }
                for (i, p) in polls.enumerated() where p.revents != 0 {
                    // The learner's greeting is read and ignored; only the end of the stream (the
                    // learner closed it) or an error other than "nothing to read" opens it again.
                    let read = recv(p.fd, &byte, byte.count, Int32(MSG_DONTWAIT))
                    if read > 0 || (read < 0 && (errno == EAGAIN || errno == EINTR)) { continue }
                    close(p.fd)
                    usleep(10_000)
                    fds[i] = connectLoopback(port) ?? -1
                }
            }
            for fd in fds where fd >= 0 { close(fd) }
        }
        thread.start()
    }

    func stop() {
        guard !stopped.exchange(true, ordering: .relaxed) else { return }
        finished.wait()
    }

}

/// A TCP connection to `port` on 127.0.0.1 (its descriptor), or `nil` if refused.
private func connectLoopback(_ port: UInt16) -> Int32? {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return nil }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = port.bigEndian
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
        }
    }
    guard connected else {
        close(fd)
        return nil
    }
    return fd
}
