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
        /// When this node last sent it a heartbeat (`nil`: never; its first is due at once, so
        /// that it learns this node's pace).
        var lastHeartbeat: ContinuousClock.Instant? = nil
        /// The pace it announced in its last heartbeat (`nil`: none yet).
        var pace: Duration? = nil
    }

    /// What one heartbeat round found: this node's pace, the peers a heartbeat is due to now, and
    /// the peers silent past their deadline, with how long they have been.
    struct HeartbeatRound: Sendable {
        var pace: Duration
        var due: [NodeID]
        var silent: [(node: NodeID, silence: Duration)]
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
        /// The pace announced in the last round (a change is announced to every peer at once).
        var announcedPace: Duration?
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

    /// Adds a member (heard from at `now`, the clock's if `nil`); returns `false` if it is
    /// already one or is gone.
    func join(_ member: Member, now: ContinuousClock.Instant? = nil) -> Bool {
        let now = now ?? clock.now
        return delivery.withLock { _ in
            let subscribers = state.withLock { state -> [AsyncStream<MembershipEvent>.Continuation]? in
                guard state.alive[member.node] == nil, state.gone[member.node] == nil, !state.finished else {
                    return nil
                }
                state.alive[member.node] = Entry(member: member, lastSeen: now, policyVersion: 0)
                return Array(state.subscribers.values)
            }
            guard let subscribers else { return false }
            for c in subscribers { c.yield(.joined(member)) }
            return true
        }
    }

    /// Records a message from `node` at `now` (the clock's if `nil`), and the pace it announced if
    /// it is a heartbeat that carries one. Returns `false` if the node is gone (ignore the message).
    func seen(
        _ node: NodeID, policyVersion: UInt64, pace: Duration? = nil, now: ContinuousClock.Instant? = nil
    ) -> Bool {
        let now = now ?? clock.now
        return state.withLock { state in
            if state.gone[node] != nil { return false }
            state.alive[node]?.lastSeen = now
            state.alive[node]?.policyVersion = policyVersion
            if let pace { state.alive[node]?.pace = pace }
            return true
        }
    }

    /// One heartbeat round at `now` (the clock's if `nil`) under `pacing`: this node's pace with
    /// its current members, the members a heartbeat is due to (recorded as sent at `now`) — all of
    /// them when the pace changed, so that they learn it — and the members silent past their
    /// deadline. The caller sends the heartbeats and decides on the verdicts.
    func heartbeatRound(pacing: HeartbeatPacing, now: ContinuousClock.Instant? = nil) -> HeartbeatRound {
        let now = now ?? clock.now
        return state.withLock { state in
            let pace = pacing.interval(peers: state.alive.count)
            let announce = state.announcedPace != pace
            state.announcedPace = pace
            var round = HeartbeatRound(pace: pace, due: [], silent: [])
            // Walks the table by index and updates entries in place: iterating it while writing to
            // it would copy all of it, every round.
            var index = state.alive.startIndex
            while index != state.alive.endIndex {
                let entry = state.alive.values[index]
                let pair = pacing.pair(own: pace, peer: entry.pace)
                let due =
                    announce
                    || entry.lastHeartbeat.map { pacing.isDue(elapsed: now - $0, pair: pair) } ?? true
                if due {
                    round.due.append(entry.member.node)
                    state.alive.values[index].lastHeartbeat = now
                }
                let silence = now - entry.lastSeen
                if silence > pacing.deadline(pair: pair) { round.silent.append((entry.member.node, silence)) }
                state.alive.formIndex(after: &index)
            }
            return round
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

    /// The live members.
    var members: [Member] { state.withLock { $0.alive.values.map(\.member) } }

    /// The live member on `node`, if any.
    func member(_ node: NodeID) -> Member? { state.withLock { $0.alive[node]?.member } }

    /// The pace `node` announced in its last heartbeat (`nil`: none, or not a member).
    func pace(of node: NodeID) -> Duration? { state.withLock { $0.alive[node]?.pace } }

    /// The policy version in the last message from `node`.
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
