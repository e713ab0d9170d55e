import ArgumentParser
import Foundation
import Logging
import Rein
import ReinActors
import ReinModel
import ReinRuntime
import ReinTasks
import ZeroMQ

/// `rein bench runtime`: weight broadcast against the raw transport time for the same bytes.
struct RuntimeBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "runtime",
        abstract:
            "Weight broadcast of the default model to 1, 2 and 4 subscribers vs raw PUSH/PULL of the same bytes.",
        discussion: """
            Everything runs in this process over loopback TCP (subscribers are WeightCaches, as in \
            workers). Broadcast time: publish until every subscriber holds the new version; raw: one \
            PUSH/PULL bulk message of the same frames. Medians over --repeats. Goal: broadcast ≤ 2× raw.
            """
    )

    @OptionGroup var options: ConfigOptions

    @Option(name: .long, help: "Measurements per row (the median is reported).")
    var repeats = 10

    @Flag(name: .long, help: "Print one JSON object instead of a table.")
    var json = false

    struct Row: Codable {
        var subscribers: Int
        var bytes: Int
        var broadcastMs: Double
        var rawMs: Double
        var ratio: Double
    }

    func run() async throws {
        let logger = Logger(label: "rein.bench.runtime")
        let config = try options.load()
        let task = try ArithmeticTask(config: config.task)
        let parameters = try GPTParameters(config: config.gptConfig(vocab: task.tokenizer.vocabSize), seed: 1)
        let values = parameters.values
        let context = try ZMQContext()
        let raw = try await rawTransferMs(values, context: context, logger: logger)
        var rows: [Row] = []
        for subscribers in [1, 2, 4] {
            let ms = try await broadcastMs(values, subscribers: subscribers, context: context, logger: logger)
            rows.append(
                Row(
                    subscribers: subscribers, bytes: values.count * 4, broadcastMs: ms, rawMs: raw,
                    ratio: ms / raw))
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            emit(String(decoding: try encoder.encode(rows), as: UTF8.self))
        } else {
            emit("weights: \(values.count) floats (\(values.count * 4 / 1024) KiB), median of \(repeats)")
            for row in rows {
                emit(
                    String(
                        format:
                            "%d subscriber(s): broadcast %.2f ms, raw PUSH/PULL %.2f ms, ratio %.2f (goal ≤ 2)",
                        row.subscribers, row.broadcastMs, row.rawMs, row.ratio))
            }
        }
    }

    /// Median milliseconds from publishing a version until all `subscribers` caches hold it.
    func broadcastMs(_ values: [Float], subscribers: Int, context: ZMQContext, logger: Logger) async throws
        -> Double
    {
        let broadcaster = try WeightBroadcaster(context: context, node: .random(), bind: "tcp://127.0.0.1:*")
        defer { broadcaster.close() }
        guard let endpoint = broadcaster.endpoint else { throw CLIError("the broadcaster did not bind") }
        let caches = (0..<subscribers).map { _ in
            WeightCache(context: context, endpoint: endpoint, keep: 2, logger: logger)
        }
        defer { for cache in caches { cache.close() } }
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
        var samples: [Double] = []
        for version in 1...repeats {
            let start = clock.now
            try await broadcaster.publish(PolicyWeights(version: version, values: values))
            for cache in caches {
                guard await cache.weights(version, within: .seconds(10)) != nil else {
                    throw CLIError("a subscriber missed version \(version)")
                }
            }
            samples.append(seconds(clock.now - start) * 1000)
        }
        return samples.sorted()[samples.count / 2]
    }

    /// Median milliseconds to move the same frames once over PUSH/PULL and read them as floats.
    func rawTransferMs(_ values: [Float], context: ZMQContext, logger: Logger) async throws -> Double {
        let receiver = BulkReceiver(context: context, link: .bind("tcp://127.0.0.1:*"), logger: logger)
        defer { receiver.close() }
        let endpoint = await receiver.endpoint()
        let sender = try BulkSender(context: context, node: .random(), link: .connect(endpoint))
        defer { sender.close() }
        var iterator = receiver.makeAsyncIterator()
        var pending: [BulkMessage] = []
        let clock = ContinuousClock()
        var samples: [Double] = []
        for _ in 0...repeats {
            let start = clock.now
            var frames: [WireFrame] = []
            var index = 0
            repeat {
                let end = min(index + WeightBroadcaster.chunkFloats, values.count)
                frames.append(WireFrame(floats: Array(values[index..<end])))
                index = end
            } while index < values.count
            try await sender.send(frames, policyVersion: 1)
            if pending.isEmpty { pending = try await iterator.next() ?? [] }
            guard !pending.isEmpty else { throw CLIError("raw receiver closed") }
            let message = pending.removeFirst()
            var received: [Float] = []
            for frame in message.frames { received += try frame.floats() }
            samples.append(seconds(clock.now - start) * 1000)
        }
        samples.removeFirst()  // connection warm-up
        return samples.sorted()[samples.count / 2]
    }
}
