/// Moves ``WireMessage``s between nodes; the actor system's only view of the network.
///
/// Two implementations: ``InMemoryTransport`` (nodes on an ``InMemoryBus`` in one process, for
/// tests, with kills and partitions) and ``ZMQTransport`` (ZeroMQ ROUTER/DEALER sockets driven by
/// one owner thread).
///
/// Contract:
/// * ``send(_:to:)`` never blocks and never throws: it queues. A message that cannot be routed
///   produces a ``TransportEvent/lost(_:reason:)`` event for that node, so pending calls to it
///   fail promptly instead of waiting for their timeout.
/// * Events are delivered in batches to the handler given to ``start(_:)``, in order per sender,
///   on a thread the transport owns. The handler must return quickly and never block.
/// * The transport stamps ``WireHeader/sender`` and ``WireHeader/sequence`` on what it sends.
public protocol ReinTransport: AnyObject, Sendable {
    /// This node's identity (the `sender` of every message it sends).
    var localNode: NodeID { get }
    /// This node's human-readable name.
    var localName: String { get }
    /// Where refused inbound messages are counted by reason (the actor system counts its own
    /// refusals, wrong-type and forbidden calls, here too).
    var rejections: WireRejections { get }

    /// Starts delivering events to `handler`. Called once, by the actor system.
    func start(_ handler: @escaping @Sendable ([TransportEvent]) -> Void)

    /// Queues `message` for `node`. Never blocks.
    func send(_ message: WireMessage, to node: NodeID)

    /// Connects to the node at `address` (a ZeroMQ endpoint, or a node name on an in-memory bus),
    /// waits for its handshake, and returns it. Its ``TransportEvent/joined(_:)`` event has been
    /// delivered when this returns.
    func connect(to address: String, timeout: Duration) async throws -> Member

    /// Forgets `node` (declared dead by the system): drops its connection and its queued messages.
    func disconnect(_ node: NodeID)

    /// Tells connected peers this node is leaving, stops delivering events and releases threads
    /// and sockets. Idempotent.
    func shutdown() async

    /// A new incarnation of this node: a transport with the same configuration (name, bind,
    /// limits, security, rejection counters) and a new ``NodeID``, connected to nobody. Peers that
    /// declared this node dead keep it dead (see ``ReinActorSystem``), so a process that wants to
    /// talk to them again does so as its successor. Shut this transport down first if it binds.
    func successor() throws -> any ReinTransport
}

/// What a transport reports to the actor system.
public enum TransportEvent: Sendable {
    /// A decoded, checked message from a peer.
    case message(WireMessage)
    /// A peer completed its handshake (``Member/publicKey``: the CURVE key its connection
    /// authenticated with, if any).
    case joined(Member)
    /// A peer said it is leaving.
    case left(NodeID)
    /// A peer cannot be reached any more (killed, connection refused, no route).
    case lost(NodeID, reason: String)
}
