import Dispatch
import Distributed
import Logging
import Synchronization
import ZeroMQ

/// Distributed actors declared in modules that import `ReinActors` use this system by default.
public typealias DefaultDistributedActorSystem = ReinActorSystem

/// A `DistributedActorSystem` whose nodes talk over a ``ReinTransport``: ZeroMQ between processes
/// (``ZMQTransport``), or an ``InMemoryBus`` in tests.
///
/// The mutable tables (local actors, pending calls, members) sit behind `Mutex`es rather than in
/// an actor, because `assignID`, `actorReady`, `resignID` and `resolve` are synchronous; no lock
/// is ever held across an `await`.
///
/// * Local actors are held **weakly**: keep a reference to an actor as long as it should serve.
/// * Every pending call ends exactly once — reply, remote error, timeout, cancellation, peer loss
///   or shutdown — through one completion point (see <doc:ReinActors>).
/// * Peers exchange heartbeats; a peer silent for ``Settings/heartbeatTimeout`` is declared dead,
///   its pending calls fail, and ``membershipEvents()`` reports it.
public final class ReinActorSystem: DistributedActorSystem, Sendable {
    public typealias ActorID = ReinActors.ActorID
    public typealias InvocationEncoder = ReinInvocationEncoder
    public typealias InvocationDecoder = ReinInvocationDecoder
    public typealias ResultHandler = ReinResultHandler
    public typealias SerializationRequirement = Codable

    /// This system's node.
    public var node: NodeID { transport.localNode }
    /// This system's node name.
    public var name: String { transport.localName }
    /// This node as a ``Member``.
    public var member: Member { Member(node: node, name: name) }

    /// Timeouts and error policy, fixed at creation.
    public let settings: Settings

    /// Starts measuring how long this node takes to answer the calls of `method` (a method name
    /// as ``InvocationTarget`` gives it, e.g. `requestWork(worker:haveVersion:inline:)`), from
    /// each call's arrival to its reply, and returns the record (the same one on every call).
    public func answerTimes(of method: String) -> AnswerTimes { answerTimeTable.times(of: method) }
    let logger: Logger
    let transport: any ReinTransport
    let pending: PendingCalls
    let membership = Membership()
    let actors = Mutex<[String: LocalActor]>([:])
    let nextCallID = Atomic<UInt64>(0)
    let nextIncarnation = Atomic<UInt64>(0)
    let policy = Atomic<UInt64>(0)
    let transportableErrors: [String: any (Error & Codable).Type]
    private let lifecycle = Mutex<Lifecycle>(.running(heartbeats: nil))
    let lastTick = Mutex<ContinuousClock.Instant?>(nil)
    /// Nodes this system connected to (their calls have the ``CallerRoles/learner`` role).
    let outbound = Mutex<Set<NodeID>>([])
    /// Rate limit of the log lines about peers ("peer dead", malformed calls and replies).
    let logLimit = LogRateLimit()
    /// The methods whose answer times are measured (none unless ``answerTimes(of:)`` asked).
    let answerTimeTable = AnswerTimeTable()

    private enum Lifecycle {
        case running(heartbeats: HeartbeatTimer?)
        case shutDown
    }

    /// Starts a system on `transport`.
    /// - Parameters:
    ///   - transport: the node's transport; the system starts it and owns it from now on.
    ///   - settings: timeouts and error policy.
    ///   - logger: where the system logs (it never configures logging itself).
    public init(transport: some ReinTransport, settings: Settings = Settings(), logger: Logger) {
        self.transport = transport
        self.settings = settings
        self.pending = PendingCalls(name: transport.localName)
        var logger = logger
        logger[metadataKey: "rein.node"] = "\(transport.localName)"
        self.logger = logger
        self.transportableErrors = Dictionary(
            settings.transportableErrors.map { (_typeName($0, qualified: true), $0) },
            uniquingKeysWith: { a, _ in a })
        transport.start { [weak self] events in self?.handle(events) }
        // Heartbeats run on their own serial queue, not on the cooperative pool, so a pool busy
        // with actor work cannot delay them into false "dead" verdicts.
        let timer = HeartbeatTimer(name: transport.localName, interval: settings.heartbeatInterval) {
            [weak self] in self?.heartbeatTick()
        }
        lifecycle.withLock { $0 = .running(heartbeats: timer) }
    }

    /// A system on a new node of `bus` (for tests).
    /// - Parameters:
    ///   - bus: the in-memory network.
    ///   - name: the node's name (``InMemoryTransport/connect(to:timeout:)`` finds nodes by name).
    ///   - settings: timeouts and error policy.
    ///   - logger: where the system logs.
    public convenience init(bus: InMemoryBus, name: String, settings: Settings = Settings(), logger: Logger) {
        self.init(transport: bus.makeTransport(name: name), settings: settings, logger: logger)
    }

    deinit {
        if case .running(let timer) = lifecycle.withLock({ $0 }) { timer?.cancel() }
    }

    /// The policy version stamped on every message this node sends (the learner's optimizer step).
    public var policyVersion: UInt64 {
        get { policy.load(ordering: .relaxed) }
        set { policy.store(newValue, ordering: .relaxed) }
    }

    /// The policy version in the last message received from `node`, if it is a member.
    public func lastPolicyVersion(of node: NodeID) -> UInt64? { membership.policyVersion(of: node) }

    /// The live peers (not including this node).
    public var members: [Member] { membership.members }

    /// Membership changes, starting with a `joined` event for every current peer. Each call
    /// returns a new, independent stream; it ends when the system shuts down.
    public func membershipEvents() -> AsyncStream<MembershipEvent> { membership.events() }

    /// Connects to the node at `address` (a ZeroMQ endpoint such as `tcp://host:7000`) and returns
    /// it once its handshake completed.
    ///
    /// Calls from that node have the ``CallerRoles/learner`` role here; calls from nodes that
    /// connected to this one have the ``CallerRoles/worker`` role.
    public func connect(to address: String, timeout: Duration = .seconds(5)) async throws -> Member {
        let member = try await transport.connect(to: address, timeout: timeout)
        _ = outbound.withLock { $0.insert(member.node) }
        return member
    }

    /// Inbound messages and calls this node refused, by reason (shared with its transport).
    public var rejections: WireRejections { transport.rejections }

    /// A new incarnation of this node: a system with the same transport configuration and
    /// settings on a new ``NodeID``, connected to nobody.
    ///
    /// A peer declared dead is tombstoned for good on both sides (its messages are ignored, its
    /// hello too), so a node that was only slow, or cut off for a while, cannot rejoin under its
    /// old id. A process that wants to carry on makes its successor, shuts this system down, and
    /// connects again as a new member. Shut this system down first if its transport binds.
    public func successor() throws -> ReinActorSystem {
        ReinActorSystem(transport: try transport.successor(), settings: settings, logger: logger)
    }

    /// Fails every pending call with ``RemoteCallError/Code/systemShutDown``, tells peers this node
    /// leaves, stops heartbeats and the transport's threads. Idempotent.
    public func shutdown() async {
        let heartbeats = lifecycle.withLock { state -> HeartbeatTimer?? in
            guard case .running(let heartbeats) = state else { return .none }
            state = .shutDown
            return .some(heartbeats)
        }
        guard case .some(let timer) = heartbeats else { return }
        timer?.cancel()
        pending.shutDown(with: RemoteCallError(.systemShutDown, "actor system \(name) shut down"))
        await transport.shutdown()
        membership.finish()
        logger.debug("actor system shut down")
    }

    /// Whether ``shutdown()`` was called.
    public var isShutDown: Bool {
        lifecycle.withLock {
            if case .shutDown = $0 { return true }
            return false
        }
    }

    /// Sends a message of `kind` from this node (stamped with the policy version).
    func send(_ kind: MessageKind, frames: [WireFrame], to node: NodeID) {
        let header = WireHeader(kind: kind, sender: self.node, policyVersion: policyVersion)
        let message = WireMessage(header: header, frames: frames)
        if node == self.node {
            handleLocal(message)  // a reference to a local actor resolved as remote
        } else {
            transport.send(message, to: node)
        }
    }

    func isTransportable(_ type: any Error.Type) -> Bool {
        transportableErrors[_typeName(type, qualified: true)] != nil
    }
}

extension ReinActorSystem {
    /// A system on a new ZeroMQ node.
    /// - Parameters:
    ///   - context: the process's ZeroMQ context.
    ///   - configuration: the node's name and bind endpoint (`nil` for connect-only nodes).
    ///   - settings: timeouts and error policy.
    ///   - logger: where the system and its transport log.
    public convenience init(
        context: ZMQContext, configuration: ZMQTransport.Configuration, settings: Settings = Settings(),
        logger: Logger
    ) throws {
        let transport = try ZMQTransport(context: context, configuration: configuration, logger: logger)
        self.init(transport: transport, settings: settings, logger: logger)
    }

    /// The endpoint this node's ROUTER listens on, if it runs on ZeroMQ and binds.
    public var endpoint: String? { (transport as? ZMQTransport)?.endpoint }
}
