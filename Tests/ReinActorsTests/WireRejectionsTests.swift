import Logging
import Synchronization
import Testing

@testable import ReinActors

/// Keeps the lines logged through it.
final class LineLog: Sendable {
    let lines = Mutex<[String]>([])
    var logger: Logger {
        Logger(label: "test") { _ in Handler(log: self) }
    }
    struct Handler: LogHandler {
        let log: LineLog
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) { log.lines.withLock { $0.append("\(event.message)") } }
    }
}

@Suite("Rejection counters and their rate-limited log")
struct WireRejectionsTests {
    @Test func everyRejectionIsCountedButEachPeerLogsOncePerInterval() async throws {
        let log = LineLog()
        let rejections = WireRejections(logInterval: .milliseconds(200))
        for i in 0..<1000 {
            rejections.record(
                WireError(.badMagic, "junk \(i)"), peer: "node:a at 10.0.0.1", logger: log.logger)
        }
        rejections.record(
            WireRejections.unknownPeer, peer: "10.0.0.2", error: WireError(.malformed, "x"),
            logger: log.logger)
        #expect(rejections.total == 1001)
        #expect(rejections.count("badMagic") == 1000)
        #expect(rejections.count(WireRejections.unknownPeer) == 1)
        #expect(rejections.summary == "1001 rejected (badMagic 1000, unknownPeer 1)")
        var lines = log.lines.withLock { $0 }
        #expect(lines.count == 2)
        #expect(lines[0].contains("node:a at 10.0.0.1") && lines[0].contains("junk 0"))
        #expect(lines[1].contains("10.0.0.2") && lines[1].contains("unknownPeer"))
        try await Task.sleep(for: .milliseconds(250))
        rejections.record(WireError(.truncated, "late"), peer: "node:a at 10.0.0.1", logger: log.logger)
        lines = log.lines.withLock { $0 }
        #expect(lines.count == 3)
        #expect(lines[2].contains("999 more from this peer"), "\(lines[2])")
    }

    @Test func theRateLimiterForgetsPeersInsteadOfGrowing() {
        let rejections = WireRejections(logInterval: .seconds(60))
        let logger = Logger(label: "quiet") { _ in SwiftLogNoOpLogHandler() }
        for i in 0..<5000 {
            rejections.record(WireError(.badMagic, "x"), peer: "peer-\(i)", logger: logger)
        }
        #expect(rejections.total == 5000)
        #expect(rejections.rememberedPeers <= WireRejections.maxRemembered)
    }

    @Test func aKeyGroupsPeersOfOneAddress() {
        let log = LineLog()
        let rejections = WireRejections()
        for i in 0..<10 {
            rejections.record(
                WireError(.badMagic, "x"), peer: "node:\(i) at 10.0.0.9", key: "10.0.0.9", logger: log.logger)
        }
        #expect(log.lines.withLock { $0.count } == 1)
        #expect(WireRejections.reason(of: WireError(.oversize, "big")) == "oversize")
        #expect(WireRejections.reason(of: CancellationError()) == WireRejections.badPayload)
    }
}
