import Foundation
import Testing
import ZeroMQ

@testable import ReinActors

/// A hostile ZMTP 3.0 client on a raw TCP socket: it completes the NULL handshake as a DEALER,
/// declares one long frame, sends part of it and stalls (keeping the connection open).
///
/// `@unchecked Sendable`: only the descriptor, used by one thread at a time.
final class StallingPeer: @unchecked Sendable {
    let fd: Int32

    /// Connects to `port` on 127.0.0.1 and says hello at the ZMTP level as a `socketType` socket.
    /// `nil` if refused.
    init?(port: UInt16, socketType: String = "DEALER") {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        // A refused connection's sends stop after a second (the kernel buffers fill).
        var timeout = timeval(tv_sec: 1, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else {
            close(fd)
            return nil
        }
        // Greeting: signature, version 3.0, mechanism NULL, as-server 0, filler.
        var greeting: [UInt8] = [0xFF, 0, 0, 0, 0, 0, 0, 0, 1, 0x7F, 3, 0]
        greeting +=
            Array("NULL".utf8) + [UInt8](repeating: 0, count: 16) + [0] + [UInt8](repeating: 0, count: 31)
        // READY command with the Socket-Type.
        var ready: [UInt8] = [5] + Array("READY".utf8)
        ready +=
            [UInt8("Socket-Type".utf8.count)] + Array("Socket-Type".utf8)
            + [0, 0, 0, UInt8(socketType.utf8.count)] + Array(socketType.utf8)
        let command: [UInt8] = [0x04, UInt8(ready.count)] + ready
        guard send(greeting + command) == greeting.count + command.count else {
            close(fd)
            return nil
        }
    }

    /// Sends bytes; how many went out before an error (the peer closed the connection).
    func send(_ bytes: [UInt8]) -> Int {
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes {
                Glibc.send(fd, $0.baseAddress! + sent, bytes.count - sent, Int32(MSG_NOSIGNAL))
            }
            if n <= 0 { return sent }
            sent += n
        }
        return sent
    }

    /// Declares a frame of `declared` bytes and sends `sending` of them; the bytes the connection took.
    func sendPartialFrame(declared: Int, sending: Int) -> Int {
        var header: [UInt8] = [0x02]  // a long frame, the last of its message
        for shift in stride(from: 56, through: 0, by: -8) {
            header.append(UInt8(truncatingIfNeeded: declared >> shift))
        }
        guard send(header) == header.count else { return 0 }
        let chunk = [UInt8](repeating: 0x5A, count: 1 << 20)
        var total = 0
        while total < sending {
            let n = send(Array(chunk.prefix(min(chunk.count, sending - total))))
            total += n
            if n < min(chunk.count, sending - total + n) { break }
        }
        return total
    }

    /// Reads until the peer closes the connection (`true`) or nothing arrives for `seconds` (`false`).
    func waitForClose(seconds: Int) -> Bool {
        var timeout = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n == 0 { return true }
            if n < 0 { return errno == ECONNRESET }
        }
    }

    deinit { close(fd) }
}

/// Runs blocking socket code on a thread of its own, never on the cooperative pool (whose few
/// threads the other tests' timeouts need).
func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try body() }) }.start()
    }
}

/// This process's resident set size in bytes (`VmRSS` of /proc/self/status).
func residentBytes() throws -> Int {
    let status = try String(contentsOfFile: "/proc/self/status", encoding: .utf8)
    let line = try #require(status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") })
    let kilobytes = try #require(Int(line.split(separator: " ", omittingEmptySubsequences: true)[1]))
    return kilobytes * 1024
}

@Suite("Hostile peers: inbound memory budget", .serialized)
struct InboundBudgetTests {
    /// A system listening on loopback TCP with `limits`; its port.
    static func listen(_ limits: WireLimits) throws -> (ReinActorSystem, UInt16) {
        let system = try ReinActorSystem(
            context: try ZMQContext(),
            configuration: .init(name: "learner", bind: "tcp://127.0.0.1:*", limits: limits),
            settings: testSettings, logger: quiet)
        let endpoint = try #require(system.endpoint)
        let portText = try #require(endpoint.split(separator: ":").last)
        let port = try #require(UInt16(portText))
        return (system, port)
    }

    /// Issue 15, attack 4: eight connections each declare a 60 MiB frame, send 59 MiB and stall.
    /// With the default limits the declared size is over the frame limit, so each connection is
    /// dropped at the frame's length, before anything is buffered.
    @Test func eightHalfSentSixtyMiBFramesLeaveResidentMemoryWithinTheBudget() async throws {
        let limits = WireLimits.default
        let (system, port) = try Self.listen(limits)
        let before = try residentBytes()
        let (peers, taken) = try await offPool {
            var peers: [StallingPeer] = []
            var taken = 0
            for _ in 0..<8 {
                guard let peer = StallingPeer(port: port) else { continue }
                taken += peer.sendPartialFrame(declared: 60 << 20, sending: 59 << 20)
                peers.append(peer)
            }
            return (peers, taken)
        }
        #expect(peers.count == 8)
        let growth = try residentBytes() - before
        #expect(taken < 8 * (59 << 20), "the learner dropped the oversize frames")
        // Undefended, the learner held the 8 × 59 MiB sent (472 MiB). Other suites of this process
        // run at the same time and allocate too, hence a bound of half the attack.
        #expect(growth < 4 * (59 << 20), "resident memory grew by \(growth >> 20) MiB")
        withExtendedLifetime(peers) {}
        await system.shutdown()
    }

    /// Frames under the limit: the connection cap bounds how many can be held at once.
    @Test(.timeLimit(.minutes(2)))
    func connectionsOverTheCapAreClosedSoPartialFramesStayWithinTheBudget() async throws {
        // A partial-frame timeout far away, so only the cap can free anything.
        let limits = WireLimits(
            maxFrameBytes: 64 << 20, partialFrameTimeout: .seconds(600), maxConnections: 2)
        let (system, port) = try Self.listen(limits)
        let before = try residentBytes()
        let peers = try await offPool {
            var peers: [StallingPeer] = []
            for _ in 0..<8 {
                guard let peer = StallingPeer(port: port) else { continue }
                _ = peer.sendPartialFrame(declared: 60 << 20, sending: 59 << 20)
                peers.append(peer)
            }
            return peers
        }
        // Six connections over the cap are closed (when the learner's thread gets to it) and
        // their buffers freed by libzmq's I/O thread: wait for both, however loaded the machine.
        // Undefended: 8 × 59 MiB held (472 MiB); the budget is 2 × 64 MiB, and other suites of
        // this process allocate at the same time (up to ~100 MiB seen).
        let bound = limits.inboundBudget + (96 << 20)
        var growth = Int.max
        for _ in 0..<600
        where growth >= bound
            || system.rejections.count(WireRejections.tooManyConnections) < 6
        {
            try await Task.sleep(for: .milliseconds(100))
            growth = try residentBytes() - before
        }
        #expect(system.rejections.count(WireRejections.tooManyConnections) == 6)
        #expect(
            growth < bound,
            "resident memory grew by \(growth >> 20) MiB, budget \(limits.inboundBudget >> 20) MiB")
        withExtendedLifetime(peers) {}
        await system.shutdown()
    }

    /// The port of a `tcp://127.0.0.1:N` endpoint.
    static func port(of endpoint: String) throws -> UInt16 {
        let text = try #require(endpoint.split(separator: ":").last)
        return try #require(UInt16(text))
    }

    /// Opens `count` connections of ZMTP type `socketType` to `port`, each sending part of a
    /// 60 MiB frame (under the frame limit) and stalling; the peers that connected.
    static func stallingPeers(_ count: Int, port: UInt16, socketType: String) async throws -> [StallingPeer] {
        try await offPool {
            var peers: [StallingPeer] = []
            for _ in 0..<count {
                guard let peer = StallingPeer(port: port, socketType: socketType) else { continue }
                _ = peer.sendPartialFrame(declared: 60 << 20, sending: 59 << 20)
                peers.append(peer)
            }
            return peers
        }
    }

    /// The sample PULL has the control socket's cap too: connections over it are closed and
    /// counted, so half-sent frames hold at most the budget.
    @Test(.timeLimit(.minutes(2)))
    func theSamplePullKeepsAtMostMaxConnections() async throws {
        let limits = WireLimits(
            maxFrameBytes: 64 << 20, partialFrameTimeout: .seconds(600), maxConnections: 2)
        let rejections = WireRejections()
        let receiver = BulkReceiver(
            context: try ZMQContext(), link: .bind("tcp://127.0.0.1:*"), limits: limits,
            rejections: rejections, logger: quiet)
        defer { receiver.close() }
        let port = try Self.port(of: await receiver.endpoint())
        let before = try residentBytes()
        let peers = try await Self.stallingPeers(8, port: port, socketType: "PUSH")
        let bound = limits.inboundBudget + (96 << 20)
        var growth = Int.max
        for _ in 0..<600
        where growth >= bound || rejections.count(WireRejections.tooManyConnections) < 6 {
            try await Task.sleep(for: .milliseconds(100))
            growth = try residentBytes() - before
        }
        #expect(rejections.count(WireRejections.tooManyConnections) == 6)
        #expect(
            growth < bound,
            "resident memory grew by \(growth >> 20) MiB, budget \(limits.inboundBudget >> 20) MiB")
        withExtendedLifetime(peers) {}
    }

    /// The weight PUB keeps at most `maxConnections` subscribers' connections; the ones over it
    /// are closed at once (the first ones stay open).
    @Test(.timeLimit(.minutes(2)))
    func theWeightPubKeepsAtMostMaxConnections() async throws {
        let rejections = WireRejections()
        let sender = try BulkSender(
            context: try ZMQContext(), node: .random(), link: .bind("tcp://127.0.0.1:*"), pattern: .pub,
            limits: WireLimits(maxConnections: 3), rejections: rejections, logger: quiet)
        defer { sender.close() }
        let port = try Self.port(of: try #require(sender.endpoint))
        let peers = try await offPool {
            (0..<7).compactMap { _ in StallingPeer(port: port, socketType: "SUB") }
        }
        #expect(peers.count == 7)
        for _ in 0..<600 where rejections.count(WireRejections.tooManyConnections) < 4 {
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(rejections.count(WireRejections.tooManyConnections) == 4)
        // Closed: the four over the cap (in whatever order they were accepted); open: three.
        let closed = try await offPool { peers.filter { $0.waitForClose(seconds: 2) }.count }
        #expect(closed == 4)
    }

    /// A frame that stops arriving costs its connection after the partial-frame timeout (it used
    /// to hold its memory for as long as the peer stayed connected).
    @Test func aStalledPartialFrameIsDroppedAfterTheTimeout() async throws {
        let limits = WireLimits(maxFrameBytes: 16 << 20, partialFrameTimeout: .seconds(1))
        let (system, port) = try Self.listen(limits)
        let (sent, closed) = try await offPool {
            guard let peer = StallingPeer(port: port) else { return (0, false) }
            let sent = peer.sendPartialFrame(declared: 8 << 20, sending: 4 << 20)
            // Closed by the learner (the limit of 120 s only keeps a broken build from hanging).
            return (sent, peer.waitForClose(seconds: 120))
        }
        #expect(sent == 4 << 20)
        #expect(closed)
        await system.shutdown()
    }
}
