import Synchronization

/// A node of the cluster as the actor system sees it.
public struct Member: Hashable, Sendable, CustomStringConvertible {
    /// The node's identity.
    public var node: NodeID
    /// Its human-readable name (e.g. `learner`, `worker-3`).
    public var name: String
    /// The CURVE public key (Z85) its connection authenticated with (`nil` without CURVE).
    public var publicKey: String?

    /// A member named `name` on `node`, authenticated with `publicKey` (if CURVE is on).
    public init(node: NodeID, name: String, publicKey: String? = nil) {
        self.node = node
        self.name = name
        self.publicKey = publicKey
    }

    public var description: String { "\(name) (\(node))" }
}

/// A change of membership, in the order the system observed it.
public enum MembershipEvent: Hashable, Sendable {
    /// A node completed its handshake (or was already a member when the subscription started).
    case joined(Member)
    /// A node left cleanly.
    case left(Member)
    /// A node was declared dead: heartbeat timeout or transport failure.
    case dead(Member, reason: String)
}

/// Members, their liveness, and the subscribers to membership events.
///
/// A node that left or died is remembered (a tombstone): its messages are ignored from then on and
/// calls to it fail at once. A restarted process has a new ``NodeID`` and joins as a new member.
/// The newest ``maxTombstones`` are kept: a stranger saying hello under ever new ids (each one a
/// member until the heartbeats declare it dead) cannot grow the table without bound, and a node
/// dead that long ago has no messages left in flight.
final class Membership: Sendable {
    private struct Entry {
        var member: Member
        var lastSeen: ContinuousClock.Instant
        var policyVersion: UInt64
    }

    private struct State {
        var alive: [NodeID: Entry] = [:]
        /// Nodes that left (`true`) or died (`false`).
        var gone: [NodeID: Bool] = [:]
        /// The tombstones in the order they were made, from `goneHead` on (the oldest first).
        var goneOrder: [NodeID] = []
        var goneHead = 0
        var subscribers: [Int: AsyncStream<MembershipEvent>.Continuation] = [:]
        var nextSubscriber = 0
        var finished = false
    }

    private let state = Mutex(State())
    /// The most tombstones kept (the oldest are forgotten first).
    let maxTombstones: Int
    /// Held while events go to the subscribers (taken before `state`), so that they arrive in the
    /// order of the changes. Events are never yielded while `state` is held: a yield resumes the
    /// subscriber's task and needs that task's status lock, while a task being cancelled holds its
    /// status lock and runs the stream's termination handler, which takes `state` — a deadlock
    /// seen under a hello flood. The termination handler never takes this lock.
    private let delivery = Mutex(())
    private let clock = ContinuousClock()

    /// Empty membership that keeps at most `maxTombstones` tombstones.
    init(maxTombstones: Int = 65_536) {
        precondition(maxTombstones > 0)
        self.maxTombstones = maxTombstones
    }

    /// Tombstones kept now.
    var tombstoneCount: Int { state.withLock { $0.gone.count } }

    /// Adds a member; returns `false` if it is already one or is gone.
    func join(_ member: Member) -> Bool {
        delivery.withLock { _ in
            let subscribers = state.withLock { state -> [AsyncStream<MembershipEvent>.Continuation]? in
                guard state.alive[member.node] == nil, state.gone[member.node] == nil, !state.finished else {
                    return nil
                }
                state.alive[member.node] = Entry(member: member, lastSeen: clock.now, policyVersion: 0)
                return Array(state.subscribers.values)
            }
            guard let subscribers else { return false }
            for c in subscribers { c.yield(.joined(member)) }
            return true
        }
    }

    /// Records a message from `node`. Returns `false` if the node is gone (ignore the message).
    func seen(_ node: NodeID, policyVersion: UInt64) -> Bool {
        let now = clock.now
        return state.withLock { state in
            if state.gone[node] != nil { return false }
            state.alive[node]?.lastSeen = now
            state.alive[node]?.policyVersion = policyVersion
            return true
        }
    }

    /// Marks `node` gone (left or dead) and reports it. Returns the member if it was alive.
    func remove(_ node: NodeID, left: Bool, reason: String) -> Member? {
        delivery.withLock { _ in
            let removed = state.withLock {
                state -> (Member, [AsyncStream<MembershipEvent>.Continuation])? in
                guard state.gone[node] == nil else { return nil }
                let member = state.alive.removeValue(forKey: node)?.member
                state.gone[node] = left
                state.goneOrder.append(node)
                if state.gone.count > maxTombstones {
                    state.gone[state.goneOrder[state.goneHead]] = nil
                    state.goneHead += 1
                    if state.goneHead > state.goneOrder.count / 2 {
                        state.goneOrder.removeFirst(state.goneHead)
                        state.goneHead = 0
                    }
                }
                guard let member else { return nil }
                return (member, Array(state.subscribers.values))
            }
            guard let (member, subscribers) = removed else { return nil }
            let event: MembershipEvent = left ? .left(member) : .dead(member, reason: reason)
            for c in subscribers { c.yield(event) }
            return member
        }
    }

    /// `true` if `node` left, `false` if it was declared dead, `nil` if neither.
    func hasLeft(_ node: NodeID) -> Bool? { state.withLock { $0.gone[node] } }

    /// Members not heard from for longer than `timeout`.
    func silent(for timeout: Duration) -> [NodeID] {
        let now = clock.now
        return state.withLock { state in
            state.alive.values.filter { now - $0.lastSeen > timeout }.map(\.member.node)
        }
    }

    /// The live members.
    var members: [Member] { state.withLock { $0.alive.values.map(\.member) } }

    /// The policy version in the last message from `node`.
    /// The live member on `node`, if any.
    func member(_ node: NodeID) -> Member? { state.withLock { $0.alive[node]?.member } }

    func policyVersion(of node: NodeID) -> UInt64? { state.withLock { $0.alive[node]?.policyVersion } }

    /// A stream of events that starts with a `joined` for every current member.
    func events() -> AsyncStream<MembershipEvent> {
        let (stream, continuation) = AsyncStream<MembershipEvent>.makeStream()
        let id = delivery.withLock { _ -> Int? in
            let registered = state.withLock { state -> (Int, [Member])? in
                guard !state.finished else { return nil }
                let id = state.nextSubscriber
                state.nextSubscriber += 1
                state.subscribers[id] = continuation
                return (id, state.alive.values.map(\.member))
            }
            guard let (id, current) = registered else { return nil }
            for member in current { continuation.yield(.joined(member)) }
            return id
        }
        guard let id else {
            continuation.finish()
            return stream
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.state.withLock { $0.subscribers.removeValue(forKey: id) }
        }
        return stream
    }

    /// Ends every subscription.
    func finish() {
        let subscribers = state.withLock { state in
            state.finished = true
            defer { state.subscribers.removeAll() }
            return Array(state.subscribers.values)
        }
        for c in subscribers { c.finish() }
    }
}
