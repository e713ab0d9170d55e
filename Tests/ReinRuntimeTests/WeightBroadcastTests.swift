import Foundation
import Rein
import ReinActors
import ReinTasks
import Testing
import ZeroMQ

@testable import ReinRuntime

@Suite("Weight broadcast")
struct WeightBroadcastTests {
    @Test func versionsArriveWholeAcrossChunksAndOnlyTheNewestAreKept() async throws {
        let context = try ZMQContext()
        let broadcaster = try WeightBroadcaster(context: context, node: .random(), bind: "tcp://127.0.0.1:*")
        defer { broadcaster.close() }
        let endpoint = try #require(broadcaster.endpoint)
        let cache = WeightCache(context: context, endpoint: endpoint, keep: 2, logger: quiet)
        defer { cache.close() }
        let count = WeightBroadcaster.chunkFloats + 12_345  // two frames
        func weights(_ version: Int) -> PolicyWeights {
            PolicyWeights(version: version, values: (0..<count).map { Float($0 % 1000) + Float(version) })
        }
        // PUB/SUB drops messages sent before the subscription is up: publish until version 0 lands.
        #expect(
            await eventually(within: .seconds(10)) {
                try? await broadcaster.publish(weights(0))
                return await cache.weights(0, within: .milliseconds(50)) != nil
            })
        for version in 1...3 { try await broadcaster.publish(weights(version)) }
        let newest = await cache.weights(3, within: .seconds(5))
        #expect(newest == weights(3).values)
        #expect(await cache.weights(2, within: .seconds(1)) == weights(2).values)
        #expect(await cache.weights(1, within: .milliseconds(10)) == nil, "only the newest two are kept")
    }

    /// Issue 14: each kept version is a full copy of the weights. A worker's store keeps at most
    /// `keep` versions and none older than the version the worker samples now.
    @Test func theStoreKeepsNoVersionOlderThanTheOneSampled() async throws {
        let store = WeightStore(keep: 3, expectedCount: 4)
        for version in 0...4 { store.insert([Float](repeating: Float(version), count: 4), version: version) }
        #expect(store.keptVersions == [2, 3, 4], "at most keep versions")
        store.forget(olderThan: 4)
        #expect(store.keptVersions == [4])
        store.insert([1, 2, 3, 4], version: 3)  // a late arrival of an older version
        #expect(store.keptVersions == [4])
        #expect(await store.weights(3, within: .milliseconds(1)) == nil)
        store.insert([5, 5, 5, 5], version: 5)
        #expect(store.keptVersions == [4, 5])
        #expect(store.newest()?.version == 5)
        store.forget(olderThan: 2)  // the floor never moves back
        store.insert([2, 2, 2, 2], version: 2)
        #expect(store.keptVersions == [4, 5])
    }

    /// Issue 19: the learner's weight PUB kept libzmq's default 64 subscribers whatever the run's
    /// limits said, so workers beyond the 64th never heard a broadcast (each fetched every version
    /// by call, after waiting for it). The channels' limits and rejection counters reach it.
    @Test func theBroadcastKeepsTheRunsConnectionLimit() async throws {
        let context = try ZMQContext()
        let rejections = WireRejections()
        let wire = WireOptions(limits: WireLimits(maxConnections: 1), rejections: rejections)
        let channels = ZMQBulkChannels(context: context, wire: wire, logger: quiet)
        let broadcaster = try channels.publisher(node: .random(), bind: "tcp://127.0.0.1:*")
        defer { broadcaster.close() }
        let endpoint = try #require(broadcaster.endpoint)
        let caches = (0..<2).map { _ in channels.subscriber(endpoint: endpoint, keep: 1, expectedCount: nil) }
        defer { for cache in caches { cache.close() } }
        #expect(await eventually { rejections.count(WireRejections.tooManyConnections) >= 1 })
    }

    @Test func aWildcardHostIsReplacedByTheLearnersHost() {
        #expect(
            WeightCache.reachable("tcp://0.0.0.0:7071", from: "tcp://10.0.0.5:7070") == "tcp://10.0.0.5:7071")
        #expect(
            WeightCache.reachable("tcp://127.0.0.1:7071", from: "tcp://10.0.0.5:7070")
                == "tcp://127.0.0.1:7071")
        #expect(WeightCache.reachable("ipc:///tmp/w", from: "ipc:///tmp/l") == "ipc:///tmp/w")
    }
}

@Suite("Sample stream")
struct SampleStreamTests {
    @Test func columnsRoundTripABatchThroughTheSampleBatchLayout() throws {
        let rollouts = (0..<8).map { r in
            Rollout(
                id: UInt64(100 + r), group: r / 4, prompt: [1, 2, Int32(r)],
                completion: Array(repeating: Int32(r), count: r % 3),
                behaviourLogProbs: Array(repeating: -0.5, count: r % 3),
                versions: Array(repeating: 7, count: r % 3), reward: Double(r % 2),
                outcome: r % 2 == 1 ? .correct : .malformed)
        }
        let batch = RolloutBatch(rollouts: rollouts, groupSize: 4)
        let columns = SampleColumns(batch, worker: NodeID(rawValue: 42), index: 3, attempt: 1)
        let decoded = try SampleBatchLayout.decode(SampleBatchLayout.frames(columns))
        #expect(decoded == columns)
        #expect(try decoded.batch() == batch)
        var broken = columns
        broken.completionOffsets[2] = 99
        #expect(throws: RuntimeError.self) { try broken.batch() }
        broken = columns
        broken.promptOffsets[0] = -1  // would read before the prompts
        #expect(throws: RuntimeError.self) { try broken.batch() }
        // Reference values scored by the worker travel as two more columns.
        var scored = batch
        for i in scored.rollouts.indices {
            let n = scored.rollouts[i].completion.count
            scored.rollouts[i].referenceLogProbs = (0..<n).map { -Float($0) - 0.25 }
            scored.rollouts[i].referenceRows = (0..<(3 * n)).map { Float($0) * 0.125 }
        }
        let scoredColumns = SampleColumns(scored, worker: NodeID(rawValue: 42), index: 3, attempt: 1)
        #expect(scoredColumns.referenceWidth == 3)
        let back = try SampleBatchLayout.decode(SampleBatchLayout.frames(scoredColumns))
        #expect(try back.batch() == scored)
        var lying = scoredColumns
        lying.referenceWidth = 4
        #expect(throws: RuntimeError.self) { try lying.batch() }
    }
}
