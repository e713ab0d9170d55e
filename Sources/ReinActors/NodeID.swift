/// The identity of one running actor system (one process, or one node of an in-memory bus).
///
/// A random 64-bit value drawn when the system starts, so it doubles as the node's *incarnation*:
/// a restarted process is a different node, and references to actors of the old one fail instead of
/// silently reaching the new one. It is the `sender` field of every ``WireHeader`` and the ZeroMQ
/// routing id of the node's sockets. Humans read the node's name (see ``Member``).
public struct NodeID: Hashable, Sendable, Codable, CustomStringConvertible {
    /// The raw 64-bit value.
    public let rawValue: UInt64

    public init(rawValue: UInt64) { self.rawValue = rawValue }

    /// A fresh random node id (never 0).
    public static func random() -> NodeID {
        var g = SystemRandomNumberGenerator()
        return NodeID(rawValue: g.next(upperBound: UInt64.max) + 1)
    }

    /// The eight little-endian bytes (the ZeroMQ routing id).
    public var bytes: [UInt8] { withUnsafeBytes(of: rawValue.littleEndian) { Array($0) } }

    /// The id read back from eight little-endian bytes, or `nil` for any other length.
    public init?(bytes: some Collection<UInt8>) {
        guard bytes.count == 8 else { return nil }
        rawValue = bytes.reversed().reduce(0) { $0 << 8 | UInt64($1) }
    }

    public var description: String {
        let s = String(rawValue, radix: 16)
        return "node:" + String(repeating: "0", count: 16 - s.count) + s
    }
}
