import Distributed
import Synchronization

/// A weak reference to a local actor.
struct LocalActor {
    weak var actor: (any DistributedActor)?
    let incarnation: UInt64
}

/// A well-known name waiting for the next actor created in its scope.
final class NameHint: Sendable {
    private let name: Mutex<String?>
    init(_ name: String) { self.name = Mutex(name) }
    func take() -> String? {
        name.withLock { n in
            defer { n = nil }
            return n
        }
    }
}

extension ReinActorSystem {
    @TaskLocal static var nameHint: NameHint?

    /// Creates an actor under a well-known name: the first distributed actor initialised inside
    /// `body` gets `name` (actors it creates in turn get anonymous names).
    ///
    /// ```swift
    /// let learner = system.withName("learner") { Learner(actorSystem: system) }
    /// ```
    /// Other nodes then reach it with `try Learner.resolve(id: .wellKnown("learner", on: node),
    /// using: system)`. The name must not start with `$` and must not be held by a live actor.
    public func withName<R>(_ name: String, _ body: () throws -> R) rethrows -> R {
        precondition(
            !name.isEmpty && !name.hasPrefix("$"), "well-known names are non-empty and do not start with $")
        return try Self.$nameHint.withValue(NameHint(name)) { try body() }
    }

    public func assignID<Act>(_ actorType: Act.Type) -> ActorID
    where Act: DistributedActor, Act.ID == ActorID {
        let incarnation = nextIncarnation.add(1, ordering: .relaxed).newValue
        let name = Self.nameHint?.take() ?? "$\(incarnation)"
        return ActorID(node: node, name: name, incarnation: incarnation)
    }

    public func actorReady<Act>(_ actor: Act) where Act: DistributedActor, Act.ID == ActorID {
        let id = actor.id
        precondition(id.node == node, "actorReady for \(id), which \(node) did not assign")
        actors.withLock { actors in
            if let existing = actors[id.name], existing.actor != nil {
                preconditionFailure("two live actors named \(id.name) on \(name)")
            }
            actors[id.name] = LocalActor(actor: actor, incarnation: id.incarnation)
        }
    }

    public func resignID(_ id: ActorID) {
        actors.withLock { actors in
            if actors[id.name]?.incarnation == id.incarnation { actors[id.name] = nil }
        }
    }

    /// Resolves `id`: `nil` (use a remote proxy) for another node; the live local actor for this
    /// node; throws ``ResolveError`` if no live local actor has the ID or it has another type.
    public func resolve<Act>(id: ActorID, as actorType: Act.Type) throws -> Act?
    where Act: DistributedActor, Act.ID == ActorID {
        guard id.node == node else { return nil }
        guard let actor = localActor(id) else {
            throw ResolveError(.deadLetter, "no live actor \(id) on \(name)")
        }
        guard let typed = actor as? Act else {
            throw ResolveError(.wrongType, "\(id) is a \(type(of: actor)), not a \(Act.self)")
        }
        return typed
    }

    /// The live local actor with `id`'s name, if its incarnation matches (or `id`'s is 0).
    func localActor(_ id: ActorID) -> (any DistributedActor)? {
        localActor(named: id.name, incarnation: id.incarnation)
    }

    func localActor(named name: String, incarnation: UInt64) -> (any DistributedActor)? {
        actors.withLock { actors in
            guard let entry = actors[name], incarnation == 0 || entry.incarnation == incarnation else {
                return nil
            }
            return entry.actor
        }
    }
}
