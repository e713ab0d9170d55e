import Foundation
import Testing

@testable import ZeroMQ

@Suite("CURVE, monitors, polling and the async inbox")
struct SecurityAndMonitorTests {
    let context: ZMQContext
    init() throws { context = try ZMQContext() }

    @Test func curveKeyPairsAreValidAndRedacted() throws {
        let keys = try ZMQCurveKeyPair.generate()
        #expect(ZMQCurveKeyPair.isZ85Key(keys.publicKey))
        #expect(ZMQCurveKeyPair.isZ85Key(keys.secretKey))
        #expect(try ZMQCurveKeyPair.publicKey(forSecret: keys.secretKey) == keys.publicKey)
        #expect(!keys.description.contains(keys.secretKey))
        #expect(try ZMQCurveKeyPair(publicKey: keys.publicKey, secretKey: keys.secretKey) == keys)
        let other = try ZMQCurveKeyPair.generate()
        #expect(throws: ZMQError.self) {
            try ZMQCurveKeyPair(publicKey: other.publicKey, secretKey: keys.secretKey)
        }
        #expect(throws: ZMQError.self) { try ZMQCurveKeyPair(publicKey: "short", secretKey: keys.secretKey) }
    }

    @Test func curveHandshakeWithTheRightServerKeyDelivers() throws {
        let server = try ZMQCurveKeyPair.generate()
        let client = try ZMQCurveKeyPair.generate()
        let pull = try context.socket(.pull)
        try pull.setCurveServer(server)
        let push = try context.socket(.push)
        try push.setCurveClient(client, serverKey: server.publicKey)
        try link(pull, push, over: .tcp)
        try push.send("secret sample")
        #expect(try pull.receive(wait: .timeout(.seconds(5)))?.text == "secret sample")
    }

    @Test func curveHandshakeWithAWrongServerKeyDeliversNothing() throws {
        let server = try ZMQCurveKeyPair.generate()
        let impostor = try ZMQCurveKeyPair.generate()
        let client = try ZMQCurveKeyPair.generate()
        let pull = try context.socket(.pull)
        try pull.setCurveServer(server)
        let monitor = try pull.monitor([.handshakeSucceeded, .handshakeFailed])
        let push = try context.socket(.push)
        try push.setLinger(.zero)
        try push.setCurveClient(client, serverKey: impostor.publicKey)
        try link(pull, push, over: .tcp)
        _ = try push.send("should never arrive", wait: .timeout(.milliseconds(200)))
        #expect(try pull.receive(wait: .timeout(.milliseconds(500))) == nil)
        // The server saw failed handshakes (the client keeps retrying), never a successful one.
        var kinds: [ZMQMonitorEvent.Kind] = []
        while kinds.count < 20, let event = try monitor.next(wait: .timeout(.milliseconds(300))) {
            kinds.append(event.kind)
        }
        #expect(!kinds.isEmpty)
        #expect(!kinds.contains(.handshakeSucceeded))
    }

    @Test func curveServerRejectsPlainClients() throws {
        let server = try ZMQCurveKeyPair.generate()
        let pull = try context.socket(.pull)
        try pull.setCurveServer(server)
        let push = try context.socket(.push)
        try push.setLinger(.zero)
        try link(pull, push, over: .tcp)
        _ = try push.send("plain", wait: .timeout(.milliseconds(200)))
        #expect(try pull.receive(wait: .timeout(.milliseconds(500))) == nil)
    }

    @Test func monitorReportsConnectAndDisconnect() throws {
        let pull = try context.socket(.pull)
        try pull.bind("tcp://127.0.0.1:*")
        let monitor = try pull.monitor(.peers)
        let push = try context.socket(.push)
        try push.connect(try pull.lastEndpoint)
        var kinds: [ZMQMonitorEvent.Kind] = []
        while !kinds.contains(.accepted), let event = try monitor.next(wait: .timeout(.seconds(5))) {
            kinds.append(event.kind)
        }
        #expect(kinds.contains(.accepted))
        push.close()  // the peer goes away
        while !kinds.contains(.disconnected), let event = try monitor.next(wait: .timeout(.seconds(5))) {
            kinds.append(event.kind)
        }
        #expect(kinds.contains(.disconnected))
    }

    /// Closing a monitored socket stops its monitor first: the monitor's last event is "stopped",
    /// and nothing is sent to it afterwards. (libzmq sends monitor events with a blocking send from
    /// its I/O thread; one sent to a monitor closed before its socket stalled the whole context.)
    @Test func closingAMonitoredSocketStopsItsMonitorSoTheContextNeverStalls() throws {
        let pull = try context.socket(.pull)
        try pull.bind("tcp://127.0.0.1:*")
        let endpoint = try pull.lastEndpoint
        let monitor = try pull.monitor([.accepted, .disconnected, .monitorStopped])
        let pushes = try (0..<3).map { _ in try context.socket(.push) }
        for push in pushes {
            try push.setLinger(.zero)
            try push.connect(endpoint)
        }
        var accepted = 0
        while accepted < 3, let event = try monitor.next(wait: .timeout(.seconds(5))) {
            if event.kind == .accepted { accepted += 1 }
        }
        #expect(accepted == 3)
        pull.close()
        var last: ZMQMonitorEvent.Kind?
        while last != .monitorStopped, let event = try monitor.next(wait: .timeout(.seconds(5))) {
            last = event.kind
        }
        #expect(last == .monitorStopped)
        // The reader goes first now; the closed socket's connections still wind down, and the
        // context must go on moving messages.
        monitor.close()
        for push in pushes { push.close() }
        let (a, b) = (try context.socket(.pull), try context.socket(.push))
        _ = try link(a, b, over: .tcp)
        try b.send("after")
        #expect(try a.receive(wait: .timeout(.seconds(10)))?.string == "after")
    }

    @Test func pollerReportsWhichSocketIsReady() throws {
        let a = try context.socket(.pull)
        let b = try context.socket(.pull)
        let pushA = try context.socket(.push)
        let pushB = try context.socket(.push)
        try link(a, pushA, over: .inproc)
        try link(b, pushB, over: .inproc)
        var poller = ZMQPoller()
        poller.add(a)
        poller.add(b)
        #expect(try poller.poll(timeout: .milliseconds(20)) == [[], []])
        try pushB.send("b")
        let ready = try poller.poll(timeout: .seconds(5))
        #expect(ready == [[], .readable])
        #expect(try b.receive(wait: .nonBlocking)?.text == "b")
    }

    @Test func inboxDeliversEverythingInBatchesInOrder() async throws {
        let context = self.context
        let endpoint = bindEndpoint(.inproc)
        let inbox = ZMQInbox(context: context, maxBatch: 64) { context in
            let pull = try context.socket(.pull)
            try pull.bind(endpoint)
            return pull
        }
        let total = 5000
        let sender = Thread {
            do {
                let push = try context.socket(.push)
                // inproc needs the bind first; retry connect until the inbox thread has bound.
                try push.connect(endpoint)
                for i in 0..<total { try push.send(multipart: [Array("\(i)".utf8), [UInt8(i % 256)]]) }
                push.close()
            } catch {
                Issue.record("sender failed: \(error)")
            }
        }
        try await Task.sleep(for: .milliseconds(50))
        sender.start()
        var seen = 0
        var batches = 0
        for try await batch in inbox {
            batches += 1
            #expect(batch.count <= 64)
            for message in batch {
                #expect(message.count == 2)
                #expect(message[0].text == "\(seen)")
                seen += 1
            }
            if seen == total { break }
        }
        #expect(seen == total)
        #expect(batches < total, "messages were batched (\(batches) batches)")
        inbox.stop()
    }

    @Test func inboxReportsSetUpErrors() async throws {
        let inbox = ZMQInbox(context: context) { context in
            let pull = try context.socket(.pull)
            try pull.bind("bogus://endpoint")
            return pull
        }
        await #expect(throws: ZMQError.self) {
            for try await _ in inbox {}
        }
    }
}
