import Foundation
import Logging
import Synchronization
import ZeroMQ

extension ZMQSocket {
    /// Applies the per-connection parts of `limits` to a receiving socket (before bind/connect):
    /// the frame limit (`ZMQ_MAXMSGSIZE`), and ZMTP heartbeats and a handshake deadline that
    /// drop a connection whose frame or handshake stalls for ``WireLimits/partialFrameTimeout``.
    func applyInbound(_ limits: WireLimits) throws(ZMQError) {
        try setMaxMessageSize(limits.socketMaxMessageSize)
        // Only a complete message cancels a heartbeat's timeout, so a peer stalled in the middle
        // of a frame is dropped within interval + timeout.
        try setHeartbeat(interval: limits.partialFrameTimeout / 2, timeout: limits.partialFrameTimeout / 2)
        try setHandshakeInterval(limits.partialFrameTimeout)
    }
}

/// Keeps the number of connections of a bound socket within ``WireLimits/maxConnections``.
///
/// Pure bookkeeping: ``accepted(_:listener:at:isSilent:)`` says whether a new connection (its file
/// descriptor, from a `ZMQ_EVENT_ACCEPTED` monitor event) may stay, and which open one it displaces;
/// ``closed(_:)`` forgets one. At the cap, a newcomer takes the place of the oldest connection
/// that has been open for ``silentGrace`` or longer without sending a byte (`isSilent`: not even
/// its ZMTP greeting, which every real peer sends at once). Without that, a stranger holding the
/// cap with connections that never speak shut workers out until libzmq's handshake deadline, and
/// could open them again at once. A connection that has spoken is never displaced (its handshake
/// and frames have deadlines of their own), nor one younger than the grace, so a stranger that
/// reconnects whatever is closed churns only through its own old connections.
struct ConnectionCount {
    let limit: Int
    /// How long a connection may stay silent before a newcomer at the cap may take its place.
    let silentGrace: Duration
    /// Open connections: when each was accepted, and its listener's endpoint.
    private(set) var open: [UInt32: (at: ContinuousClock.Instant, listener: String)] = [:]

    /// What becomes of an accepted connection.
    enum Admission: Equatable {
        /// Under the cap: it stays.
        case admitted
        /// At the cap: it stays, and the silent connection `fd` of `listener` is to be closed.
        case displacing(fd: UInt32, listener: String)
        /// At the cap with no silent connection to displace: the caller closes it.
        case refused
    }

    init(limit: Int, silentGrace: Duration = .seconds(1)) {
        self.limit = limit
        self.silentGrace = silentGrace
    }

    /// Records a connection accepted at `now` by the listener at `listener`; `isSilent(fd,
    /// listener)` says whether an open connection has sent nothing yet (asked only at the cap, of
    /// connections past the grace, oldest first).
    mutating func accepted(
        _ fd: UInt32, listener: String, at now: ContinuousClock.Instant,
        isSilent: (UInt32, String) -> Bool
    ) -> Admission {
        guard open.count >= limit else {
            open[fd] = (now, listener)
            return .admitted
        }
        let old = open.filter { now - $0.value.at >= silentGrace }.sorted { $0.value.at < $1.value.at }
        guard let (displaced, entry) = old.first(where: { isSilent($0.key, $0.value.listener) }) else {
            return .refused
        }
        open[displaced] = nil
        open[fd] = (now, listener)
        return .displacing(fd: displaced, listener: entry.listener)
    }

    /// Forgets a connection that was closed or disconnected.
    mutating func closed(_ fd: UInt32) { open[fd] = nil }
}

/// What a descriptor named by a `ZMQ_EVENT_ACCEPTED` monitor event is now.
enum AcceptedDescriptor {
    /// Whether `fd` is still a connection accepted by the listener bound at `listener` (the
    /// event's `tcp://host:port` or `ipc://path`): a socket that is not listening, whose local
    /// port (or path) is the listener's. A descriptor closed and reused since the event fails
    /// unless it is another connection of the same listener, which is as fair a one to close.
    static func isConnection(_ fd: Int32, of listener: String) -> Bool {
        var listening: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &length) == 0, listening == 0 else {
            return false
        }
        var address = sockaddr_storage()
        var size = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &size) }
        }
        guard named == 0 else { return false }
        let family = Int32(address.ss_family)
        return withUnsafePointer(to: &address) { raw -> Bool in
            switch family {
            case AF_INET:
                let port = raw.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_port }
                return listener.hasPrefix("tcp://") && Self.port(of: listener) == UInt16(bigEndian: port)
            case AF_INET6:
                let port = raw.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee.sin6_port }
                return listener.hasPrefix("tcp://") && Self.port(of: listener) == UInt16(bigEndian: port)
            case AF_UNIX:
                guard listener.hasPrefix("ipc://") else { return false }
                let path = raw.withMemoryRebound(to: sockaddr_un.self, capacity: 1) { un in
                    withUnsafeBytes(of: un.pointee.sun_path) { bytes in
                        String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
                    }
                }
                return path == String(listener.dropFirst("ipc://".count))
            default:
                return false
            }
        }
    }

    /// Whether `fd` is a TCP connection of `listener` that has received no byte yet (`false` for
    /// Unix-domain connections, which strangers off the host cannot open, and when unsure).
    static func isSilentConnection(_ fd: Int32, of listener: String) -> Bool {
        isConnection(fd, of: listener) && bytesReceived(fd) == 0
    }

    /// The bytes the kernel has received on the TCP connection `fd` (Linux `tcp_info`'s
    /// `tcpi_bytes_received`, since Linux 4.1), or `nil` if it cannot tell.
    static func bytesReceived(_ fd: Int32) -> UInt64? {
        // Glibc's <netinet/tcp.h> declares an older, shorter `struct tcp_info`: read the kernel's
        // at the field's offset in <linux/tcp.h> (checked against a real connection by
        // ConnectionGuardTests).
        let offset = 128
        var info = [UInt8](repeating: 0, count: 256)
        var length = socklen_t(info.count)
        let ok = info.withUnsafeMutableBytes {
            getsockopt(fd, Int32(IPPROTO_TCP), TCP_INFO, $0.baseAddress, &length) == 0
        }
        guard ok, Int(length) >= offset + 8 else { return nil }
        return info.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: UInt64.self) }
    }

    /// The port of a `tcp://host:port` endpoint.
    static func port(of endpoint: String) -> UInt16? {
        guard let colon = endpoint.lastIndex(of: ":") else { return nil }
        return UInt16(endpoint[endpoint.index(after: colon)...])
    }
}

/// Watches a bound socket's connections through a monitor and closes those over the cap.
///
/// Owned by the socket's owner thread (like the socket), or by a ``ConnectionWatch`` thread. A
/// connection over the cap is shut down at the TCP level (`shutdown(2)`, the descriptor stays
/// libzmq's): libzmq sees the end of the stream and closes it, before it could fill a frame.
///
/// Close the watched socket before the guard (see ``ZeroMQ/ZMQMonitor``).
final class ConnectionGuard {
    let monitor: ZMQMonitor
    private var count: ConnectionCount
    private let rejections: WireRejections
    private let logger: Logger

    /// Starts monitoring `socket` (on its owner thread, before it binds); with `untilStopped`, the
    /// monitor also reports ``ZeroMQ/ZMQMonitorEvent/Kind/monitorStopped`` when `socket` closes.
    init(
        socket: ZMQSocket, limits: WireLimits, rejections: WireRejections, logger: Logger,
        untilStopped: Bool = false
    ) throws {
        var events: ZMQMonitor.Events = [.accepted, .disconnected, .closed]
        if untilStopped { events.insert(.monitorStopped) }
        monitor = try socket.monitor(events)
        count = ConnectionCount(limit: limits.maxConnections)
        self.rejections = rejections
        self.logger = logger
    }

    /// Handles every queued monitor event; never blocks.
    func drain() {
        while let event = try? monitor.next(wait: .nonBlocking) { handle(event) }
    }

    /// Handles one event; `false` once the watched socket has closed and stopped its monitor.
    @discardableResult
    func handle(_ event: ZMQMonitorEvent) -> Bool {
        switch event.kind {
        case .accepted:
            let admission = count.accepted(event.value, listener: event.endpoint, at: .now) { fd, listener in
                AcceptedDescriptor.isSilentConnection(Int32(bitPattern: fd), of: listener)
            }
            if case .displacing(let fd, let listener) = admission {
                _ = shutdown(Int32(bitPattern: fd), Int32(SHUT_RDWR))
                rejections.record(
                    WireRejections.silentConnection, peer: listener, key: "connections",
                    error: PeerRejection(
                        WireRejections.silentConnection,
                        "connection closed: silent for \(count.silentGrace) or more, at the cap of \(count.limit) connections, to let a new one in"
                    ),
                    logger: logger)
            }
            if admission == .refused {
                // The event is read after the fact: the connection may be gone and its descriptor
                // reused, even by a listening socket (whose shutdown made libzmq's accept fail an
                // assertion and abort the process). Only a connection of this listener is closed.
                let fd = Int32(bitPattern: event.value)
                if AcceptedDescriptor.isConnection(fd, of: event.endpoint) {
                    _ = shutdown(fd, Int32(SHUT_RDWR))
                }
                rejections.record(
                    WireRejections.tooManyConnections, peer: event.endpoint, key: "connections",
                    error: PeerRejection(
                        WireRejections.tooManyConnections,
                        "connection closed: \(count.limit) connections open already"),
                    logger: logger)
            }
        case .disconnected, .closed:
            count.closed(event.value)
        case .monitorStopped:
            return false
        default:
            break
        }
        return true
    }

    func close() { monitor.close() }
}

/// A ``ConnectionGuard`` on a thread of its own, for a bound socket whose owner thread blocks in
/// receives or sends (the bulk sockets: sample PULL, weight PUB) and so cannot poll a monitor.
///
/// Started on the socket's owner thread (which starts the monitor). The thread waits for monitor
/// events (suspended in the receive, no ticks) and ends when the socket's close stops the monitor,
/// or when the context shuts down; only then does it close the monitor, so libzmq never sends an
/// event to a closed monitor. Closing a connection is a `shutdown(2)` of libzmq's descriptor, safe
/// from any thread.
enum ConnectionWatch {
    /// Moves the guard to the watch thread.
    ///
    /// `@unchecked Sendable`: the guard is made here and used only by that thread afterwards (its
    /// monitor is a PAIR socket of its own; the watched socket stays with its owner).
    private final class Transfer: @unchecked Sendable {
        let guarding: ConnectionGuard
        init(_ guarding: ConnectionGuard) { self.guarding = guarding }
    }

    /// Starts watching `socket` (call on its owner thread, before it binds); the watch lasts until
    /// `socket` is closed.
    static func start(
        socket: ZMQSocket, limits: WireLimits, rejections: WireRejections, logger: Logger
    ) throws {
        let transfer = Transfer(
            try ConnectionGuard(
                socket: socket, limits: limits, rejections: rejections, logger: logger, untilStopped: true))
        let thread = Thread {
            let guarding = transfer.guarding
            defer { guarding.close() }
            while true {
                do throws(ZMQError) {
                    guard let event = try guarding.monitor.next(wait: .blocking) else { continue }
                    if !guarding.handle(event) { return }
                } catch {
                    if !error.isTerminated { logger.error("connection monitor failed: \(error)") }
                    return
                }
            }
        }
        thread.name = "rein-connection-cap"
        thread.start()
    }
}
