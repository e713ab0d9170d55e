import Foundation

/// Why samples were dropped (produced and delivered, never trained).
public enum DropReason: String, Codable, Sendable, Hashable, CaseIterable, Comparable {
    /// Their lag at training time was above `max_staleness`.
    case stale
    /// Delivered but not trainable in order when a drain timed out (the run ended without them).
    case abandoned

    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
}

/// Why a delivered batch was refused (never trained, outside the balance).
public enum RefusalReason: String, Codable, Sendable, Hashable, CaseIterable, Comparable {
    /// Its batch had been given up as lost (its worker was lost or rejoined) and handed out again.
    case late
    /// Its lease had expired: the batch was counted lost and handed out again.
    case leaseExpired = "lease expired"
    /// The same batch (index and attempt) had been delivered already.
    case duplicate
    /// Assigned by an earlier incarnation of the learner, before a restart.
    case previousLearner = "previous learner"
    /// It did not carry its assignment's ``AssignmentToken``: not from the worker it was assigned
    /// to (a forgery on the sample stream). The assignment stays out with its worker.
    case wrongToken = "wrong token"
    /// Its contents are not what an honest worker sends for its assignment (``BatchAudit``): a
    /// prompt, reward or outcome the task does not give, a token outside the vocabulary, token versions
    /// that break ``TokenVersionRule``, sample ids other than the assignment's, values that are not
    /// log-probabilities. Its worker is benched for the rest of the incarnation (what it holds is
    /// given up and handed out again), and what it delivers from then on is refused for this
    /// reason too.
    case forgedContents = "forged contents"

    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
}

/// Where every sample of a run went — the one ledger of every launch mode.
///
/// A sample is *produced* when its batch is handed out for sampling (the batch size is known
/// then), and from that moment it is exactly one of: in flight (assigned, or delivered and waiting
/// for its turn to train), trained, dropped (with a ``DropReason``) or lost (its worker died, left
/// or let its lease expire before delivering it). ``balances`` states that identity; a run that
/// ends with it false is an error. Refused deliveries (``RefusalReason``) are outside the balance:
/// their samples were already counted lost, or belong to an earlier incarnation.
///
/// The JSON form is the one `ledger.json` and checkpoints have always had: reasons as strings;
/// `refused` and `leasesExpired` may be absent, and the former single-process ledger (`produced`,
/// `trained`, `dropped` as a bare count, read as ``DropReason/stale``) still decodes.
public struct SampleLedger: Codable, Sendable, Hashable {
    /// Samples handed out for sampling so far.
    public var produced = 0
    /// Samples the learner trained on.
    public var trained = 0
    /// Samples dropped, by reason.
    public var dropped: [DropReason: Int] = [:]
    /// Samples assigned or delivered but neither trained nor dropped yet.
    public var inFlight = 0
    /// Samples whose worker died, left or let its lease expire before delivering them.
    public var lost = 0
    /// Leases that expired (their samples are part of ``lost``).
    public var leasesExpired = 0
    /// Samples delivered but refused, by reason; never trained.
    public var refused: [RefusalReason: Int] = [:]

    /// An empty ledger.
    public init() {}

    /// A ledger with these counts.
    public init(
        produced: Int, trained: Int, dropped: [DropReason: Int] = [:], inFlight: Int = 0, lost: Int = 0,
        leasesExpired: Int = 0, refused: [RefusalReason: Int] = [:]
    ) {
        self.produced = produced
        self.trained = trained
        self.dropped = dropped
        self.inFlight = inFlight
        self.lost = lost
        self.leasesExpired = leasesExpired
        self.refused = refused
    }

    private enum CodingKeys: String, CodingKey {
        case produced, trained, dropped
        case inFlight = "in_flight"
        case lost
        case leasesExpired = "leases_expired"
        case refused
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        produced = try c.decode(Int.self, forKey: .produced)
        trained = try c.decode(Int.self, forKey: .trained)
        if let count = try? c.decode(Int.self, forKey: .dropped) {
            // The former single-process ledger: nothing was ever in flight or lost.
            dropped = count == 0 ? [:] : [.stale: count]
            inFlight = 0
            lost = 0
        } else {
            dropped = try Self.decodeReasons(
                c.decode([String: Int].self, forKey: .dropped), forKey: .dropped, in: c)
            inFlight = try c.decode(Int.self, forKey: .inFlight)
            lost = try c.decode(Int.self, forKey: .lost)
        }
        leasesExpired = try c.decodeIfPresent(Int.self, forKey: .leasesExpired) ?? 0
        refused = try Self.decodeReasons(
            c.decodeIfPresent([String: Int].self, forKey: .refused) ?? [:], forKey: .refused, in: c)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(produced, forKey: .produced)
        try c.encode(trained, forKey: .trained)
        try c.encode(
            Dictionary(uniqueKeysWithValues: dropped.map { ($0.key.rawValue, $0.value) }), forKey: .dropped)
        try c.encode(inFlight, forKey: .inFlight)
        try c.encode(lost, forKey: .lost)
        try c.encode(leasesExpired, forKey: .leasesExpired)
        try c.encode(
            Dictionary(uniqueKeysWithValues: refused.map { ($0.key.rawValue, $0.value) }), forKey: .refused)
    }

    private static func decodeReasons<Reason: RawRepresentable<String>>(
        _ raw: [String: Int], forKey key: CodingKeys, in container: KeyedDecodingContainer<CodingKeys>
    ) throws -> [Reason: Int] {
        var reasons: [Reason: Int] = [:]
        for (name, count) in raw {
            guard let reason = Reason(rawValue: name) else {
                throw DecodingError.dataCorruptedError(
                    forKey: key, in: container,
                    debugDescription: "unknown \(key.stringValue) reason \"\(name)\"")
            }
            reasons[reason] = count
        }
        return reasons
    }

    /// All dropped samples, whatever the reason.
    public var droppedTotal: Int { dropped.values.reduce(0, +) }

    /// Whether produced = trained + dropped + in flight + lost.
    public var balances: Bool { produced == trained + droppedTotal + inFlight + lost }

    /// The ledger as one line, for logs and errors.
    public var summary: String {
        func list<R: RawRepresentable<String> & Comparable>(_ counts: [R: Int]) -> String {
            counts.sorted { $0.key < $1.key }.map { "\($0.key.rawValue) \($0.value)" }.joined(separator: ", ")
        }
        return "produced \(produced) = trained \(trained) + dropped \(droppedTotal)"
            + (dropped.isEmpty ? "" : " (\(list(dropped)))") + " + in flight \(inFlight) + lost \(lost)"
            + (leasesExpired == 0 ? "" : " (\(leasesExpired) leases expired)")
            + (refused.isEmpty ? "" : "; refused on delivery: \(list(refused))")
    }

    /// Writes the ledger as `ledger.json` in `folder` (atomically).
    public func write(to folder: RunFolder) throws(RunFolderError) {
        try folder.writeLedger(self)
    }

    /// Throws ``LedgerError`` unless the ledger balances (at the end of a run, also nothing may be
    /// in flight).
    public func check(final: Bool) throws(LedgerError) {
        guard balances else { throw LedgerError("sample ledger does not balance: \(summary)") }
        if final, inFlight != 0 {
            throw LedgerError("sample ledger: \(inFlight) samples still in flight at the end")
        }
    }
}

/// A ledger that does not balance, as one line.
public struct LedgerError: Error, CustomStringConvertible, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
