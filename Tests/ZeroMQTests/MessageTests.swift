import Foundation
import Testing

@testable import ZeroMQ

@Suite("Messages, waiting and errors")
struct MessageTests {
    let context: ZMQContext
    init() throws { context = try ZMQContext() }

    @Test(arguments: Transport.allCases)
    func multipartWithEmptyAndHugeFrames(_ transport: Transport) throws {
        let pull = try context.socket(.pull)
        let push = try context.socket(.push)
        try link(pull, push, over: transport)
        let huge = (0..<(16 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        try push.send(multipart: [[], huge, [], Array("tail".utf8)])
        let frames = try #require(try pull.receiveMultipart(wait: .timeout(.seconds(20))))
        #expect(frames.count == 4)
        #expect(frames[0].count == 0)
        #expect(frames[1].count == huge.count)
        #expect(frames[1].withUnsafeBytes { $0.elementsEqual(huge) })
        #expect(frames[2].count == 0)
        #expect(frames[3].text == "tail")
        #expect(frames.map(\.hasMore) == [true, true, true, false])
    }

    @Test func zeroCopyBufferIsReleasedAfterSending() throws {
        let pull = try context.socket(.pull)
        let push = try context.socket(.push)
        try link(pull, push, over: .tcp)
        let probe = WeakProbe()
        try sendFreshBuffer(on: push, probe: probe)
        let message = try #require(try pull.receive(wait: .timeout(.seconds(5))))
        #expect(message.count == 1 << 20)
        #expect(message.withUnsafeBytes { $0[12345] } == UInt8(truncatingIfNeeded: 12345))
        // libzmq drops its reference from its I/O thread once the bytes are written.
        for _ in 0..<200 where probe.buffer != nil { Thread.sleep(forTimeInterval: 0.01) }
        #expect(probe.buffer == nil)
    }

    @Test func borrowedReceiveViewsTheFrameWithoutCopying() throws {
        let pull = try context.socket(.pull)
        let push = try context.socket(.push)
        try link(pull, push, over: .inproc)
        try push.send([9, 8, 7], more: true)
        try push.send([6])
        let first = try pull.receive(wait: .timeout(.seconds(5))) { bytes, more in (Array(bytes), more) }
        let second = try pull.receive(wait: .timeout(.seconds(5))) { bytes, more in (Array(bytes), more) }
        #expect(first?.0 == [9, 8, 7] && first?.1 == true)
        #expect(second?.0 == [6] && second?.1 == false)
    }

    @Test func nonBlockingAndTimedReceiveReturnNilWhenEmpty() throws {
        let pull = try context.socket(.pull)
        try pull.bind(bindEndpoint(.inproc))
        #expect(try pull.receive(wait: .nonBlocking) == nil)
        let clock = ContinuousClock()
        let start = clock.now
        #expect(try pull.receive(wait: .timeout(.milliseconds(100))) == nil)
        #expect(clock.now - start >= .milliseconds(90))
    }

    @Test func socketReceiveTimeoutGivesEAGAINAsNil() throws {
        let pull = try context.socket(.pull)
        try pull.setReceiveTimeout(.milliseconds(50))
        try pull.bind(bindEndpoint(.inproc))
        #expect(try pull.receive() == nil)
        // The raw errno is EAGAIN and is classified as such.
        #expect(ZMQError(operation: "zmq_msg_recv", code: EAGAIN).isAgain)
    }

    @Test func highWaterMarkPushesBack() throws {
        let pull = try context.socket(.pull)
        let push = try context.socket(.push)
        try push.setSendHighWaterMark(10)
        try pull.setReceiveHighWaterMark(10)
        try link(pull, push, over: .inproc)
        // Nobody receives: the queues fill and a non-blocking send reports "would block".
        var sent = 0
        while try push.send([0], wait: .nonBlocking) {
            sent += 1
            if sent > 10_000 { break }
        }
        #expect(sent >= 10 && sent <= 40, "queued \(sent) messages with HWM 10+10")
        #expect(try push.send([0], wait: .timeout(.milliseconds(50))) == false)
        // Draining the queue makes room again (libzmq reopens a pipe below its low-water mark).
        for _ in 0..<sent { #expect(try pull.receive(wait: .timeout(.seconds(1))) != nil) }
        #expect(try push.send([0], wait: .timeout(.seconds(1))))
    }

    @Test func contextShutdownUnblocksAReceiverOnAnotherThread() async throws {
        let context = try ZMQContext()
        let endpoint = bindEndpoint(.inproc)
        let outcome = await withCheckedContinuation { (done: CheckedContinuation<String, Never>) in
            let thread = Thread {
                do {
                    let pull = try context.socket(.pull)
                    defer { pull.close() }
                    try pull.bind(endpoint)
                    _ = try pull.receive()  // blocks until the context shuts down
                    done.resume(returning: "returned a message")
                } catch let error as ZMQError {
                    done.resume(returning: error.isTerminated ? "terminated: \(error)" : "other: \(error)")
                } catch {
                    done.resume(returning: "unexpected \(error)")
                }
            }
            thread.start()
            Thread.sleep(forTimeInterval: 0.1)
            context.shutdown()
        }
        #expect(outcome == "terminated: zmq_msg_recv failed: context terminated")
    }

    @Test(arguments: ["tcp://nonsense", "bogus://x", "tcp://127.0.0.1:notaport", "ipc://"])
    func badEndpointsGiveTypedErrors(_ endpoint: String) throws {
        let socket = try context.socket(.pull)
        let error = #expect(throws: ZMQError.self) { try socket.bind(endpoint) }
        let text = try #require(error).description
        #expect(text.hasPrefix("zmq_bind(\(endpoint)) failed: "))
        #expect(text.contains("errno"))
    }

    @Test func bindingAUsedPortIsAddressInUse() throws {
        let a = try context.socket(.pull)
        try a.bind("tcp://127.0.0.1:*")
        let endpoint = try a.lastEndpoint
        let b = try context.socket(.pull)
        let error = #expect(throws: ZMQError.self) { try b.bind(endpoint) }
        #expect(error?.isAddressInUse == true)
        #expect(
            error?.description == "zmq_bind(\(endpoint)) failed: Address already in use (errno \(EADDRINUSE))"
        )
    }

    @Test func closedSocketThrowsInsteadOfCrashing() throws {
        let socket = try context.socket(.push)
        socket.close()
        socket.close()
        #expect(!socket.isOpen)
        #expect(throws: ZMQError.self) { try socket.send("x") }
    }

    @Test func noLeakedFileDescriptorsAfterAThousandCycles() throws {
        // Warm up libzmq (its first context creates long-lived internals).
        do {
            let warm = try ZMQContext()
            let s = try warm.socket(.pull)
            try s.bind("tcp://127.0.0.1:*")
        }
        let before = openFileDescriptors()
        for _ in 0..<1000 {
            let context = try ZMQContext()
            let pull = try context.socket(.pull)
            let push = try context.socket(.push)
            try link(pull, push, over: .tcp)
            try push.send("x")
            _ = try pull.receive(wait: .timeout(.seconds(5)))
            push.close()
            pull.close()
        }
        let after = openFileDescriptors()
        // Other tests run concurrently and hold a few descriptors; a leak would show up 1000-fold.
        #expect(after - before < 100, "fds before \(before), after \(after)")
    }

    @Test func maxMessageSizeDisconnectsOversizeSenders() throws {
        let pull = try context.socket(.pull)
        try pull.setMaxMessageSize(1024)
        let push = try context.socket(.push)
        try link(pull, push, over: .tcp)
        try push.send([UInt8](repeating: 1, count: 4096))
        #expect(try pull.receive(wait: .timeout(.milliseconds(300))) == nil)
    }
}

final class WeakProbe {
    weak var buffer: ZMQBuffer?
}

/// Sends a 1 MiB buffer and keeps only a weak reference to it in `probe`.
func sendFreshBuffer(on socket: ZMQSocket, probe: WeakProbe) throws {
    let buffer = ZMQBuffer(count: 1 << 20) { bytes in
        for i in 0..<bytes.count { bytes[i] = UInt8(truncatingIfNeeded: i) }
    }
    probe.buffer = buffer
    try socket.send(buffer)
}
