import Distributed

/// Who may call a distributed method, by the caller's position relative to this node.
///
/// The role of a remote caller comes from the transport, never from the message: a peer that
/// connected to this node (a rollout worker, seen from the learner) is a ``worker``; a peer this
/// node connected to with ``ReinActorSystem/connect(to:timeout:)`` (the learner, seen from a
/// worker) is a ``learner``. Calls made in this process — directly on a local actor, or through a
/// reference to a local actor resolved as remote — come from the ``localOperator``; no message
/// from the network ever has that role.
public struct CallerRoles: OptionSet, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// A peer that connected to this node.
    public static let worker = CallerRoles(rawValue: 1 << 0)
    /// A peer this node connected to.
    public static let learner = CallerRoles(rawValue: 1 << 1)
    /// This process.
    public static let localOperator = CallerRoles(rawValue: 1 << 2)
    /// Any connected peer (and this process).
    public static let anyPeer: CallerRoles = [.worker, .learner, .localOperator]

    public var description: String {
        let names = [(Self.worker, "worker"), (.learner, "learner"), (.localOperator, "local operator")]
            .filter { contains($0.0) }.map(\.1)
        return names.isEmpty ? "nobody" : names.joined(separator: " or ")
    }
}

/// The caller of the distributed method that is running, as the transport authenticated it.
///
/// The actor system binds it to the running invocation (see ``ReinActorSystem/caller``); a callee
/// acts on it, never on an identity passed as an argument.
public struct CallerIdentity: Hashable, Sendable, CustomStringConvertible {
    /// The caller's node: the ZeroMQ routing id its connection was bound to at `hello`.
    public var node: NodeID
    /// The name it gave in its handshake (informative only: not authenticated).
    public var name: String
    /// The CURVE public key (Z85) its connection authenticated with; `nil` without CURVE.
    public var publicKey: String?
    /// Its role: exactly one of ``CallerRoles/worker``, ``CallerRoles/learner``.
    public var role: CallerRoles

    /// A caller on `node` named `name`, with `role` and the CURVE key it authenticated with.
    public init(node: NodeID, name: String, publicKey: String? = nil, role: CallerRoles) {
        self.node = node
        self.name = name
        self.publicKey = publicKey
        self.role = role
    }

    public var description: String {
        "\(role) \(name) (\(node))" + (publicKey.map { " key \($0.prefix(8))…" } ?? "")
    }
}

/// A distributed actor that states, for each of its distributed methods, who may call it.
///
/// The actor system checks a remote call against ``allowedCallers`` before it decodes a single
/// argument: a method not listed, or a caller whose role is not listed for it, is refused with
/// ``RemoteCallError/Code/forbidden``, counted as ``WireRejections/forbidden`` and logged
/// (rate-limited). Calls in this process are not checked.
///
/// Actors that do not adopt this protocol accept every method from every connected peer (the
/// target still has to be a method of the actor's own type).
public protocol CallerChecked: DistributedActor where ActorSystem == ReinActorSystem {
    /// Who may call each distributed method, keyed by its name with argument labels, as in
    /// `requestWork(worker:haveVersion:inline:)`.
    static var allowedCallers: [String: CallerRoles] { get }
}

extension ReinActorSystem {
    /// The remote caller of the distributed method running in this task, bound by the actor system
    /// from the transport; `nil` for a call made in this process.
    @TaskLocal public static var caller: CallerIdentity?

    /// The node a distributed method should act for: the remote caller's own node (an id in the
    /// arguments is ignored), or `claimed` when the call was made in this process.
    public static func actingNode(claimed: NodeID) -> NodeID { caller?.node ?? claimed }
}
