import Foundation
import Logging
import Rein
import ReinActors
import ReinRuntime
import ZeroMQ

/// Median milliseconds from publishing a version until all `subscribers` caches hold it, and
/// median milliseconds to send the same frames over `subscribers` raw PUSH/PULL pairs at once
/// until every puller has read them as floats (`repeats` of each, after a warm-up round). The two
/// alternate, so both see the same machine (`rein bench runtime` and `rein bench scale`).
func broadcastAndRawMs(
    _ values: [Float], subscribers: Int, repeats: Int, context: ZMQContext, logger: Logger
) async throws -> (broadcast: Double, raw: Double) {
    // Every bound socket here keeps as many connections as there are subscribers.
    let limits = WireLimits(maxConnections: max(WireLimits.default.maxConnections, subscribers + 8))
    let channels = ZMQBulkChannels(context: context, wire: WireOptions(limits: limits), logger: logger)
    let broadcaster = try channels.publisher(node: .random(), bind: "tcp://127.0.0.1:*")
    defer { broadcaster.close() }
    guard let endpoint = broadcaster.endpoint else { throw CLIError("the broadcaster did not bind") }
    let caches = (0..<subscribers).map { _ in
        channels.subscriber(endpoint: endpoint, keep: 2, expectedCount: nil)
    }
    defer { for cache in caches { cache.close() } }
    let receivers = (0..<subscribers).map { _ in
        BulkReceiver(context: context, link: .bind("tcp://127.0.0.1:*"), logger: logger)
    }
    defer { for receiver in receivers { receiver.close() } }
    var senders: [BulkSender] = []
    for receiver in receivers {
        senders.append(
            try BulkSender(context: context, node: .random(), link: .connect(await receiver.endpoint())))
    }
    defer { for sender in senders { sender.close() } }
    var iterators = receivers.map { $0.makeAsyncIterator() }
    var pending = [[BulkMessage]](repeating: [], count: subscribers)
    // Warm up until every subscription is live (PUB drops messages sent before).
    var ready = false
    for _ in 0..<200 where !ready {
        try await broadcaster.publish(PolicyWeights(version: 0, values: values))
        ready = true
        for cache in caches where await cache.weights(0, within: .milliseconds(50)) == nil {
            ready = false
        }
    }
    guard ready else { throw CLIError("subscribers never received the broadcast") }
    let clock = ContinuousClock()
    var broadcastSamples: [Double] = []
    var rawSamples: [Double] = []
    for round in 0...repeats {
        // Raw: the broadcaster's chunking, one PUSH per receiver.
        var start = clock.now
        var frames: [WireFrame] = []
        var index = 0
        repeat {
            let end = min(index + ZMQBulkChannels.weightChunkFloats, values.count)
            frames.append(WireFrame(floats: Array(values[index..<end])))
            index = end
        } while index < values.count
        for sender in senders { try await sender.send(frames, policyVersion: 1) }
        for i in 0..<subscribers {
            if pending[i].isEmpty { pending[i] = try await iterators[i].next() ?? [] }
            guard !pending[i].isEmpty else { throw CLIError("raw receiver closed") }
            var received: [Float] = []
            for frame in pending[i].removeFirst().frames { received += try frame.floats() }
            guard received.count == values.count else { throw CLIError("raw transfer lost floats") }
        }
        let raw = seconds(clock.now - start) * 1000
        // Broadcast.
        let version = round + 1
        start = clock.now
        try await broadcaster.publish(PolicyWeights(version: version, values: values))
        for cache in caches {
            guard await cache.weights(version, within: .seconds(10)) != nil else {
                throw CLIError("a subscriber missed version \(version)")
            }
        }
        let broadcast = seconds(clock.now - start) * 1000
        if round > 0 {  // round 0 warms the raw connections up
            rawSamples.append(raw)
            broadcastSamples.append(broadcast)
        }
    }
    return (medianOf(broadcastSamples), medianOf(rawSamples))
}

/// The median of `values` (the upper one of an even count).
func medianOf(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
