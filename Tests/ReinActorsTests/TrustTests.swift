import Distributed
import Foundation
import Synchronization
import Testing

@testable import ReinActors

/// Counts how many times a ``Tracked`` value was decoded (to show refusals come before decoding).
let trackedDecodes = Atomic<Int>(0)

/// An argument that counts its decodings.
struct Tracked: Codable, Sendable {
    var value: Int
    init(_ value: Int) { self.value = value }
    init(from decoder: any Decoder) throws {
        trackedDecodes.add(1, ordering: .relaxed)
        value = try decoder.singleValueContainer().decode(Int.self)
    }
    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(value)
    }
}

/// Reports who called it, as the actor system bound it.
distributed actor Witness {
    /// The caller's node, name and role (`nil` node: in process).
    distributed func whoCalls() -> CallerSeen {
        CallerSeen(
            node: ReinActorSystem.caller?.node, name: ReinActorSystem.caller?.name,
            role: ReinActorSystem.caller?.role.rawValue)
    }

    /// The node a method taking a claimed id acts for.
    distributed func actingFor(_ claimed: NodeID) -> NodeID { ReinActorSystem.actingNode(claimed: claimed) }
}

struct CallerSeen: Codable, Sendable, Equatable {
    var node: NodeID?
    var name: String?
    var role: UInt8?
}

/// An actor with a role per method.
distributed actor Guarded: CallerChecked {
    typealias ActorSystem = ReinActorSystem
    static let allowedCallers: [String: CallerRoles] = [
        "forWorkers(_:)": .worker,
        "forLearner(_:)": .learner,
        "forOperator(_:)": .localOperator,
    ]

    distributed func forWorkers(_ x: Tracked) -> Int { x.value }
    distributed func forLearner(_ x: Tracked) -> Int { x.value }
    distributed func forOperator(_ x: Tracked) -> Int { x.value }
    distributed func undeclared(_ x: Tracked) -> Int { x.value }
}

@Suite("Trust at the actor-system boundary", .serialized)
struct TrustTests {
    @Test func aCallForAnotherActorTypeIsRefusedCountedAndRunsNothing() async throws {
        try await withCluster(2) { _, systems in
            let echo = Echo(actorSystem: systems[1])
            // A proxy of the wrong type for the Echo's id: its call names Other.ping.
            let wrong = try Other.resolve(id: echo.id, using: systems[0])
            #expect(await callErrorCode { try await wrong.ping() } == .wrongType)
            #expect(systems[1].rejections.count(WireRejections.wrongActorType) == 1)
            // The right type still works, and nothing ran on the Echo.
            let proxy = try Echo.resolve(id: echo.id, using: systems[0])
            #expect(try await proxy.pokeCount() == 0)
            #expect(try await proxy.add(2, 3) == 5)
            withExtendedLifetime(echo) {}
        }
    }

    @Test func targetIdentifiersOfOtherTypesOrGarbageNameNoMethod() {
        #expect(InvocationTarget.method("", on: Echo.self) == nil)
        #expect(InvocationTarget.method("ReinActorsTests.Echo.add(_:_:)", on: Echo.self) == nil)
        #expect(InvocationTarget.method("$s", on: Echo.self) == nil)
        let echo = _mangledTypeName(Echo.self)!
        #expect(InvocationTarget.method("$s" + echo + "garbage", on: Echo.self) == nil)
        #expect(InvocationTarget.method("$s" + echo + "garbage", on: Other.self) == nil)
    }

    @Test func genericSubstitutionsResolveOnlyFromTheTable() throws {
        #expect(InvocationTarget.lookUpSubstitution(_mangledTypeName(Int.self)!) == Int.self)
        #expect(InvocationTarget.lookUpSubstitution(_mangledTypeName([Double].self)!) == [Double].self)
        // A type this process has, but no call may name: never looked up in the runtime.
        #expect(InvocationTarget.lookUpSubstitution(_mangledTypeName(Echo.self)!) == nil)
        #expect(InvocationTarget.lookUpSubstitution("NotAType") == nil)
        // The libFuzzer input that crashed the runtime's lookup (swift_getTypeByMangledName): a
        // call envelope whose substitution names are garbage.
        let unit = try #require(
            Data(base64Encoded: "U3RyaWQAAQEAAAAAAAAAAAAAAAAAAD8/Pz8/Pz8AAAAAAgAAAAAAAQAAACQ/Pw=="))
        let envelope = try CallEnvelope.decode(Array(unit.dropFirst()))
        #expect(!envelope.genericSubstitutions.isEmpty)
        for name in envelope.genericSubstitutions {
            #expect(InvocationTarget.lookUpSubstitution(name) == nil)
        }
    }

    @Test func theCalleeSeesTheTransportIdentityAndRole() async throws {
        try await withCluster(3) { _, systems in
            let witness = Witness(actorSystem: systems[1])
            // In process: no remote caller; a claimed id is taken as given.
            #expect(try await witness.whoCalls() == CallerSeen(node: nil, name: nil, role: nil))
            let claimed = NodeID(rawValue: 42)
            #expect(try await witness.actingFor(claimed) == claimed)
            // n0 reaches n1 without having been connected to by it: a worker.
            let fromWorker = try Witness.resolve(id: witness.id, using: systems[0])
            #expect(
                try await fromWorker.whoCalls()
                    == CallerSeen(node: systems[0].node, name: "n0", role: CallerRoles.worker.rawValue))
            // The id in the arguments is ignored: the caller is its own node.
            #expect(try await fromWorker.actingFor(claimed) == systems[0].node)
            #expect(try await fromWorker.actingFor(systems[2].node) == systems[0].node)
            // n1 connected to n2: n2's calls come from a learner.
            _ = try await systems[1].connect(to: "n2")
            let fromLearner = try Witness.resolve(id: witness.id, using: systems[2])
            #expect(try await fromLearner.whoCalls().role == CallerRoles.learner.rawValue)
            withExtendedLifetime(witness) {}
        }
    }

    @Test func rolesAreCheckedBeforeArgumentsAreDecoded() async throws {
        try await withCluster(2) { _, systems in
            let guarded = Guarded(actorSystem: systems[1])
            let proxy = try Guarded.resolve(id: guarded.id, using: systems[0])
            let before = trackedDecodes.load(ordering: .relaxed)
            #expect(await callErrorCode { try await proxy.forLearner(Tracked(1)) } == .forbidden)
            #expect(await callErrorCode { try await proxy.forOperator(Tracked(2)) } == .forbidden)
            #expect(await callErrorCode { try await proxy.undeclared(Tracked(3)) } == .forbidden)
            #expect(trackedDecodes.load(ordering: .relaxed) == before, "no refused argument was decoded")
            #expect(systems[1].rejections.count(WireRejections.forbidden) == 3)
            #expect(try await proxy.forWorkers(Tracked(7)) == 7)
            // In process, every method runs.
            #expect(try await guarded.forOperator(Tracked(8)) == 8)
            #expect(try await guarded.undeclared(Tracked(9)) == 9)
            withExtendedLifetime(guarded) {}
        }
    }

    /// Issue 15, attack 5: one "peer dead" line per vanished peer flooded the log (2,000 lines).
    @Test func vanishingPeersCostOneLogLinePerInterval() async throws {
        // Slow heartbeats: n peers exchange n² of them, and only the kills should matter here.
        let settings = ReinActorSystem.Settings(
            heartbeatInterval: .seconds(1), heartbeatTimeout: .seconds(600))
        let log = LineLog()
        let bus = InMemoryBus()
        let learner = ReinActorSystem(bus: bus, name: "learner", settings: settings, logger: log.logger)
        let peers = (0..<50).map {
            ReinActorSystem(bus: bus, name: "p\($0)", settings: settings, logger: quiet)
        }
        for _ in 0..<6000 where learner.members.count < peers.count {
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(learner.members.count == peers.count)
        for peer in peers { bus.kill(peer.node) }
        for _ in 0..<6000 where !learner.members.isEmpty { try await Task.sleep(for: .milliseconds(10)) }
        #expect(learner.members.isEmpty, "every peer was declared dead")
        let lines = log.lines.withLock { $0.filter { $0.hasPrefix("peer dead") } }
        #expect(lines.count >= 1 && lines.count < 10, "\(lines.count) lines for 50 dead peers")
        for system in peers + [learner] { await system.shutdown() }
    }
}
