import Dispatch
import Synchronization

/// One node of an ``InMemoryBus``.
public final class InMemoryTransport: ReinTransport {
    /// This node (random per transport, so per process incarnation).
    public let localNode: NodeID
    /// This node's name.
    public let localName: String
    /// Where refused inbound calls are counted.
    public let rejections = WireRejections()
    let bus: InMemoryBus
    private let queue: DispatchQueue
    private let sequence = Atomic<UInt64>(0)

    private struct Inbox {
        var events: [TransportEvent] = []
        var handler: (@Sendable ([TransportEvent]) -> Void)?
        var draining = false
        var dead = false
        var severed: Set<NodeID> = []
    }

    private let inbox = Mutex(Inbox())

    init(bus: InMemoryBus, node: NodeID, name: String) {
        self.bus = bus
        self.localNode = node
        self.localName = name
        self.queue = DispatchQueue(label: "rein.in-memory.\(name)")
    }

    var member: Member { Member(node: localNode, name: localName) }

    public func start(_ handler: @escaping @Sendable ([TransportEvent]) -> Void) {
        let schedule = inbox.withLock { inbox in
            inbox.handler = handler
            return scheduleDrain(&inbox)
        }
        if schedule { queue.async { self.drain() } }
    }

    public func send(_ message: WireMessage, to node: NodeID) {
        if inbox.withLock({ $0.dead || $0.severed.contains(node) }) { return }
        var header = message.header
        header.sender = localNode
        header.sequence = sequence.add(1, ordering: .relaxed).newValue
        let frames = WireMessage(header: header, frames: message.frames).encodedFrames()
        if !bus.deliver(frames, from: localNode, to: node) {
            enqueue(.lost(node, reason: "no such node on the bus"))
        }
    }

    public func successor() throws -> any ReinTransport { bus.makeTransport(name: localName) }

    public func connect(to address: String, timeout: Duration) async throws -> Member {
        guard let node = bus.node(named: address) else {
            throw RemoteCallError(.peerLost, "no node named \(address) on the bus")
        }
        return Member(node: node, name: address)
    }

    public func disconnect(_ node: NodeID) {
        _ = inbox.withLock { $0.severed.insert(node) }
    }

    public func shutdown() async {
        let wasAlive = inbox.withLock { inbox in
            defer {
                inbox.dead = true
                inbox.handler = nil
                inbox.events.removeAll()
            }
            return !inbox.dead
        }
        if wasAlive { bus.leave(localNode) }
    }

    /// Frames from the bus: decoded and checked exactly as the ZeroMQ transport does.
    func receive(_ frames: [WireFrame], from sender: NodeID) {
        do {
            enqueue(.message(try WireMessage.decode(frames)))
        } catch {
            // Unreachable with this transport's own encoder; kept for parity with ZeroMQ.
        }
    }

    func enqueue(_ event: TransportEvent) {
        let schedule = inbox.withLock { inbox -> Bool in
            if inbox.dead { return false }
            if case .message(let m) = event, inbox.severed.contains(m.header.sender) { return false }
            inbox.events.append(event)
            return scheduleDrain(&inbox)
        }
        if schedule { queue.async { self.drain() } }
    }

    /// Delivers what was already queued, then stops delivering anything (for ``InMemoryBus/kill(_:)``).
    func die() {
        queue.async {
            self.drain()
            self.inbox.withLock { inbox in
                inbox.dead = true
                inbox.handler = nil
                inbox.events.removeAll()
            }
        }
    }

    private func scheduleDrain(_ inbox: inout Inbox) -> Bool {
        guard inbox.handler != nil, !inbox.draining, !inbox.events.isEmpty else { return false }
        inbox.draining = true
        return true
    }

    private func drain() {
        while true {
            let next = inbox.withLock { inbox -> (([TransportEvent]) -> Void, [TransportEvent])? in
                guard let handler = inbox.handler, !inbox.events.isEmpty else {
                    inbox.draining = false
                    return nil
                }
                defer { inbox.events.removeAll(keepingCapacity: true) }
                return (handler, inbox.events)
            }
            guard let (handler, batch) = next else { return }
            handler(batch)
        }
    }
}
