import ZeroMQ

/// Which side of a bulk connection binds.
public enum BulkLink: Sendable, Hashable {
    /// Bind to the endpoint (`tcp://0.0.0.0:7001`, `tcp://127.0.0.1:*`, `inproc://weights`).
    case bind(String)
    /// Connect to the endpoint.
    case connect(String)
}

/// A bulk message as received: the checked header (sender, sequence, policy version, flags) and
/// the raw payload frames, read in place.
public typealias BulkMessage = WireMessage

extension WireFrame {
    /// A frame holding the raw little-endian bytes of `floats`, sent without a further copy.
    public init(floats: [Float]) {
        let buffer = ZMQBuffer(count: floats.count * MemoryLayout<Float>.size) { out in
            floats.withUnsafeBytes { out.copyMemory(from: $0) }
        }
        self.init(buffer)
    }

    /// The frame read as raw little-endian floats.
    /// - Throws: ``WireError`` (`.lengthMismatch`) if the size is not a multiple of 4.
    public func floats() throws(WireError) -> [Float] {
        guard count % MemoryLayout<Float>.size == 0 else {
            throw WireError(.lengthMismatch, "\(count) bytes are not a whole number of floats")
        }
        return withUnsafeBytes { ByteReader.floats($0) }
    }
}
