/// The identity of a distributed actor: the node hosting it, its name there, and its incarnation.
///
/// Names are either *well-known* (chosen by the program, e.g. `learner`, `rollout-3`; see
/// ``ReinActorSystem/withName(_:_:)``) or anonymous (`$17`, assigned by the system and never
/// reused). The incarnation tells apart successive actors that held the same name on one node; an
/// ID built from a name alone (``wellKnown(_:on:)``) has incarnation 0 and reaches whichever actor
/// holds the name when the call arrives. A restarted process is a new ``NodeID``, so references
/// into an old process never reach a new one.
public struct ActorID: Hashable, Sendable, Codable, CustomStringConvertible {
    /// The node hosting the actor.
    public var node: NodeID
    /// The actor's name on its node.
    public var name: String
    /// Which actor of that name (0: any).
    public var incarnation: UInt64

    /// The ID of actor `name` (incarnation `incarnation`, 0 = any) on `node`.
    public init(node: NodeID, name: String, incarnation: UInt64 = 0) {
        self.node = node
        self.name = name
        self.incarnation = incarnation
    }

    /// The ID of the actor holding the well-known `name` on `node`, whatever its incarnation.
    public static func wellKnown(_ name: String, on node: NodeID) -> ActorID {
        ActorID(node: node, name: name)
    }

    /// Whether the name was chosen by the program rather than assigned by the system.
    public var isWellKnown: Bool { !name.hasPrefix("$") }

    public var description: String {
        incarnation == 0 || !isWellKnown ? "\(name)@\(node)" : "\(name)#\(incarnation)@\(node)"
    }
}
