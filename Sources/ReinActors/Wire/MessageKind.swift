/// What a message is; the `kind` field of ``WireHeader``. Unknown values are rejected.
public enum MessageKind: UInt16, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// First message on a new connection: the sender's node name. Answered by ``welcome``.
    case hello = 1
    /// Answer to ``hello``: the answering node's name.
    case welcome = 2
    /// The sender is shutting down cleanly; pending calls to it fail at once.
    case leave = 3
    /// Liveness signal; any message counts as one, these are sent when a link is otherwise idle.
    case heartbeat = 4
    /// A distributed-actor invocation: envelope frame + one frame per argument.
    case call = 5
    /// The outcome of a ``call``: envelope frame + optional value frame.
    case reply = 6
    /// Bulk data (sample batches, weights) on a dedicated socket: metadata frame + raw frames.
    case bulk = 7

    public var description: String {
        switch self {
        case .hello: "hello"
        case .welcome: "welcome"
        case .leave: "leave"
        case .heartbeat: "heartbeat"
        case .call: "call"
        case .reply: "reply"
        case .bulk: "bulk"
        }
    }
}
