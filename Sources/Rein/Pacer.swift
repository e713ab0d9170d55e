/// How far ahead of the learner a distributed run hands out batches (`runtime.pacing`).
public enum PacingMode: String, Codable, Sendable, Hashable, CaseIterable {
    /// As far ahead as `train.max_staleness` allows: once the queue fills, every batch is as stale
    /// as the bound lets it be.
    case bound
    /// Min-lag pacing: only as far ahead as keeps the learner busy, from the measured sampling
    /// latency and learner step time (``Pacer``); `train.max_staleness` stays the hard bound.
    case auto
}

/// Min-lag pacing as a pure value: online estimates of the sampling latency of a batch (hand-out
/// to delivery) and of the learner's step time, and the lookahead they call for.
///
/// A batch handed out when the learner starts training batch `s` is needed once the batches
/// before it are trained; handed out `n` batches ahead, it has `n` step times to arrive. So the
/// learner never waits when `n·step ≥ latency`, and the smallest such `n`, `⌈latency / step⌉`,
/// is the least staleness that keeps it busy: a batch handed out `n` ahead is trained `n` batches
/// (`n × versionsPerStep` versions) after the version that sampled it. The lookahead is
/// `⌈latency / step + margin⌉`, at least 1; ``RunStateMachine`` hands index `consumed + n` out only
/// while `n ≤ lookahead` (and `max_staleness` allows it). With `W` workers each holding one batch,
/// at most `W` batches are out at once: a lookahead above `W` only means every worker is kept busy
/// (the workers are the bottleneck), and below `W` some workers wait because the learner is.
///
/// Time comes in as values (seconds), so pacing is tested with simulated clocks. Estimates are the
/// mean of the last ``window`` measurements; a restarted learner measures again.
public struct Pacer: Sendable, Hashable {
    /// The mode: ``PacingMode/bound`` never limits anything.
    public let mode: PacingMode
    /// Batches of lookahead added to `latency / step` before rounding up (absorbs jitter).
    public let margin: Double
    /// Measurements each estimate is the mean of.
    public let window: Int
    /// Sampling latencies in seconds (hand-out to delivery), newest last.
    public private(set) var latencies: [Double] = []
    /// Learner step times in seconds, newest last.
    public private(set) var steps: [Double] = []

    /// The margin of `auto` pacing unless given: none, the least lookahead by the estimates. On 2
    /// cores `rein bench runtime --parts pacing` measured it as fast as `bound` (0.99–1.10×) at
    /// token lag ~1.2, against lag ~1.9 at the same speed with a margin of 0.25 (the mean of the
    /// last ``window`` latencies already smooths their jitter).
    /// the learner.
    public static let defaultMargin = 0.0

    public init(mode: PacingMode, margin: Double = Pacer.defaultMargin, window: Int = 8) {
        self.mode = mode
        self.margin = max(0, margin.isFinite ? margin : 0)
        self.window = max(1, window)
    }

    /// A batch took `seconds` from hand-out to delivery.
    public mutating func sampled(seconds: Double) { Self.append(seconds, to: &latencies, window: window) }

    /// A learner step took `seconds`.
    public mutating func stepped(seconds: Double) { Self.append(seconds, to: &steps, window: window) }

    private static func append(_ value: Double, to values: inout [Double], window: Int) {
        guard value.isFinite, value >= 0 else { return }
        values.append(value)
        if values.count > window { values.removeFirst(values.count - window) }
    }

    /// The estimated sampling latency in seconds (nil before a first delivery).
    public var latency: Double? { latencies.isEmpty ? nil : latencies.reduce(0, +) / Double(latencies.count) }

    /// The estimated learner step time in seconds (nil before a first step).
    public var stepTime: Double? { steps.isEmpty ? nil : steps.reduce(0, +) / Double(steps.count) }

    /// The largest lookahead ever returned (keeps the arithmetic in range when a step takes ~0 s).
    public static let maximumLookahead = 1 << 20

    /// Batches past the next one to train that may be out with workers or waiting to train: nil in
    /// ``PacingMode/bound`` mode (no limit but `max_staleness`); 1 until both a latency and a step
    /// time are measured; else `⌈latency / step + margin⌉`.
    public var lookahead: Int? {
        guard mode == .auto else { return nil }
        guard let latency, let stepTime else { return 1 }
        let batches = latency / max(stepTime, 1e-9) + margin
        return Int(min(Double(Self.maximumLookahead), max(1, batches.rounded(.up))))
    }
}
