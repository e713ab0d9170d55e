import CZeroMQ

/// A libzmq context: the container of I/O threads and the factory of sockets.
///
/// Contexts are thread-safe (libzmq guarantees it), so this type is `Sendable` and can be shared
/// between the threads that own sockets.
///
/// Shutdown is two-phase, as in libzmq:
/// 1. ``shutdown()`` makes every blocking call on every socket of this context return
///    ``ZMQError/isTerminated`` ("context terminated") at once, and makes later calls fail the same
///    way. Owners then close their sockets.
/// 2. The context is terminated (`zmq_ctx_term`) when the last reference goes away, which is after
///    every socket was closed, because each ``ZMQSocket`` keeps its context alive.
///
/// Unlike libzmq's default, new sockets start with a linger of zero (the context is created with
/// `ZMQ_BLOCKY` off): closing a socket drops what it could not deliver, so terminating a context can
/// never hang on a peer that is gone. A socket that must flush on close sets
/// ``ZMQSocket/setLinger(_:)`` itself.
public final class ZMQContext: Sendable {
    /// The raw `void*` context; libzmq contexts are thread-safe.
    nonisolated(unsafe) let handle: UnsafeMutableRawPointer

    /// Creates a context.
    /// - Parameters:
    ///   - ioThreads: libzmq I/O threads (1 is enough below ~1 GB/s).
    ///   - maxSockets: the most sockets open at once (`ZMQ_MAX_SOCKETS`; libzmq's default is
    ///     1,023, which hundreds of peers in one process — each with its monitor sockets — exceed).
    public init(ioThreads: Int = 1, maxSockets: Int? = nil) throws(ZMQError) {
        guard let handle = zmq_ctx_new() else { throw ZMQError.last("zmq_ctx_new") }
        self.handle = handle
        var options = [
            (ZMQ_IO_THREADS, "ZMQ_IO_THREADS", Int32(ioThreads)), (ZMQ_BLOCKY, "ZMQ_BLOCKY", 0),
        ]
        if let maxSockets {
            options.append((ZMQ_MAX_SOCKETS, "ZMQ_MAX_SOCKETS", Int32(clamping: maxSockets)))
        }
        for (option, name, value) in options where zmq_ctx_set(handle, option, value) != 0 {
            let error = ZMQError.last("zmq_ctx_set", context: "\(name)=\(value)")
            zmq_ctx_term(handle)
            throw error
        }
    }

    /// Makes all blocking operations on this context's sockets return "context terminated" and
    /// refuses new ones. Idempotent and safe to call from any thread.
    public func shutdown() {
        _ = zmq_ctx_shutdown(handle)
    }

    /// Creates a socket of the given type. The calling thread becomes its owner (see ``ZMQSocket``).
    public func socket(_ type: ZMQSocketType) throws(ZMQError) -> ZMQSocket {
        try ZMQSocket(context: self, type: type)
    }

    deinit {
        // Every socket holds a strong reference to its context, so all of them are closed here and
        // zmq_ctx_term only waits for their linger periods.
        while zmq_ctx_term(handle) != 0 && zmq_errno() == EINTR {}
    }
}
