/// Policy weights tagged with the version they are.
public struct VersionedParameters: Sendable {
    /// The policy version.
    public let version: Int
    /// Its weights.
    public let parameters: GPTParameters

    public init(version: Int, parameters: GPTParameters) {
        self.version = version
        self.parameters = parameters
    }
}

/// Where a ``GPTSampler`` looks for newer weights between tokens (partial rollouts).
///
/// Asked before every generation step that draws a token; the answer only offers weights, the
/// sampler decides (``WeightSwap/shouldSwap(holding:offered:everyRowStarted:)``). A rollout worker
/// offers the newest version its weight broadcast delivered; tests offer versions on a fixed
/// schedule of positions (``ScheduledWeights``), which keeps a run deterministic.
public protocol SamplingWeightsSource: Sendable {
    /// The newest weights on offer before the tokens at sequence position `position` (prompt
    /// included, 0-based) are drawn, or nil if none. Called from the sampling threads.
    func offer(position: Int) -> VersionedParameters?
}

/// The one rule for swapping weights in the middle of a batch (partial rollouts): which version
/// the next token of a batch is sampled with.
///
/// A sampler holding version `holding` moves to an `offered` version only if it is newer, and
/// only once every row of the batch has drawn its first token with the version it was assigned
/// (so a sequence's first token always carries the assigned version, as
/// `BatchAudit`'s token-version rule requires). Versions never go back: within a sequence they are
/// non-decreasing. Pure: no weights, no clock.
public enum WeightSwap {
    /// Whether the next token is sampled with `offered` (nil: nothing on offer) instead of
    /// `holding`; `everyRowStarted` says whether every live row has drawn at least one token.
    public static func shouldSwap(holding: Int, offered: Int?, everyRowStarted: Bool) -> Bool {
        guard let offered, everyRowStarted else { return false }
        return offered > holding
    }
}

/// Offers fixed weights from fixed positions on: `(from: p, weights)` is on offer before the
/// tokens at positions ≥ p (the newest such entry). Deterministic, so a batch sampled with it
/// depends only on its seeds and this schedule (tests force a sequence across two versions).
public struct ScheduledWeights: SamplingWeightsSource {
    /// (first position, weights), in any order.
    public let schedule: [(from: Int, weights: VersionedParameters)]

    public init(_ schedule: [(from: Int, weights: VersionedParameters)]) {
        self.schedule = schedule
    }

    public func offer(position: Int) -> VersionedParameters? {
        schedule.filter { $0.from <= position }.max { $0.weights.version < $1.weights.version }?.weights
    }
}
