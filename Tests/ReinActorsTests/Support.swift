import Distributed
import Logging
import Synchronization
import Testing

@testable import ReinActors

struct Point: Codable, Equatable, Sendable {
    var x: Double
    var y: Double
    var label: String
}

/// Thrown by a target and registered as transportable: arrives as itself.
struct Refusal: Error, Codable, Equatable {
    var reason: String
}

/// Thrown by a target and not registered: arrives as `RemoteError`.
struct Opaque: Error, CustomStringConvertible {
    var detail: String
    var description: String { "opaque failure: \(detail)" }
}

/// The test actor: values, void, generics, errors, slow and blocking targets.
distributed actor Echo {
    /// Receives a value each time a slow target starts (so tests await events, not sleeps).
    let started: AsyncStream<Int>.Continuation?
    private(set) var pokes = 0

    init(actorSystem: ActorSystem, started: AsyncStream<Int>.Continuation? = nil) {
        self.actorSystem = actorSystem
        self.started = started
    }

    distributed func add(_ a: Int, _ b: Int) -> Int { a + b }
    distributed func poke() { pokes += 1 }
    distributed func pokeCount() -> Int { pokes }
    distributed func echo<T: Codable & Sendable>(_ value: T) -> T { value }
    distributed func sum(_ xs: [Double]) -> Double { xs.reduce(0, +) }
    distributed func move(_ p: Point, by dx: Double) -> Point { Point(x: p.x + dx, y: p.y, label: p.label) }
    distributed func scale(_ xs: [Float], by k: Float) -> [Float] { xs.map { $0 * k } }
    distributed func fail(_ detail: String) throws { throw Opaque(detail: detail) }
    distributed func refuse(_ reason: String) throws -> Int { throw Refusal(reason: reason) }
    distributed func whoAmI() -> ActorID { id }

    /// Calls `other` (an actor reference decoded on this node) and returns its sum.
    distributed func askOther(_ other: Echo, _ a: Int, _ b: Int) async throws -> Int {
        try await other.add(a, b)
    }

    /// Sleeps `ms` milliseconds (reporting its start), then returns `ms`.
    distributed func slow(_ ms: Int) async throws -> Int {
        started?.yield(ms)
        try await Task.sleep(for: .milliseconds(ms))
        return ms
    }
}

distributed actor Other {
    distributed func ping() -> String { "pong" }
}

let quiet = Logger(label: "rein.test") { _ in SwiftLogNoOpLogHandler() }

/// Settings for most tests: heartbeats on, but a verdict generous enough that a loaded 2-core
/// machine running tests in parallel never declares a live peer dead.
let testSettings = ReinActorSystem.Settings(
    callTimeout: .seconds(5), heartbeatInterval: .milliseconds(100), heartbeatTimeout: .seconds(3),
    transportableErrors: [Refusal.self])

/// Fast heartbeats for the tests that measure dead-peer detection.
let fastHeartbeats = ReinActorSystem.Settings(
    callTimeout: .seconds(5), heartbeatInterval: .milliseconds(50), heartbeatTimeout: .milliseconds(400),
    transportableErrors: [Refusal.self])

/// Runs `body` with `count` systems on a fresh in-memory bus, then shuts them all down.
func withCluster<R>(
    _ count: Int, settings: ReinActorSystem.Settings = testSettings,
    _ body: (InMemoryBus, [ReinActorSystem]) async throws -> R
) async throws -> R {
    let bus = InMemoryBus()
    let systems = (0..<count).map {
        ReinActorSystem(bus: bus, name: "n\($0)", settings: settings, logger: quiet)
    }
    do {
        let result = try await body(bus, systems)
        for system in systems { await system.shutdown() }
        return result
    } catch {
        for system in systems { await system.shutdown() }
        throw error
    }
}

/// The `RemoteCallError` code `body` failed with, or `nil` if it succeeded or threw another error.
func callErrorCode<T>(_ body: () async throws -> T) async -> RemoteCallError.Code? {
    do {
        _ = try await body()
        return nil
    } catch let error as RemoteCallError {
        return error.code
    } catch {
        return nil
    }
}

/// Seconds elapsed while running `body`.
func seconds<T>(_ body: () async throws -> T) async rethrows -> (T, Double) {
    let clock = ContinuousClock()
    let start = clock.now
    let value = try await body()
    let elapsed = clock.now - start
    return (value, Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18)
}

/// A thread-safe counter.
final class Counter: Sendable {
    private let value = Atomic<Int>(0)
    func increment() { value.add(1, ordering: .relaxed) }
    var count: Int { value.load(ordering: .relaxed) }
}

/// A call that neither its timeout nor its answer ends while a test runs, however loaded the
/// machine: a target that sleeps for an hour, with an hour's call timeout. Only what the test does
/// (cancel, kill the peer, shut down) can end it.
func pendingForever(_ proxy: Echo) async throws -> Int {
    try await ReinActorSystem.withCallTimeout(.seconds(3600)) { try await proxy.slow(3_600_000) }
}
