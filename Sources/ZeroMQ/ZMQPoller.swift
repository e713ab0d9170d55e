import CZeroMQ

/// Events a poll can wait for or report.
public struct ZMQPollEvents: OptionSet, Sendable, Hashable {
    public let rawValue: Int16
    public init(rawValue: Int16) { self.rawValue = rawValue }
    /// A message can be received without blocking.
    public static let readable = ZMQPollEvents(rawValue: Int16(ZMQ_POLLIN))
    /// A message can be sent without blocking.
    public static let writable = ZMQPollEvents(rawValue: Int16(ZMQ_POLLOUT))
}

/// Waits on several sockets at once (`zmq_poll`). Used, like the sockets, by one owner thread.
public struct ZMQPoller {
    private var sockets: [ZMQSocket] = []
    private var interests: [ZMQPollEvents] = []

    public init() {}

    /// Adds a socket; returns its index in the results of ``poll(timeout:)``.
    @discardableResult
    public mutating func add(_ socket: ZMQSocket, events: ZMQPollEvents = .readable) -> Int {
        sockets.append(socket)
        interests.append(events)
        return sockets.count - 1
    }

    /// Waits until at least one socket is ready or `timeout` passes (`nil` = forever).
    /// - Returns: the ready events per socket, in the order they were added (empty sets on timeout).
    public func poll(timeout: Duration?) throws(ZMQError) -> [ZMQPollEvents] {
        var items: [zmq_pollitem_t] = []
        items.reserveCapacity(sockets.count)
        for (socket, events) in zip(sockets, interests) {
            items.append(
                zmq_pollitem_t(
                    socket: try socket.live("zmq_poll"), fd: 0, events: events.rawValue, revents: 0))
        }
        let ms = timeout.map { $0.zmqMilliseconds } ?? -1
        let rc = items.withUnsafeMutableBufferPointer { zmq_poll($0.baseAddress, Int32($0.count), ms) }
        if rc < 0 {
            let error = ZMQError.last("zmq_poll")
            if !error.isInterrupted { throw error }
            return Array(repeating: [], count: items.count)
        }
        return items.map { ZMQPollEvents(rawValue: $0.revents) }
    }
}
