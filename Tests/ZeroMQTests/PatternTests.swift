import Foundation
import Testing

@testable import ZeroMQ

@Suite("Socket patterns over every transport")
struct PatternTests {
    let context: ZMQContext
    init() throws { context = try ZMQContext() }

    @Test(arguments: Transport.allCases)
    func pushPull(_ transport: Transport) throws {
        let pull = try context.socket(.pull)
        let push = try context.socket(.push)
        try link(pull, push, over: transport)
        for i in 0..<10 { try push.send("m\(i)") }
        let got = try (0..<10).map { _ in try #require(try pull.receive(wait: .timeout(.seconds(5)))).text }
        #expect(got == (0..<10).map { "m\($0)" })
    }

    @Test(arguments: Transport.allCases)
    func pubSub(_ transport: Transport) throws {
        let pub = try context.socket(.pub)
        let sub = try context.socket(.sub)
        try sub.subscribe(Array("weights".utf8))
        try link(pub, sub, over: transport)
        // Subscriptions propagate asynchronously ("slow joiner"): publish until one arrives.
        var received: ZMQMessage?
        for _ in 0..<100 where received == nil {
            try pub.send("other:ignored")
            try pub.send("weights:v1")
            received = try sub.receive(wait: .timeout(.milliseconds(50)))
        }
        #expect(try #require(received).text == "weights:v1")
    }

    @Test(arguments: Transport.allCases)
    func reqRep(_ transport: Transport) throws {
        let rep = try context.socket(.rep)
        let req = try context.socket(.req)
        try link(rep, req, over: transport)
        try req.send("ping")
        #expect(try #require(try rep.receive(wait: .timeout(.seconds(5)))).text == "ping")
        try rep.send("pong")
        #expect(try #require(try req.receive(wait: .timeout(.seconds(5)))).text == "pong")
    }

    @Test(arguments: Transport.allCases)
    func dealerRouter(_ transport: Transport) throws {
        let router = try context.socket(.router)
        let dealer = try context.socket(.dealer)
        try dealer.setRoutingID(Array("worker-1".utf8))
        try router.setRouterMandatory(true)
        try link(router, dealer, over: transport)
        try dealer.send(multipart: [Array("join".utf8), [1, 2, 3]])
        let frames = try #require(try router.receiveMultipart(wait: .timeout(.seconds(5))))
        #expect(frames.map(\.bytes) == [Array("worker-1".utf8), Array("join".utf8), [1, 2, 3]])
        try router.send(multipart: [Array("worker-1".utf8), Array("welcome".utf8)])
        #expect(try #require(try dealer.receive(wait: .timeout(.seconds(5)))).text == "welcome")
        // An unknown routing id is an error with ROUTER_MANDATORY, not a silent drop.
        let error = #expect(throws: ZMQError.self) {
            try router.send(multipart: [Array("nobody".utf8), Array("x".utf8)])
        }
        #expect(error?.isHostUnreachable == true)
    }

    @Test(arguments: Transport.allCases)
    func pair(_ transport: Transport) throws {
        let a = try context.socket(.pair)
        let b = try context.socket(.pair)
        try link(a, b, over: transport)
        try b.send("to a")
        #expect(try #require(try a.receive(wait: .timeout(.seconds(5)))).text == "to a")
        try a.send("to b")
        #expect(try #require(try b.receive(wait: .timeout(.seconds(5)))).text == "to b")
    }

    @Test func unbindAndDisconnect() throws {
        let pull = try context.socket(.pull)
        let push = try context.socket(.push)
        let endpoint = try link(pull, push, over: .tcp)
        try push.send("before")
        #expect(try pull.receive(wait: .timeout(.seconds(5)))?.text == "before")
        try push.disconnect(endpoint)
        try pull.unbind(endpoint)
        // After unbinding, the port is free again: another socket can bind it.
        let again = try context.socket(.pull)
        let bound = try bindRetrying(again, endpoint)
        #expect(bound)
    }
}

/// Binds, retrying while libzmq's I/O thread still holds the address from an earlier unbind.
func bindRetrying(_ socket: ZMQSocket, _ endpoint: String) throws -> Bool {
    for _ in 0..<50 {
        do {
            try socket.bind(endpoint)
            return true
        } catch {
            guard error.isAddressInUse else { throw error }
            Thread.sleep(forTimeInterval: 0.02)
        }
    }
    return false
}
