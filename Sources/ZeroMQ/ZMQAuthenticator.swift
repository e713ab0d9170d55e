import CZeroMQ
import Foundation
import Synchronization

/// A ZAP handler (ZeroMQ RFC 27) that admits CURVE clients whose public key is on an allow-list.
///
/// libzmq asks the handler bound at `inproc://zeromq.zap.01` of a context about every connection
/// that a CURVE server socket of that context accepts. The authenticator binds a REP socket there
/// and answers each request on its own thread: `200` for a CURVE client whose key is allowed (the
/// key, in Z85, becomes the connection's `User-Id`), `400` for any other key or mechanism, `500`
/// for a malformed request. A denied client never completes its handshake, so it can send nothing
/// and receive nothing.
///
/// Create it before binding the server sockets (a server socket accepts every client with the
/// right server key while no handler is bound); one authenticator per context. Decisions are
/// reported to `observer` with the client's key and address, never with a secret.
public final class ZMQAuthenticator: Sendable {
    /// The endpoint libzmq sends ZAP requests to.
    public static let endpoint = "inproc://zeromq.zap.01"

    /// One answered request.
    public struct Decision: Sendable, Hashable {
        /// The client's public key in Z85 (empty for a non-CURVE mechanism).
        public var publicKey: String
        /// The client's address (`127.0.0.1` for TCP).
        public var address: String
        /// The security mechanism the client used (`CURVE`, `NULL`, `PLAIN`).
        public var mechanism: String
        /// Whether the client was admitted.
        public var allowed: Bool
    }

    /// What the handler thread shares with the owner.
    final class State: Sendable {
        let allowed: Mutex<Set<String>>
        let stopped = StopFlag()
        let admitted = Atomic<Int>(0)
        let denied = Atomic<Int>(0)
        let done = DispatchSemaphore(value: 0)
        init(allowed: Set<String>) { self.allowed = Mutex(allowed) }
    }

    private let state: State

    /// Binds the handler on `context` and starts its thread.
    /// - Parameters:
    ///   - context: the context whose CURVE server sockets are to be checked.
    ///   - allowedKeys: the Z85 public keys admitted.
    ///   - observer: called on the handler thread with every decision (keep it quick).
    /// - Throws: ``ZMQError`` if the ZAP endpoint cannot be bound (another handler on the context).
    public init(
        context: ZMQContext, allowedKeys: Set<String>,
        observer: (@Sendable (Decision) -> Void)? = nil
    ) throws(ZMQError) {
        let state = State(allowed: allowedKeys)
        self.state = state
        let socket = try context.socket(.rep)
        do throws(ZMQError) {
            try socket.bind(Self.endpoint)
        } catch {
            socket.close()
            throw error
        }
        let box = SocketHandover(socket)
        let thread = Thread {
            Self.run(box.take(), state: state, observer: observer)
            state.done.signal()
        }
        thread.name = "rein-zap"
        thread.start()
    }

    /// Replaces the allow-list (later handshakes use the new one).
    public func setAllowedKeys(_ keys: Set<String>) {
        state.allowed.withLock { $0 = keys }
    }

    /// Clients admitted so far.
    public var admitted: Int { state.admitted.load(ordering: .relaxed) }
    /// Clients denied so far.
    public var denied: Int { state.denied.load(ordering: .relaxed) }

    /// Stops answering and unbinds (within ~100 ms). Idempotent. Server sockets that still accept
    /// connections afterwards fail their handshakes.
    public func stop() {
        guard !state.stopped.isSet else { return }
        state.stopped.set()
        state.done.wait()
    }

    deinit { state.stopped.set() }

    private static func run(_ socket: ZMQSocket, state: State, observer: (@Sendable (Decision) -> Void)?) {
        defer { socket.close() }
        while !state.stopped.isSet {
            let request: [ZMQMessage]
            do {
                guard let received = try socket.receiveMultipart(wait: .timeout(.milliseconds(100))) else {
                    continue
                }
                request = received
            } catch {
                return  // context terminated
            }
            let reply = answer(request, allowed: state.allowed.withLock { $0 })
            if let decision = reply.decision {
                if decision.allowed {
                    state.admitted.add(1, ordering: .relaxed)
                } else {
                    state.denied.add(1, ordering: .relaxed)
                }
                observer?(decision)
            }
            do {
                _ = try socket.send(multipart: reply.frames)
            } catch {
                return
            }
        }
    }

    /// The reply frames to one request (RFC 27): version, request id, status code, status text,
    /// user id, metadata.
    static func answer(_ request: [ZMQMessage], allowed: Set<String>)
        -> (frames: [[UInt8]], decision: Decision?)
    {
        func reply(_ id: [UInt8], _ code: String, _ text: String, user: String = "") -> [[UInt8]] {
            [Array("1.0".utf8), id, Array(code.utf8), Array(text.utf8), Array(user.utf8), []]
        }
        let requestID = request.count > 1 ? request[1].bytes : []
        guard request.count >= 6, request[0].string == "1.0" else {
            return (reply(requestID, "500", "malformed ZAP request"), nil)
        }
        let address = request[3].string
        let mechanism = request[5].string
        guard mechanism == "CURVE", request.count >= 7, request[6].count == 32 else {
            return (
                reply(requestID, "400", "mechanism \(mechanism) not allowed"),
                Decision(publicKey: "", address: address, mechanism: mechanism, allowed: false)
            )
        }
        let key = z85(request[6].bytes)
        let ok = allowed.contains(key)
        let decision = Decision(publicKey: key, address: address, mechanism: mechanism, allowed: ok)
        return ok
            ? (reply(requestID, "200", "OK", user: key), decision)
            : (reply(requestID, "400", "key not allowed"), decision)
    }

    /// The Z85 text of a 32-byte key.
    static func z85(_ key: [UInt8]) -> String {
        var out = [CChar](repeating: 0, count: 41)
        _ = key.withUnsafeBufferPointer { zmq_z85_encode(&out, $0.baseAddress, key.count) }
        return String(decoding: out.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// Moves a socket to the thread that will own it (the thread start is the barrier libzmq needs).
final class SocketHandover: @unchecked Sendable {
    private var socket: ZMQSocket?
    init(_ socket: sending ZMQSocket) { self.socket = socket }
    func take() -> ZMQSocket {
        defer { socket = nil }
        return socket!
    }
}
