/// An unguessable capability for one assignment: 128 random bits drawn from the system's
/// cryptographic generator when a batch is handed out, sent to the worker with its work order and
/// handed back with the batch.
///
/// Whoever can reach the learner's sample stream can claim any (worker, index, attempt) of a real
/// assignment; only the worker the order was sent to knows its token, so a batch is taken only if
/// it carries it (``RunStateMachine/deliver(worker:index:attempt:token:incarnation:batch:now:)``).
/// Tokens are never saved: a restarted learner knows none of the old ones (and refuses batches of
/// an earlier incarnation before looking at a token).
public struct AssignmentToken: Codable, Sendable, Hashable, CustomStringConvertible {
    /// The high 64 bits.
    public var high: UInt64
    /// The low 64 bits.
    public var low: UInt64

    /// A token with these bits (tests, decoding; the learner draws its tokens with ``random()``).
    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// The token of no assignment (what a message without one decodes to): it matches no token
    /// ``random()`` draws, except with probability 2⁻¹²⁸.
    public static let none = AssignmentToken(high: 0, low: 0)

    /// A fresh token from `SystemRandomNumberGenerator` (the operating system's CSPRNG).
    public static func random() -> AssignmentToken {
        var generator = SystemRandomNumberGenerator()
        return AssignmentToken(high: generator.next(), low: generator.next())
    }

    /// Whether `other` is this token, in time independent of where they differ (no early exit a
    /// peer could time to guess a token bit by bit).
    public func matches(_ other: AssignmentToken) -> Bool {
        ((high ^ other.high) | (low ^ other.low)) == 0
    }

    /// A short form for logs: never the token itself (logs are readable by more people than the
    /// sample stream).
    public var description: String { "token(…)" }
}
