import ZeroMQ

/// One payload frame: owned bytes, a received ZeroMQ message, or a zero-copy send buffer.
///
/// Frames are immutable and `Sendable`; a received frame is read in place (no copy out of libzmq),
/// and a `ZMQBuffer` frame is handed to libzmq without copying.
public struct WireFrame: Sendable {
    enum Storage: Sendable {
        case bytes([UInt8])
        case message(ZMQMessage)
        case buffer(ZMQBuffer)
    }
    let storage: Storage

    /// A frame holding `bytes`.
    public init(_ bytes: [UInt8]) { storage = .bytes(bytes) }
    /// A frame viewing a received message.
    public init(_ message: ZMQMessage) { storage = .message(message) }
    /// A frame sent without copying.
    public init(_ buffer: ZMQBuffer) { storage = .buffer(buffer) }

    /// The size in bytes.
    public var count: Int {
        switch storage {
        case .bytes(let b): b.count
        case .message(let m): m.count
        case .buffer(let b): b.count
        }
    }

    /// Read-only access to the bytes (no copy).
    public func withUnsafeBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        switch storage {
        case .bytes(let b):
            return try b.withUnsafeBytes { raw in Result { () throws(E) -> R in try body(raw) } }.get()
        case .message(let m): return try m.withUnsafeBytes(body)
        case .buffer(let b): return try b.withUnsafeBytes(body)
        }
    }

    /// The bytes copied into an array.
    public var bytes: [UInt8] {
        if case .bytes(let b) = storage { return b }
        return withUnsafeBytes { Array($0) }
    }
}

extension WireFrame: ZMQFrame {
    /// Sends the frame from whatever holds its bytes (no copy for buffers and received messages).
    public func send(on socket: ZMQSocket, more: Bool, wait: ZMQWait) throws(ZMQError) -> Bool {
        switch storage {
        case .bytes(let bytes): try bytes.send(on: socket, more: more, wait: wait)
        case .buffer(let buffer): try buffer.send(on: socket, more: more, wait: wait)
        case .message(let message): try message.send(on: socket, more: more, wait: wait)
        }
    }
}
