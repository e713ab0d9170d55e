import ReinRandom

/// The deterministic random number generator of ReinTasks (ReinRandom's SplitMix64), with its own uniform
/// integer and shuffle algorithms, so that every split and batch is identical on every platform
/// and toolchain.
///
/// The standard library's `Int.random(in:using:)` and `shuffle(using:)` are not used anywhere in
/// ReinTasks: their algorithms are not part of any stability promise. Use ``next(below:)`` and
/// ``shuffle(_:)`` instead.
public struct TaskRandom: RandomNumberGenerator, Sendable, Hashable, Codable {
    /// The generator's whole state (save it to resume a stream).
    public var state: UInt64

    /// A stream fixed by `seed` and a stream number; distinct streams of one seed are unrelated.
    ///
    /// Both values are scrambled, so nearby seeds (0, 1, 2, …) start far apart.
    public init(seed: UInt64, stream: UInt64 = 0) {
        state = SplitMix64.mix(SplitMix64.mix(seed) &+ SplitMix64.mix(stream ^ 0x5EED_0F5E_ED5E_ED00))
    }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        var core = SplitMix64(state: state)
        defer { state = core.state }
        return core.next()
    }

    /// A uniform integer in `0..<bound` (Lemire's multiply-and-reject method; exact, unbiased).
    ///
    /// - Precondition: `bound > 0`.
    public mutating func next(below bound: Int) -> Int {
        precondition(bound > 0, "TaskRandom.next(below:) needs a positive bound, got \(bound)")
        let range = UInt64(bound)
        var product = range.multipliedFullWidth(by: next())
        if product.low < range {
            let threshold = (0 &- range) % range
            while product.low < threshold {
                product = range.multipliedFullWidth(by: next())
            }
        }
        return Int(product.high)
    }

    /// A uniform integer in `range`.
    public mutating func next(in range: ClosedRange<Int>) -> Int {
        range.lowerBound + next(below: range.upperBound - range.lowerBound + 1)
    }

    /// Shuffles `elements` in place (Fisher–Yates, from the last position down).
    public mutating func shuffle<Element>(_ elements: inout [Element]) {
        var i = elements.count - 1
        while i > 0 {
            elements.swapAt(i, next(below: i + 1))
            i -= 1
        }
    }
}
