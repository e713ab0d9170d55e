import Foundation
import Synchronization
import Testing

@testable import ZeroMQ

@Suite("ZAP authenticator (CURVE allow-list)")
struct AuthenticatorTests {
    let context: ZMQContext
    init() throws { context = try ZMQContext() }

    @Test func allowedClientIsAdmittedAndNamedByItsKey() throws {
        let server = try ZMQCurveKeyPair.generate()
        let client = try ZMQCurveKeyPair.generate()
        let decisions = Mutex<[ZMQAuthenticator.Decision]>([])
        let auth = try ZMQAuthenticator(context: context, allowedKeys: [client.publicKey]) { decision in
            decisions.withLock { $0.append(decision) }
        }
        defer { auth.stop() }
        let pull = try context.socket(.pull)
        try pull.setCurveServer(server)
        let push = try context.socket(.push)
        try push.setCurveClient(client, serverKey: server.publicKey)
        try link(pull, push, over: .tcp)
        try push.send("hello")
        let received = try #require(try pull.receive(wait: .timeout(.seconds(5))))
        #expect(received.text == "hello")
        #expect(received.metadata("User-Id") == client.publicKey)
        #expect(received.metadata("Peer-Address") == "127.0.0.1")
        #expect(auth.admitted == 1)
        #expect(auth.denied == 0)
        let seen = decisions.withLock { $0 }
        #expect(seen.map(\.publicKey) == [client.publicKey])
        #expect(seen.allSatisfy { $0.allowed && $0.mechanism == "CURVE" })
    }

    @Test func clientWithAnUnlistedKeyDeliversNothing() throws {
        let server = try ZMQCurveKeyPair.generate()
        let listed = try ZMQCurveKeyPair.generate()
        let stranger = try ZMQCurveKeyPair.generate()
        let auth = try ZMQAuthenticator(context: context, allowedKeys: [listed.publicKey])
        defer { auth.stop() }
        let pull = try context.socket(.pull)
        try pull.setCurveServer(server)
        let push = try context.socket(.push)
        try push.setLinger(.zero)
        // The stranger knows the server key: only the allow-list keeps it out.
        try push.setCurveClient(stranger, serverKey: server.publicKey)
        try link(pull, push, over: .tcp)
        _ = try push.send("intrusion", wait: .timeout(.milliseconds(300)))
        #expect(try pull.receive(wait: .timeout(.milliseconds(700))) == nil)
        #expect(auth.denied >= 1)
        #expect(auth.admitted == 0)
    }

    @Test func deniedSubscriberReceivesNothingAllowedOneDoes() throws {
        let server = try ZMQCurveKeyPair.generate()
        let allowed = try ZMQCurveKeyPair.generate()
        let stranger = try ZMQCurveKeyPair.generate()
        let auth = try ZMQAuthenticator(context: context, allowedKeys: [allowed.publicKey])
        defer { auth.stop() }
        let pub = try context.socket(.pub)
        try pub.setCurveServer(server)
        try pub.bind("tcp://127.0.0.1:*")
        let endpoint = try pub.lastEndpoint
        var subscribers: [ZMQSocket] = []
        for keys in [allowed, stranger] {
            let sub = try context.socket(.sub)
            try sub.setCurveClient(keys, serverKey: server.publicKey)
            try sub.subscribe()
            try sub.connect(endpoint)
            subscribers.append(sub)
        }
        // Publish until the allowed subscriber hears it (PUB drops until a subscription arrives).
        var heard: ZMQMessage?
        for _ in 0..<50 where heard == nil {
            try pub.send("weights")
            heard = try subscribers[0].receive(wait: .timeout(.milliseconds(100)))
        }
        #expect(heard?.text == "weights")
        #expect(try subscribers[1].receive(wait: .timeout(.milliseconds(300))) == nil)
        #expect(auth.denied >= 1)
    }

    @Test func keysCanBeReplacedWhileRunning() throws {
        let server = try ZMQCurveKeyPair.generate()
        let client = try ZMQCurveKeyPair.generate()
        let auth = try ZMQAuthenticator(context: context, allowedKeys: [])
        defer { auth.stop() }
        auth.setAllowedKeys([client.publicKey])
        let pull = try context.socket(.pull)
        try pull.setCurveServer(server)
        let push = try context.socket(.push)
        try push.setCurveClient(client, serverKey: server.publicKey)
        try link(pull, push, over: .tcp)
        try push.send("late")
        #expect(try pull.receive(wait: .timeout(.seconds(5)))?.text == "late")
    }

    @Test func aSecondHandlerOnTheSameContextIsRefused() throws {
        let first = try ZMQAuthenticator(context: context, allowedKeys: [])
        defer { first.stop() }
        #expect(throws: ZMQError.self) { try ZMQAuthenticator(context: context, allowedKeys: []) }
    }

    @Test func malformedRequestsGetA500() throws {
        // Talk to the handler directly, as libzmq would, with a request in another version.
        let auth = try ZMQAuthenticator(context: context, allowedKeys: [])
        defer { auth.stop() }
        let req = try context.socket(.req)
        try req.connect(ZMQAuthenticator.endpoint)
        #expect(try req.send(multipart: [Array("9.9".utf8), Array("id-7".utf8)]))
        let reply = try #require(try req.receiveMultipart(wait: .timeout(.seconds(5))))
        #expect(reply.count == 6)
        #expect(reply[1].text == "id-7")
        #expect(reply[2].text == "500")
        // A NULL-mechanism request is refused, not admitted.
        let null: [[UInt8]] = ["1.0", "id-8", "", "10.0.0.1", "", "NULL"].map { Array($0.utf8) }
        #expect(try req.send(multipart: null))
        let refused = try #require(try req.receiveMultipart(wait: .timeout(.seconds(5))))
        #expect(refused[2].text == "400")
        #expect(auth.denied == 1)
    }
}
