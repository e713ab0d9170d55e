import Foundation
import Testing
import ZeroMQ

@testable import ReinActors

/// Round-trip throughput, printed rather than asserted (machines differ). Off by default:
/// `REIN_BENCH=1 swift test -c release --filter ReinActorsTests.ThroughputTests`.
@Suite("Throughput (REIN_BENCH=1)", .enabled(if: ProcessInfo.processInfo.environment["REIN_BENCH"] != nil))
struct ThroughputTests {
    static let calls = 20_000

    @Test func inMemory() async throws {
        try await withCluster(2) { _, systems in
            let target = Echo(actorSystem: systems[1])
            let proxy = try Echo.resolve(id: target.id, using: systems[0])
            try await report("in-memory", proxy)
            withExtendedLifetime(target) {}
        }
    }

    @Test func zeroMQ() async throws {
        let context = try ZMQContext()
        for endpoint in ["tcp://127.0.0.1:*", "inproc://rein-bench-\(getpid())"] {
            let server = try ReinActorSystem(
                context: context, configuration: .init(name: "server", bind: endpoint),
                settings: testSettings,
                logger: quiet)
            let client = try ReinActorSystem(
                context: context, configuration: .init(name: "client"), settings: testSettings, logger: quiet)
            _ = try await client.connect(to: try #require(server.endpoint))
            let target = Echo(actorSystem: server)
            try await report(
                "zmq \(endpoint.prefix(while: { $0 != ":" }))", try Echo.resolve(id: target.id, using: client)
            )
            await client.shutdown()
            await server.shutdown()
            withExtendedLifetime(target) {}
        }
    }

    private func report(_ name: String, _ proxy: Echo) async throws {
        for _ in 0..<500 { _ = try await proxy.add(1, 2) }  // warm-up
        let (_, sequential) = try await seconds {
            for i in 0..<Self.calls / 4 { _ = try await proxy.add(i, 1) }
        }
        let (_, concurrent) = try await seconds {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for lane in 0..<64 {
                    group.addTask {
                        for i in 0..<Self.calls / 64 { _ = try await proxy.add(i, lane) }
                    }
                }
                try await group.waitForAll()
            }
        }
        let seq = Double(Self.calls / 4) / sequential
        let conc = Double(Self.calls / 64 * 64) / concurrent
        print(
            "ROUND-TRIPS \(name): sequential \(Int(seq)) calls/s (\(String(format: "%.1f", 1e6 / seq)) µs each), 64 in flight \(Int(conc)) calls/s"
        )
    }
}
