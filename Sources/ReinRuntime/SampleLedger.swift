import Foundation
import Rein

/// Where every sample of a distributed run went.
///
/// A sample is *produced* when the learner hands its batch to a worker (the batch size is known
/// then), and from that moment it is exactly one of: in flight (assigned, or delivered and waiting
/// for its turn to train), trained, dropped (with a reason) or lost (its worker died before
/// delivering it). ``balances`` states that identity; a run that ends with it false is an error.
public struct RuntimeLedger: Codable, Sendable, Hashable {
    /// Samples assigned to workers so far.
    public var produced = 0
    /// Samples the learner trained on.
    public var trained = 0
    /// Samples dropped, by reason (`stale`: lag above `max_staleness`; `abandoned`: delivered but
    /// not trainable in order when a drain timed out).
    public var dropped: [String: Int] = [:]
    /// Samples assigned or delivered but neither trained nor dropped yet.
    public var inFlight = 0
    /// Samples whose worker died (or left) before delivering them.
    public var lost = 0
    /// Samples delivered but refused, by reason (`late`: their batch had been given up as lost;
    /// `previous learner`: assigned by the learner before it restarted). They are already counted
    /// lost (or were assigned after the checkpoint the learner resumed from), so they are outside
    /// the balance; they are never trained.
    public var refused: [String: Int] = [:]

    /// An empty ledger.
    public init() {}

    private enum CodingKeys: String, CodingKey {
        case produced, trained, dropped
        case inFlight = "in_flight"
        case lost, refused
    }

    /// Decodes a ledger; `refused` may be absent (ledgers written before it existed).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        produced = try c.decode(Int.self, forKey: .produced)
        trained = try c.decode(Int.self, forKey: .trained)
        dropped = try c.decode([String: Int].self, forKey: .dropped)
        inFlight = try c.decode(Int.self, forKey: .inFlight)
        lost = try c.decode(Int.self, forKey: .lost)
        refused = try c.decodeIfPresent([String: Int].self, forKey: .refused) ?? [:]
    }

    /// All dropped samples, whatever the reason.
    public var droppedTotal: Int { dropped.values.reduce(0, +) }

    /// Whether produced = trained + dropped + in flight + lost.
    public var balances: Bool { produced == trained + droppedTotal + inFlight + lost }

    /// The ledger as one line, for logs and errors.
    public var summary: String {
        let reasons = dropped.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(
            separator: ", ")
        return "produced \(produced) = trained \(trained) + dropped \(droppedTotal)"
            + (reasons.isEmpty ? "" : " (\(reasons))") + " + in flight \(inFlight) + lost \(lost)"
            + (refused.isEmpty
                ? ""
                : "; refused on delivery: "
                    + refused.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(
                        separator: ", "))
    }

    /// Writes the ledger as `ledger.json` in `folder` (atomically).
    public func write(to folder: RunFolder) throws(RunFolderError) {
        try folder.writeLedger(self)
    }

    /// Throws ``RuntimeError`` unless the ledger balances (at the end of a run, also nothing may be
    /// in flight).
    public func check(final: Bool) throws(RuntimeError) {
        guard balances else { throw RuntimeError("sample ledger does not balance: \(summary)") }
        if final, inFlight != 0 {
            throw RuntimeError("sample ledger: \(inFlight) samples still in flight at the end")
        }
    }
}

/// A distributed-runtime failure, as one line.
public struct RuntimeError: Error, Codable, CustomStringConvertible, Equatable {
    public var description: String
    /// An error described by `description`.
    public init(_ description: String) { self.description = description }
}
