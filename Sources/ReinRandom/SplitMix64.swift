import Foundation

/// SplitMix64: a tiny, fast, well-mixed generator, identical on every platform and toolchain. It
/// is the one generator of the project: every sampler row and every initialisation owns one (so
/// results depend only on the seeds, never on thread scheduling), and ReinKL's `SeededGenerator`,
/// ReinTasks' `TaskRandom` and the wire fuzzer are built on it.
public struct SplitMix64: RandomNumberGenerator, Sendable, Hashable {
    /// The generator's whole state.
    public var state: UInt64

    /// Creates a stream from a seed (any value, zero included). The seed is scrambled first, so
    /// nearby seeds (0, 1, 2, … for batch rows) start far apart on the generator's cycle.
    public init(seed: UInt64) { state = SplitMix64.mix(seed) }

    /// A generator continuing from `state` exactly (no scrambling): the next output is
    /// `mix(state + γ)`.
    public init(state: UInt64) { self.state = state }

    /// The golden-ratio increment γ added to the state before every output.
    public static let increment: UInt64 = 0x9E37_79B9_7F4A_7C15

    /// Next 64 random bits.
    public mutating func next() -> UInt64 {
        state &+= Self.increment
        return SplitMix64.mix(state)
    }

    /// The SplitMix64 output function (a bijection on 64-bit values).
    public static func mix(_ x: UInt64) -> UInt64 {
        var z = x
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform double in [0, 1) with 53 random bits.
    public mutating func nextUnit() -> Double { Double(next() >> 11) * 0x1p-53 }

    /// Standard normal draw (Box–Muller, one value per call; deterministic for a given seed).
    public mutating func nextGaussian() -> Double {
        let u1 = 1 - nextUnit()  // in (0, 1]
        let u2 = nextUnit()
        return (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
    }
}
