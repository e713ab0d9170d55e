import CZeroMQ
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A libzmq socket.
///
/// **Ownership.** libzmq sockets are not thread-safe. A `ZMQSocket` is deliberately not
/// `Sendable`: the thread that creates it owns it and is the only one that may use and close it.
/// To connect a socket to Swift concurrency, run it on a dedicated owner thread and hand *batches*
/// of messages across (see ``ZMQInbox``), rather than hopping into async code once per message.
///
/// **Lifetime.** ``close()`` closes the socket (idempotent); `deinit` closes it too. The socket keeps
/// its ``ZMQContext`` alive, so the context terminates only after its last socket is gone.
///
/// **Errors.** Every failure throws ``ZMQError`` naming the operation, `errno` and libzmq's text.
/// Receives and sends that would block return `nil`/`false` instead of throwing.
public final class ZMQSocket {
    public let type: ZMQSocketType
    let context: ZMQContext
    private(set) var handle: UnsafeMutableRawPointer?
    /// Whether a ``ZMQMonitor`` watches this socket (its monitor is stopped before the close).
    var monitored = false
    /// A reusable message for receives that hand out a borrowed view.
    private let scratch: UnsafeMutablePointer<zmq_msg_t>

    init(context: ZMQContext, type: ZMQSocketType) throws(ZMQError) {
        guard let handle = zmq_socket(context.handle, type.raw) else {
            throw ZMQError.last("zmq_socket", context: type.description)
        }
        self.context = context
        self.type = type
        self.handle = handle
        self.scratch = .allocate(capacity: 1)
        zmq_msg_init(scratch)
    }

    deinit {
        close()
        zmq_msg_close(scratch)
        scratch.deallocate()
    }

    /// Closes the socket. Unsent messages are kept for the ``setLinger(_:)`` period.
    ///
    /// A monitored socket first stops its monitor (`zmq_socket_monitor(s, NULL, 0)`): libzmq
    /// sends monitor events with a *blocking* send from its I/O and reaper threads, and the
    /// connections a closed socket still tears down would emit them after `zmq_close` returns. Were
    /// the monitor's reader closed by then, that send would wait forever and stall every socket of
    /// the context. After this call no event of this socket is ever sent, so the monitor can be
    /// closed at any time; ``ZMQMonitor/Events/monitorStopped`` marks the end of its stream.
    public func close() {
        if let handle {
            if monitored {
                zmq_socket_monitor(handle, nil, 0)
                monitored = false
            }
            zmq_close(handle)
            self.handle = nil
        }
    }

    /// Stops this socket's ``ZMQMonitor`` (`zmq_socket_monitor(s, NULL, 0)`; call on the socket's
    /// owner thread) while the socket stays open: from then on the monitor can be closed, and no
    /// later event of the socket waits for a reader that is gone (see ``close()``).
    public func stopMonitor() {
        if let handle, monitored {
            zmq_socket_monitor(handle, nil, 0)
            monitored = false
        }
    }

    /// Whether ``close()`` has not been called yet.
    public var isOpen: Bool { handle != nil }

    func live(_ operation: String) throws(ZMQError) -> UnsafeMutableRawPointer {
        guard let handle else {
            throw ZMQError(operation: operation, code: ENOTSOCK, context: "socket closed")
        }
        return handle
    }

    // MARK: Endpoints

    /// Binds to an endpoint such as `tcp://127.0.0.1:*`, `ipc:///tmp/x` or `inproc://name`.
    public func bind(_ endpoint: String) throws(ZMQError) {
        if zmq_bind(try live("zmq_bind"), endpoint) != 0 {
            throw ZMQError.last("zmq_bind", context: endpoint)
        }
    }

    /// Connects to an endpoint (asynchronous in libzmq: succeeds before the peer exists).
    public func connect(_ endpoint: String) throws(ZMQError) {
        if zmq_connect(try live("zmq_connect"), endpoint) != 0 {
            throw ZMQError.last("zmq_connect", context: endpoint)
        }
    }

    /// Stops listening on a bound endpoint (use the resolved name from ``lastEndpoint``).
    public func unbind(_ endpoint: String) throws(ZMQError) {
        if zmq_unbind(try live("zmq_unbind"), endpoint) != 0 {
            throw ZMQError.last("zmq_unbind", context: endpoint)
        }
    }

    /// Disconnects from a connected endpoint.
    public func disconnect(_ endpoint: String) throws(ZMQError) {
        if zmq_disconnect(try live("zmq_disconnect"), endpoint) != 0 {
            throw ZMQError.last("zmq_disconnect", context: endpoint)
        }
    }

    /// The endpoint of the last bind or connect, with wildcards resolved
    /// (`tcp://127.0.0.1:*` → `tcp://127.0.0.1:41234`).
    public var lastEndpoint: String {
        get throws(ZMQError) { try stringOption(ZMQ_LAST_ENDPOINT, "ZMQ_LAST_ENDPOINT") }
    }

    // MARK: Sending

    /// Sends one frame, copying `bytes` into the message.
    /// - Returns: `false` if the frame could not be queued within `wait` (high-water mark reached).
    @discardableResult
    public func send(
        _ bytes: UnsafeRawBufferPointer, more: Bool = false, wait: ZMQWait = .blocking
    ) throws(ZMQError) -> Bool {
        let handle = try live("zmq_send")
        return try perform(wait, events: Int16(ZMQ_POLLOUT), "zmq_send") { (flags: Int32) -> Int32 in
            zmq_send(handle, bytes.baseAddress, bytes.count, flags | (more ? ZMQ_SNDMORE : 0))
        }
    }

    /// Sends one frame holding a copy of `bytes`.
    @discardableResult
    public func send(_ bytes: [UInt8], more: Bool = false, wait: ZMQWait = .blocking) throws(ZMQError) -> Bool
    {
        try bytes.withUnsafeBytes { raw in
            Result { () throws(ZMQError) -> Bool in try send(raw, more: more, wait: wait) }
        }.get()
    }

    /// Sends one frame holding the UTF-8 bytes of `string`.
    @discardableResult
    public func send(_ string: String, more: Bool = false, wait: ZMQWait = .blocking) throws(ZMQError) -> Bool
    {
        try send(Array(string.utf8), more: more, wait: wait)
    }

    /// Sends `buffer` without copying it: libzmq holds a reference until the bytes are written.
    @discardableResult
    public func send(_ buffer: ZMQBuffer, more: Bool = false, wait: ZMQWait = .blocking) throws(ZMQError)
        -> Bool
    {
        let handle = try live("zmq_msg_send")
        var msg = zmq_msg_t()
        let hint = Unmanaged.passRetained(buffer).toOpaque()
        guard zmq_msg_init_data(&msg, buffer.base, buffer.count, zmqReleaseBuffer, hint) == 0 else {
            Unmanaged<ZMQBuffer>.fromOpaque(hint).release()
            throw ZMQError.last("zmq_msg_init_data")
        }
        let sent: Bool
        do throws(ZMQError) {
            sent = try perform(wait, events: Int16(ZMQ_POLLOUT), "zmq_msg_send") { (flags: Int32) -> Int32 in
                zmq_msg_send(&msg, handle, flags | (more ? ZMQ_SNDMORE : 0))
            }
        } catch {
            zmq_msg_close(&msg)  // releases the buffer reference
            throw error
        }
        if !sent { zmq_msg_close(&msg) }
        return sent
    }

    /// Sends a multipart message atomically (all frames or none are delivered): the one loop over
    /// frames of every sender (bytes, zero-copy buffers, received messages, or any ``ZMQFrame``).
    /// - Returns: `false` if the first frame could not be queued within `wait`. Once the first frame
    ///   is queued the rest are sent blocking (within the socket's send timeout, if it has one), so
    ///   a multipart message is never left half-sent by this call.
    /// - Throws: `ZMQError` `EAGAIN` if a later frame timed out (the socket's send timeout).
    @discardableResult
    public func send<Frame: ZMQFrame>(multipart frames: [Frame], wait: ZMQWait = .blocking) throws(ZMQError)
        -> Bool
    {
        precondition(!frames.isEmpty, "a message has at least one frame")
        for (i, frame) in frames.enumerated() {
            let more = i + 1 < frames.count
            guard try frame.send(on: self, more: more, wait: i == 0 ? wait : .blocking) else {
                if i == 0 { return false }
                throw ZMQError(operation: "zmq_send", code: EAGAIN, context: "frame \(i + 1) timed out")
            }
        }
        return true
    }

    // MARK: Receiving

    /// Receives one frame as an owned message (the bytes are not copied out of libzmq).
    /// - Returns: `nil` if nothing arrived within `wait` (or within the socket's receive timeout).
    public func receive(wait: ZMQWait = .blocking) throws(ZMQError) -> ZMQMessage? {
        let handle = try live("zmq_msg_recv")
        let msg = UnsafeMutablePointer<zmq_msg_t>.allocate(capacity: 1)
        zmq_msg_init(msg)
        let got: Bool
        do throws(ZMQError) {
            got = try perform(wait, events: Int16(ZMQ_POLLIN), "zmq_msg_recv") { (flags: Int32) -> Int32 in
                zmq_msg_recv(msg, handle, flags)
            }
        } catch {
            zmq_msg_close(msg)
            msg.deallocate()
            throw error
        }
        guard got else {
            zmq_msg_close(msg)
            msg.deallocate()
            return nil
        }
        return ZMQMessage(taking: msg, hasMore: zmq_msg_more(msg) != 0)
    }

    /// Receives all frames of one multipart message.
    /// - Returns: `nil` if nothing arrived within `wait`. Frames after the first never wait: libzmq
    ///   delivers multipart messages atomically.
    public func receiveMultipart(wait: ZMQWait = .blocking) throws(ZMQError) -> [ZMQMessage]? {
        guard let first = try receive(wait: wait) else { return nil }
        var frames = [first]
        while frames[frames.count - 1].hasMore {
            guard let next = try receive(wait: .blocking) else { break }
            frames.append(next)
        }
        return frames
    }

    /// Receives one frame into a reused buffer and lends it to `body` (no allocation, no copy).
    /// The view is valid only inside `body`.
    /// - Returns: `nil` if nothing arrived within `wait`; otherwise `body`'s result.
    public func receive<R>(
        wait: ZMQWait = .blocking, _ body: (_ bytes: UnsafeRawBufferPointer, _ more: Bool) throws -> R
    ) throws -> R? {
        let handle = try live("zmq_msg_recv")
        let msg = scratch
        let got = try perform(wait, events: Int16(ZMQ_POLLIN), "zmq_msg_recv") { (flags: Int32) -> Int32 in
            zmq_msg_recv(msg, handle, flags)
        }
        guard got else { return nil }
        let bytes = UnsafeRawBufferPointer(start: zmq_msg_data(msg), count: zmq_msg_size(msg))
        return try body(bytes, zmq_msg_more(msg) != 0)
    }

    // MARK: Waiting

    /// Runs a libzmq operation with the given wait mode. `op` receives extra flags and returns the
    /// C result (−1 on error). Returns `false` when the operation would block (`EAGAIN`); retries on
    /// `EINTR`; throws every other error.
    private func perform(
        _ wait: ZMQWait, events: Int16, _ name: String, _ op: (Int32) -> Int32
    ) throws(ZMQError) -> Bool {
        switch wait {
        case .blocking:
            while true {
                if op(0) >= 0 { return true }
                let error = ZMQError.last(name)
                if error.isInterrupted { continue }
                if error.isAgain { return false }
                throw error
            }
        case .nonBlocking:
            if op(ZMQ_DONTWAIT) >= 0 { return true }
            let error = ZMQError.last(name)
            if error.isAgain || error.isInterrupted { return false }
            throw error
        case .timeout(let limit):
            let clock = ContinuousClock()
            let deadline = clock.now.advanced(by: limit)
            while true {
                if op(ZMQ_DONTWAIT) >= 0 { return true }
                let error = ZMQError.last(name)
                if !error.isAgain && !error.isInterrupted { throw error }
                let left = clock.now.duration(to: deadline)
                if left <= .zero { return false }
                _ = try poll(events: events, timeout: left)
            }
        }
    }

    /// Polls this socket alone for `events`; returns the events that are ready.
    func poll(events: Int16, timeout: Duration) throws(ZMQError) -> Int16 {
        var item = zmq_pollitem_t(socket: try live("zmq_poll"), fd: 0, events: events, revents: 0)
        let rc = zmq_poll(&item, 1, timeout.zmqMilliseconds)
        if rc < 0 {
            let error = ZMQError.last("zmq_poll")
            if error.isInterrupted { return 0 }
            throw error
        }
        return item.revents
    }
}

/// One frame of a multipart message, as ``ZMQSocket/send(multipart:wait:)`` sends it.
public protocol ZMQFrame {
    /// Sends this frame on `socket`; `false` if it could not be queued within `wait`.
    func send(on socket: ZMQSocket, more: Bool, wait: ZMQWait) throws(ZMQError) -> Bool
}

extension Array: ZMQFrame where Element == UInt8 {
    public func send(on socket: ZMQSocket, more: Bool, wait: ZMQWait) throws(ZMQError) -> Bool {
        try socket.send(self, more: more, wait: wait)
    }
}

extension ZMQBuffer: ZMQFrame {
    public func send(on socket: ZMQSocket, more: Bool, wait: ZMQWait) throws(ZMQError) -> Bool {
        try socket.send(self, more: more, wait: wait)
    }
}

extension ZMQMessage: ZMQFrame {
    public func send(on socket: ZMQSocket, more: Bool, wait: ZMQWait) throws(ZMQError) -> Bool {
        try withUnsafeBytes { (raw) throws(ZMQError) in try socket.send(raw, more: more, wait: wait) }
    }
}
