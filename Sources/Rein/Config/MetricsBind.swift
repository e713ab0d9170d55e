/// Where a node serves its Prometheus metrics (`GET /metrics` over HTTP): `runtime.metrics_bind`
/// and `--metrics-bind`. Written `none` (off, the default) or `HOST:PORT` (`[HOST]:PORT` for an
/// IPv6 address; port 0 picks a free one). The endpoint has no authentication: bind it to
/// localhost or a private interface.
public enum MetricsBind: Sendable, Hashable, Codable, CustomStringConvertible {
    /// No metrics endpoint.
    case none
    /// Serve on `host`, `port`.
    case address(host: String, port: Int)

    /// The written form of ``none``.
    public static let noneText = "none"

    /// Parses `none` or `HOST:PORT`.
    /// - Throws: ``ConfigError`` (empty path) saying what was expected.
    public init(parsing text: String) throws(ConfigError) {
        if text == Self.noneText {
            self = .none
            return
        }
        let expected = "expected HOST:PORT (e.g. 127.0.0.1:9464; port 0: any free port) or \(Self.noneText)"
        guard let colon = text.lastIndex(of: ":") else {
            throw ConfigError(path: "", "\(expected), got '\(text)'")
        }
        var host = Substring(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = host.dropFirst().dropLast() }
        let port = text[text.index(after: colon)...]
        guard !host.isEmpty, !host.contains(where: { $0 == " " || $0 == "/" || $0 == "[" || $0 == "]" })
        else {
            throw ConfigError(path: "", "\(expected), got '\(text)' (bad host)")
        }
        guard let number = Int(port), (0...65535).contains(number) else {
            throw ConfigError(path: "", "port must be in 0...65535, got '\(port)' in '\(text)'")
        }
        self = .address(host: String(host), port: number)
    }

    /// `none` or `HOST:PORT`.
    public var description: String {
        switch self {
        case .none: return Self.noneText
        case .address(let host, let port): return host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        }
    }

    /// The same host with `offset` added to the port (port 0 stays 0: every node picks its own).
    public func offset(by offset: Int) -> MetricsBind {
        guard case .address(let host, let port) = self, port != 0 else { return self }
        return .address(host: host, port: port + offset)
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        do {
            self = try Self(parsing: text)
        } catch {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: error.problem)
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}
