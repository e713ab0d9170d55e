import CZeroMQ
import Synchronization

/// A connection event reported by ``ZMQMonitor``.
public struct ZMQMonitorEvent: Sendable, Hashable {
    /// What happened.
    public enum Kind: Sendable, Hashable {
        case connected, connectDelayed, connectRetried, listening, bindFailed, accepted, acceptFailed
        case closed, closeFailed, disconnected, monitorStopped
        case handshakeFailedNoDetail, handshakeSucceeded, handshakeFailedProtocol, handshakeFailedAuth
        case other(UInt16)

        init(raw: UInt16) {
            switch Int32(raw) {
            case ZMQ_EVENT_CONNECTED: self = .connected
            case ZMQ_EVENT_CONNECT_DELAYED: self = .connectDelayed
            case ZMQ_EVENT_CONNECT_RETRIED: self = .connectRetried
            case ZMQ_EVENT_LISTENING: self = .listening
            case ZMQ_EVENT_BIND_FAILED: self = .bindFailed
            case ZMQ_EVENT_ACCEPTED: self = .accepted
            case ZMQ_EVENT_ACCEPT_FAILED: self = .acceptFailed
            case ZMQ_EVENT_CLOSED: self = .closed
            case ZMQ_EVENT_CLOSE_FAILED: self = .closeFailed
            case ZMQ_EVENT_DISCONNECTED: self = .disconnected
            case ZMQ_EVENT_MONITOR_STOPPED: self = .monitorStopped
            case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL: self = .handshakeFailedNoDetail
            case ZMQ_EVENT_HANDSHAKE_SUCCEEDED: self = .handshakeSucceeded
            case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL: self = .handshakeFailedProtocol
            case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH: self = .handshakeFailedAuth
            default: self = .other(raw)
            }
        }
    }

    public var kind: Kind
    /// The event's value (a file descriptor, an errno, a ZAP status…; depends on the kind).
    public var value: UInt32
    /// The peer or local endpoint the event concerns.
    public var endpoint: String

    /// An event as a monitor reports it (e.g. to drive a handler in a test).
    public init(kind: Kind, value: UInt32, endpoint: String) {
        self.kind = kind
        self.value = value
        self.endpoint = endpoint
    }
}

/// Connection events of one socket (`zmq_socket_monitor`), e.g. to notice a lost peer.
///
/// The monitor is itself a PAIR socket; like every socket it has one owner thread, which may differ
/// from the monitored socket's owner.
///
/// **Close the monitored socket before the monitor.** libzmq sends events with a blocking send
/// from its own threads; an event sent to a closed monitor would block that thread, and with it
/// every socket of the context. ``ZMQSocket/close()`` stops the monitor first, so once the
/// monitored socket is closed (or, with ``Events/monitorStopped`` requested, once that event has
/// been read) closing the monitor is safe.
public final class ZMQMonitor {
    private let pair: ZMQSocket

    private static let counter = Atomic<Int>(0)

    /// Events to report.
    public struct Events: OptionSet, Sendable {
        public let rawValue: Int32
        public init(rawValue: Int32) { self.rawValue = rawValue }
        public static let connected = Events(rawValue: ZMQ_EVENT_CONNECTED)
        public static let accepted = Events(rawValue: ZMQ_EVENT_ACCEPTED)
        public static let disconnected = Events(rawValue: ZMQ_EVENT_DISCONNECTED)
        public static let closed = Events(rawValue: ZMQ_EVENT_CLOSED)
        public static let handshakeSucceeded = Events(rawValue: ZMQ_EVENT_HANDSHAKE_SUCCEEDED)
        public static let handshakeFailed = Events(
            rawValue: ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL
                | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
        /// The last event of a monitor: its socket was closed (see ``ZMQSocket/close()``).
        public static let monitorStopped = Events(rawValue: ZMQ_EVENT_MONITOR_STOPPED)
        public static let all = Events(rawValue: ZMQ_EVENT_ALL)
        /// Connected, accepted and disconnected: what peer-loss detection needs.
        public static let peers: Events = [.connected, .accepted, .disconnected]
    }

    /// Starts monitoring `socket` (call on its owner thread); the returned monitor can be moved to
    /// another thread before its first use.
    init(monitoring socket: ZMQSocket, events: Events) throws(ZMQError) {
        let id = Self.counter.add(1, ordering: .relaxed).newValue
        let endpoint = "inproc://rein-zmq-monitor-\(id)"
        // The reader exists before monitoring starts, so a monitor never lacks one.
        pair = try socket.context.socket(.pair)
        if zmq_socket_monitor(try socket.live("zmq_socket_monitor"), endpoint, events.rawValue) != 0 {
            throw ZMQError.last("zmq_socket_monitor", context: endpoint)
        }
        socket.monitored = true
        try pair.connect(endpoint)
    }

    /// The socket to add to a ``ZMQPoller`` to wait for events together with other sockets.
    public var socket: ZMQSocket { pair }

    /// The next event, or `nil` if none arrived within `wait`.
    public func next(wait: ZMQWait = .blocking) throws(ZMQError) -> ZMQMonitorEvent? {
        guard let frames = try pair.receiveMultipart(wait: wait) else { return nil }
        guard frames.count >= 2, frames[0].count >= 6 else {
            throw ZMQError(operation: "ZMQMonitor.next", code: EPROTO, context: "malformed monitor event")
        }
        let (raw, value) = frames[0].withUnsafeBytes { bytes in
            (bytes.loadUnaligned(as: UInt16.self), bytes.loadUnaligned(fromByteOffset: 2, as: UInt32.self))
        }
        return ZMQMonitorEvent(kind: .init(raw: raw), value: value, endpoint: frames[1].string)
    }

    /// Stops the monitor.
    public func close() { pair.close() }
}

extension ZMQSocket {
    /// Starts reporting connection events of this socket to a new ``ZMQMonitor``.
    public func monitor(_ events: ZMQMonitor.Events = .peers) throws(ZMQError) -> ZMQMonitor {
        try ZMQMonitor(monitoring: self, events: events)
    }
}
