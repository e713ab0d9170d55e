import CZeroMQ

/// One received frame, owned: the bytes stay in libzmq's `zmq_msg_t` and are never copied again.
///
/// A message is immutable once received, so it may cross threads (`Sendable`): the frame content
/// is only read, and the `zmq_msg_t` is closed exactly once, in `deinit`.
public final class ZMQMessage: @unchecked Sendable {
    let msg: UnsafeMutablePointer<zmq_msg_t>
    /// Whether more frames of the same multipart message follow this one.
    public let hasMore: Bool

    /// Takes over an initialised `zmq_msg_t` filled by `zmq_msg_recv`.
    init(taking msg: UnsafeMutablePointer<zmq_msg_t>, hasMore: Bool) {
        self.msg = msg
        self.hasMore = hasMore
    }

    /// The frame size in bytes.
    public var count: Int { zmq_msg_size(msg) }

    /// Calls `body` with a read-only view of the frame bytes (no copy).
    public func withUnsafeBytes<R, E: Error>(
        _ body: (UnsafeRawBufferPointer) throws(E) -> R
    ) throws(E) -> R {
        let size = zmq_msg_size(msg)
        guard size > 0, let data = zmq_msg_data(msg) else {
            return try body(UnsafeRawBufferPointer(start: nil, count: 0))
        }
        return try body(UnsafeRawBufferPointer(start: data, count: size))
    }

    /// The frame copied into an array.
    public var bytes: [UInt8] { withUnsafeBytes { Array($0) } }

    /// The frame decoded as UTF-8 (invalid sequences repaired).
    public var string: String { withUnsafeBytes { String(decoding: $0, as: UTF8.self) } }

    /// A metadata property of the connection this frame arrived on (`zmq_msg_gets`), e.g.
    /// `"Peer-Address"` (the peer's IP for TCP), `"User-Id"` (set by the ZAP handler) or
    /// `"Socket-Type"`; `nil` if the property is not set.
    public func metadata(_ property: String) -> String? {
        guard let value = property.withCString({ zmq_msg_gets(msg, $0) }) else { return nil }
        return String(cString: value)
    }

    deinit {
        zmq_msg_close(msg)
        msg.deallocate()
    }
}

/// An immutable byte buffer that can be sent without copying: libzmq takes a reference and
/// releases it (on its I/O thread) once the bytes are on the wire.
///
/// The contents are written once, in the initialiser, and never change afterwards; that is what
/// makes zero-copy sending and sharing across threads safe. Sending the same buffer to several
/// sockets (e.g. one weight broadcast to many workers) shares one allocation.
public final class ZMQBuffer: @unchecked Sendable {
    let base: UnsafeMutableRawPointer
    /// The size in bytes.
    public let count: Int

    /// Allocates `count` bytes (64-byte aligned) and lets `fill` write them once.
    public init<E: Error>(
        count: Int, fill: (UnsafeMutableRawBufferPointer) throws(E) -> Void
    ) throws(E) {
        precondition(count >= 0, "negative buffer size")
        let base = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1), alignment: 64)
        do {
            try fill(UnsafeMutableRawBufferPointer(start: base, count: count))
        } catch {
            base.deallocate()
            throw error
        }
        self.base = base
        self.count = count
    }

    /// A buffer holding a copy of `bytes`.
    public convenience init(copying bytes: some Collection<UInt8>) {
        self.init(count: bytes.count) { (out: UnsafeMutableRawBufferPointer) in
            out.copyBytes(from: bytes)
        }
    }

    /// Read-only access to the bytes.
    public func withUnsafeBytes<R, E: Error>(
        _ body: (UnsafeRawBufferPointer) throws(E) -> R
    ) throws(E) -> R {
        try body(UnsafeRawBufferPointer(start: base, count: count))
    }

    deinit { base.deallocate() }
}

/// libzmq's free callback for zero-copy frames: drops the reference taken when the frame was sent.
let zmqReleaseBuffer: @convention(c) (UnsafeMutableRawPointer?, UnsafeMutableRawPointer?) -> Void = {
    _, hint in
    guard let hint else { return }
    Unmanaged<ZMQBuffer>.fromOpaque(hint).release()
}
