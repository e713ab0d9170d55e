import Distributed

/// Why a remote call failed without an answer from the target method.
///
/// Every pending call ends exactly once: with the target's value, with the error it threw
/// (``RemoteError`` or the original type, see ``ReinActorSystem/Settings/transportableErrors``), or
/// with one of these.
public struct RemoteCallError: DistributedActorSystemError, Hashable, CustomStringConvertible {
    /// What went wrong. Extensible; its raw value travels in replies.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let rawValue: UInt16
        public init(rawValue: UInt16) { self.rawValue = rawValue }

        /// No reply within the call's timeout.
        public static let timedOut = Code(rawValue: 1)
        /// The calling task was cancelled.
        public static let cancelled = Code(rawValue: 2)
        /// The callee's node was declared dead (heartbeat miss, transport failure) or is unreachable.
        public static let peerLost = Code(rawValue: 3)
        /// The callee's node left cleanly.
        public static let peerLeft = Code(rawValue: 4)
        /// This actor system was shut down.
        public static let systemShutDown = Code(rawValue: 5)
        /// The callee's node has no actor with that ID.
        public static let deadLetter = Code(rawValue: 6)
        /// The callee's node could not decode or run the invocation (unknown target or type,
        /// missing or undecodable argument).
        public static let invocationFailed = Code(rawValue: 7)
        /// The reply could not be decoded as the expected result.
        public static let badReply = Code(rawValue: 8)
        /// The target is not a method of the callee's actor type (refused before anything ran).
        public static let wrongType = Code(rawValue: 9)
        /// The caller's role may not call this method (refused before its arguments were decoded;
        /// see ``CallerChecked``).
        public static let forbidden = Code(rawValue: 10)

        public var description: String {
            switch self {
            case .timedOut: "timed out"
            case .cancelled: "cancelled"
            case .peerLost: "peer lost"
            case .peerLeft: "peer left"
            case .systemShutDown: "system shut down"
            case .deadLetter: "dead letter"
            case .invocationFailed: "invocation failed"
            case .badReply: "bad reply"
            case .wrongType: "wrong actor type"
            case .forbidden: "forbidden"
            default: "code \(rawValue)"
            }
        }
    }

    /// What went wrong.
    public let code: Code
    /// One line naming the call (callee, target) and the cause.
    public let context: String

    /// An error with `code` and a one-line `context`.
    public init(_ code: Code, _ context: String) {
        self.code = code
        self.context = context
    }

    public var description: String { "remote call \(code): \(context)" }
}

/// An error thrown by the remote target whose type is not transported: its type name and message.
public struct RemoteError: DistributedActorSystemError, Hashable, CustomStringConvertible {
    /// The fully qualified type name of the error the target threw, e.g. `Learner.StaleBatch`.
    public let errorType: String
    /// `String(describing:)` of the error on the remote side.
    public let message: String

    /// The error `errorType` with `message`, as thrown on the remote side.
    public init(errorType: String, message: String) {
        self.errorType = errorType
        self.message = message
    }

    public var description: String { "remote \(errorType): \(message)" }
}

/// Why ``ReinActorSystem/resolve(id:as:)`` could not produce an actor or a proxy.
public struct ResolveError: DistributedActorSystemError, Hashable, CustomStringConvertible {
    /// What went wrong. Extensible.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        /// The ID names this node, but no live actor holds it.
        public static let deadLetter = Code(name: "dead letter")
        /// The local actor with that ID has another type than the one asked for.
        public static let wrongType = Code(name: "wrong type")
        /// A reference was decoded without a ``ReinActorSystem`` in the decoder's `userInfo`.
        public static let noSystem = Code(name: "no actor system")
        public var description: String { name }
    }

    /// What went wrong.
    public let code: Code
    /// One line naming the offending ID, type or argument.
    public let context: String

    /// An error with `code` and a one-line `context`.
    public init(_ code: Code, _ context: String) {
        self.code = code
        self.context = context
    }

    public var description: String { "resolve \(code): \(context)" }
}

/// Why an invocation could not be decoded on the receiving side (reported to the caller as
/// ``RemoteCallError/Code/invocationFailed``).
public struct InvocationDecodingError: DistributedActorSystemError, Hashable, CustomStringConvertible {
    /// What went wrong. Extensible.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        /// A generic substitution names a type this process does not have.
        public static let unknownType = Code(name: "unknown type")
        /// The target asked for more arguments than the call carries.
        public static let missingArgument = Code(name: "missing argument")
        public var description: String { name }
    }

    /// What went wrong.
    public let code: Code
    /// One line naming the offending ID, type or argument.
    public let context: String

    /// An error with `code` and a one-line `context`.
    public init(_ code: Code, _ context: String) {
        self.code = code
        self.context = context
    }

    public var description: String { "invocation \(code): \(context)" }
}
