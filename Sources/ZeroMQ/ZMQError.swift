import CZeroMQ

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// An error reported by libzmq, with the operation that failed, its `errno` and libzmq's text.
///
/// Compare errors by ``code``; use the named checks (``isAgain``, ``isTerminated``…) for the cases
/// callers handle.
public struct ZMQError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The libzmq call or wrapper operation that failed, e.g. `"zmq_bind"`.
    public var operation: String
    /// The `errno` value reported by `zmq_errno()`.
    public var code: Int32
    /// `zmq_strerror(code)`.
    public var message: String
    /// Extra context (an endpoint, an option name), if any.
    public var context: String?

    public init(operation: String, code: Int32, context: String? = nil) {
        self.operation = operation
        self.code = code
        self.message = String(cString: zmq_strerror(code))
        self.context = context
    }

    /// Captures `zmq_errno()` for a call that just failed.
    static func last(_ operation: String, context: String? = nil) -> ZMQError {
        ZMQError(operation: operation, code: zmq_errno(), context: context)
    }

    /// The operation would block (`EAGAIN`): nothing to receive, or a send queue is full, or a
    /// timeout expired.
    public var isAgain: Bool { code == EAGAIN }
    /// The context was shut down or terminated (`ETERM`); the socket must be closed.
    public var isTerminated: Bool { code == ZMQ_ETERM_CODE }
    /// A signal interrupted the call (`EINTR`).
    public var isInterrupted: Bool { code == EINTR }
    /// A ROUTER socket with `ZMQ_ROUTER_MANDATORY` has no peer with that routing id.
    public var isHostUnreachable: Bool { code == EHOSTUNREACH }
    /// The endpoint is already bound by someone else.
    public var isAddressInUse: Bool { code == EADDRINUSE }

    public var description: String {
        let where_ = context.map { "(\($0))" } ?? ""
        if isTerminated {
            return "\(operation)\(where_) failed: context terminated"
        }
        return "\(operation)\(where_) failed: \(message) (errno \(code))"
    }
}

/// `ETERM` from zmq.h (`ZMQ_HAUSNUMERO + 53`), spelled out because the macro expression is not
/// imported into Swift.
let ZMQ_ETERM_CODE: Int32 = 156_384_712 + 53
