import Synchronization

/// A network of in-memory nodes in one process, for tests: every node reaches every other, and
/// tests can kill nodes and cut links.
///
/// Delivery is asynchronous (each node drains its inbox on its own serial queue, in batches), in
/// order per sender, and goes through the same ``WireMessage`` framing as the ZeroMQ transport
/// (headers are encoded and checked on every hop), so the actor system runs the same code paths.
public final class InMemoryBus: Sendable {
    private struct State {
        var nodes: [NodeID: InMemoryTransport] = [:]
        var cut: Set<Link> = []
    }

    private struct Link: Hashable {
        let a: NodeID
        let b: NodeID
        init(_ x: NodeID, _ y: NodeID) {
            (a, b) = x.rawValue < y.rawValue ? (x, y) : (y, x)
        }
    }

    private let state = Mutex(State())

    /// An empty bus.
    public init() {}

    /// Adds a node named `name`; every current node learns of it, and it learns of them.
    public func makeTransport(name: String) -> InMemoryTransport {
        let transport = InMemoryTransport(bus: self, node: .random(), name: name)
        let others = state.withLock { state in
            defer { state.nodes[transport.localNode] = transport }
            return Array(state.nodes.values)
        }
        for other in others {
            other.enqueue(.joined(transport.member))
            transport.enqueue(.joined(other.member))
        }
        return transport
    }

    /// The node named `name`, if it is on the bus.
    public func node(named name: String) -> NodeID? {
        state.withLock { $0.nodes.values.first { $0.localName == name }?.localNode }
    }

    /// Kills `node` as a crash would: it vanishes from the bus, every other node is told at once
    /// that it was lost, and the killed node loses every peer.
    public func kill(_ node: NodeID) {
        let (victim, others) = state.withLock { state in
            (state.nodes.removeValue(forKey: node), Array(state.nodes.values))
        }
        guard let victim else { return }
        for other in others {
            other.enqueue(.lost(node, reason: "killed"))
            victim.enqueue(.lost(other.localNode, reason: "killed (this node)"))
        }
        victim.die()
    }

    /// Silently drops every message between `a` and `b` (both ways) until ``heal(_:_:)``; only
    /// heartbeats can notice.
    public func partition(_ a: NodeID, _ b: NodeID) {
        _ = state.withLock { $0.cut.insert(Link(a, b)) }
    }

    /// Restores the link between `a` and `b`.
    public func heal(_ a: NodeID, _ b: NodeID) {
        _ = state.withLock { $0.cut.remove(Link(a, b)) }
    }

    func leave(_ node: NodeID) {
        let others = state.withLock { state in
            state.nodes.removeValue(forKey: node) != nil ? Array(state.nodes.values) : []
        }
        for other in others { other.enqueue(.left(node)) }
    }

    /// Routes `frames` from `sender` to `node`; `false` if `node` is not on the bus.
    func deliver(_ frames: [WireFrame], from sender: NodeID, to node: NodeID) -> Bool {
        let target = state.withLock { state -> InMemoryTransport?? in
            guard let target = state.nodes[node] else { return .none }
            if state.nodes[sender] == nil || state.cut.contains(Link(sender, node)) { return .some(nil) }
            return .some(target)
        }
        switch target {
        case .none: return false
        case .some(nil): return true  // cut link or dead sender: dropped silently
        case .some(let target?):
            target.receive(frames, from: sender)
            return true
        }
    }
}
