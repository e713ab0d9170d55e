import Distributed

/// A malformed or unacceptable message on the wire.
///
/// Decoding never traps on hostile input: every malformed input throws a `WireError` whose
/// ``code`` says which check failed and whose ``context`` is a one-line explanation, e.g.
/// "peer speaks protocol 3, this build speaks 1". Compare errors by ``code``.
public struct WireError: DistributedActorSystemError, Hashable, CustomStringConvertible {
    /// Which check failed. Extensible: new codes may be added without breaking clients.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: Hashable, Sendable {
            case truncated, badMagic, unsupportedVersion, unknownKind, lengthMismatch, oversize, malformed
        }
        private let base: Base

        /// The input ended before a field was complete.
        public static let truncated = Code(base: .truncated)
        /// The header does not start with the magic bytes `REIN`.
        public static let badMagic = Code(base: .badMagic)
        /// The peer speaks a protocol version this build does not.
        public static let unsupportedVersion = Code(base: .unsupportedVersion)
        /// The message kind is not one this build knows.
        public static let unknownKind = Code(base: .unknownKind)
        /// A declared length or count disagrees with the bytes or frames present.
        public static let lengthMismatch = Code(base: .lengthMismatch)
        /// A declared length or count exceeds the configured limits.
        public static let oversize = Code(base: .oversize)
        /// A field holds a value that cannot be valid (bad UTF-8, bad tag, trailing bytes…).
        public static let malformed = Code(base: .malformed)

        public var description: String { "\(base)" }
    }

    /// Which check failed.
    public let code: Code
    /// A one-line explanation naming the offending values.
    public let context: String

    /// An error with `code` and a one-line `context`.
    public init(_ code: Code, _ context: String) {
        self.code = code
        self.context = context
    }

    public var description: String { "wire error (\(code)): \(context)" }

    static func truncated(_ what: String, need: Int, have: Int) -> WireError {
        WireError(.truncated, "\(what): need \(need) bytes, \(have) left")
    }

    /// The error for a peer whose header carries another protocol version.
    public static func unsupportedVersion(peer: UInt16, local: UInt16) -> WireError {
        WireError(.unsupportedVersion, "peer speaks protocol \(peer), this build speaks \(local)")
    }
}
