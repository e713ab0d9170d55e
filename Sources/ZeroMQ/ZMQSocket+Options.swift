import CZeroMQ

/// Socket options. Each setter throws ``ZMQError`` naming the option if libzmq refuses it.
extension ZMQSocket {
    func setInt(_ option: Int32, _ name: String, _ value: Int32) throws(ZMQError) {
        var v = value
        if zmq_setsockopt(try live("zmq_setsockopt"), option, &v, MemoryLayout<Int32>.size) != 0 {
            throw ZMQError.last("zmq_setsockopt", context: "\(name)=\(value)")
        }
    }

    func setInt64(_ option: Int32, _ name: String, _ value: Int64) throws(ZMQError) {
        var v = value
        if zmq_setsockopt(try live("zmq_setsockopt"), option, &v, MemoryLayout<Int64>.size) != 0 {
            throw ZMQError.last("zmq_setsockopt", context: "\(name)=\(value)")
        }
    }

    /// Sets a binary option; `display` is what errors show (never the value for secrets).
    func setBytes(_ option: Int32, _ name: String, _ value: [UInt8], display: String) throws(ZMQError) {
        let handle = try live("zmq_setsockopt")
        let rc = value.withUnsafeBytes { zmq_setsockopt(handle, option, $0.baseAddress, $0.count) }
        if rc != 0 { throw ZMQError.last("zmq_setsockopt", context: "\(name)=\(display)") }
    }

    func getInt(_ option: Int32, _ name: String) throws(ZMQError) -> Int32 {
        var v: Int32 = 0
        var size = MemoryLayout<Int32>.size
        if zmq_getsockopt(try live("zmq_getsockopt"), option, &v, &size) != 0 {
            throw ZMQError.last("zmq_getsockopt", context: name)
        }
        return v
    }

    func stringOption(_ option: Int32, _ name: String) throws(ZMQError) -> String {
        var buffer = [CChar](repeating: 0, count: 1024)
        var size = buffer.count
        if zmq_getsockopt(try live("zmq_getsockopt"), option, &buffer, &size) != 0 {
            throw ZMQError.last("zmq_getsockopt", context: name)
        }
        return String(
            decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func milliseconds(_ duration: Duration?) -> Int32 {
        guard let duration else { return -1 }
        return Int32(clamping: duration.zmqMilliseconds)
    }

    /// Outbound queue limit in messages (`ZMQ_SNDHWM`; 0 = unlimited). Set before bind/connect.
    public func setSendHighWaterMark(_ messages: Int) throws(ZMQError) {
        try setInt(ZMQ_SNDHWM, "ZMQ_SNDHWM", Int32(clamping: messages))
    }

    /// Inbound queue limit in messages (`ZMQ_RCVHWM`; 0 = unlimited). Set before bind/connect.
    public func setReceiveHighWaterMark(_ messages: Int) throws(ZMQError) {
        try setInt(ZMQ_RCVHWM, "ZMQ_RCVHWM", Int32(clamping: messages))
    }

    /// How long unsent messages are kept after ``close()`` (`ZMQ_LINGER`; `nil` = forever).
    public func setLinger(_ duration: Duration?) throws(ZMQError) {
        try setInt(ZMQ_LINGER, "ZMQ_LINGER", Self.milliseconds(duration))
    }

    /// Blocking receives give up after this long (`ZMQ_RCVTIMEO`; `nil` = never).
    public func setReceiveTimeout(_ duration: Duration?) throws(ZMQError) {
        try setInt(ZMQ_RCVTIMEO, "ZMQ_RCVTIMEO", Self.milliseconds(duration))
    }

    /// Blocking sends give up after this long (`ZMQ_SNDTIMEO`; `nil` = never).
    public func setSendTimeout(_ duration: Duration?) throws(ZMQError) {
        try setInt(ZMQ_SNDTIMEO, "ZMQ_SNDTIMEO", Self.milliseconds(duration))
    }

    /// Peers sending a frame larger than this are disconnected (`ZMQ_MAXMSGSIZE`; `nil` = no limit).
    public func setMaxMessageSize(_ bytes: Int?) throws(ZMQError) {
        try setInt64(ZMQ_MAXMSGSIZE, "ZMQ_MAXMSGSIZE", bytes.map { Int64($0) } ?? -1)
    }

    /// The identity a ROUTER peer sees for this socket (`ZMQ_ROUTING_ID`, 1–255 bytes).
    public func setRoutingID(_ id: [UInt8]) throws(ZMQError) {
        try setBytes(ZMQ_ROUTING_ID, "ZMQ_ROUTING_ID", id, display: "\(id.count) bytes")
    }

    /// SUB sockets: receive messages starting with `prefix` (empty = everything).
    public func subscribe(_ prefix: [UInt8] = []) throws(ZMQError) {
        try setBytes(ZMQ_SUBSCRIBE, "ZMQ_SUBSCRIBE", prefix, display: "\(prefix.count) bytes")
    }

    /// SUB sockets: undo one ``subscribe(_:)``.
    public func unsubscribe(_ prefix: [UInt8] = []) throws(ZMQError) {
        try setBytes(ZMQ_UNSUBSCRIBE, "ZMQ_UNSUBSCRIBE", prefix, display: "\(prefix.count) bytes")
    }

    /// ZMTP heartbeats: ping every `interval`; drop the connection if nothing arrives within
    /// `timeout`; ask the peer to time out after `ttl`. Set before bind/connect.
    public func setHeartbeat(interval: Duration, timeout: Duration? = nil, ttl: Duration? = nil)
        throws(ZMQError)
    {
        try setInt(ZMQ_HEARTBEAT_IVL, "ZMQ_HEARTBEAT_IVL", Self.milliseconds(interval))
        if let timeout {
            try setInt(ZMQ_HEARTBEAT_TIMEOUT, "ZMQ_HEARTBEAT_TIMEOUT", Self.milliseconds(timeout))
        }
        if let ttl { try setInt(ZMQ_HEARTBEAT_TTL, "ZMQ_HEARTBEAT_TTL", Self.milliseconds(ttl)) }
    }

    /// Queue messages only to completed connections (`ZMQ_IMMEDIATE`).
    public func setImmediate(_ on: Bool) throws(ZMQError) {
        try setInt(ZMQ_IMMEDIATE, "ZMQ_IMMEDIATE", on ? 1 : 0)
    }

    /// ROUTER: fail with `EHOSTUNREACH` instead of silently dropping unroutable messages.
    public func setRouterMandatory(_ on: Bool) throws(ZMQError) {
        try setInt(ZMQ_ROUTER_MANDATORY, "ZMQ_ROUTER_MANDATORY", on ? 1 : 0)
    }

    /// ROUTER: a new connection whose routing id is in use takes it over (`ZMQ_ROUTER_HANDOVER`);
    /// the old connection is closed. Without it libzmq ignores the newcomer while the old
    /// connection lasts, and anything the newcomer sent is never read.
    public func setRouterHandover(_ on: Bool) throws(ZMQError) {
        try setInt(ZMQ_ROUTER_HANDOVER, "ZMQ_ROUTER_HANDOVER", on ? 1 : 0)
    }

    /// Reconnection delay after a lost connection (`ZMQ_RECONNECT_IVL`).
    public func setReconnectInterval(_ duration: Duration) throws(ZMQError) {
        try setInt(ZMQ_RECONNECT_IVL, "ZMQ_RECONNECT_IVL", Self.milliseconds(duration))
    }

    /// Maximum time for the ZMTP/CURVE handshake (`ZMQ_HANDSHAKE_IVL`).
    public func setHandshakeInterval(_ duration: Duration) throws(ZMQError) {
        try setInt(ZMQ_HANDSHAKE_IVL, "ZMQ_HANDSHAKE_IVL", Self.milliseconds(duration))
    }

    /// The ZAP domain used for authentication requests of this socket.
    public func setZAPDomain(_ domain: String) throws(ZMQError) {
        try setBytes(ZMQ_ZAP_DOMAIN, "ZMQ_ZAP_DOMAIN", Array(domain.utf8), display: domain)
    }

    /// Whether the last received frame has more frames following (`ZMQ_RCVMORE`).
    public var receiveMore: Bool {
        get throws(ZMQError) { try getInt(ZMQ_RCVMORE, "ZMQ_RCVMORE") != 0 }
    }

    // MARK: CURVE

    /// Makes this socket a CURVE server with the given key pair (set before bind).
    public func setCurveServer(_ keys: ZMQCurveKeyPair) throws(ZMQError) {
        try setInt(ZMQ_CURVE_SERVER, "ZMQ_CURVE_SERVER", 1)
        try setBytes(
            ZMQ_CURVE_SECRETKEY, "ZMQ_CURVE_SECRETKEY", Array(keys.secretKey.utf8), display: "<secret>")
        try setBytes(ZMQ_CURVE_PUBLICKEY, "ZMQ_CURVE_PUBLICKEY", Array(keys.publicKey.utf8), display: "<key>")
    }

    /// Makes this socket a CURVE client of the server with public key `serverKey` (set before
    /// connect).
    public func setCurveClient(_ keys: ZMQCurveKeyPair, serverKey: String) throws(ZMQError) {
        try setBytes(ZMQ_CURVE_SERVERKEY, "ZMQ_CURVE_SERVERKEY", Array(serverKey.utf8), display: "<key>")
        try setBytes(ZMQ_CURVE_PUBLICKEY, "ZMQ_CURVE_PUBLICKEY", Array(keys.publicKey.utf8), display: "<key>")
        try setBytes(
            ZMQ_CURVE_SECRETKEY, "ZMQ_CURVE_SECRETKEY", Array(keys.secretKey.utf8), display: "<secret>")
    }
}
